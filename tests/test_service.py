"""The service loop as a real process: schedule, signals, lock, status while it runs."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from service_support import Loop, linked, wait_for

from conftest import Library, expected_links, links_in


def fast(lib: Library, **extra: dict[str, str]) -> None:
    lib.write_ini(scan={"interval": "1s", "workers": "2"}, **extra)


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def test_loop_links_new_files_and_stops_cleanly_on_sigterm(lib: Library, loop_of: Callable[[], Loop]) -> None:
    fast(lib)
    lib.add("Movies/A (2001)/A.mkv")
    loop = loop_of()
    wait_for("the first link", linked(lib, "Movies/A (2001)/A.mkv"), loop.proc)
    lib.add("TV/Show/Season 01/E01.mkv")
    lib.add("Movies/A (2001)/A.srt")  # not a video: never linked
    wait_for("the new episode's link", linked(lib, "TV/Show/Season 01/E01.mkv"), loop.proc)
    assert links_in(lib.target) == expected_links(lib.source)
    assert loop.stop(signal.SIGTERM) == 0
    text = loop.text()
    assert "SIGTERM received" in text and "service stopped" in text
    assert "Traceback" not in text
    assert integrity(lib.database) == "ok"
    conn = sqlite3.connect(lib.database)
    rows = dict(conn.execute("SELECT name, next_run FROM job_run").fetchall())
    runs = conn.execute("SELECT runs FROM job_run WHERE name = 'walk'").fetchone()[0]
    conn.close()
    assert runs >= 2
    assert set(rows) == {"mount", "walk", "full-verify"}
    assert all(v is None for v in rows.values()), "a stopped loop has no next runs"


def test_sigint_also_stops_with_exit_0(lib: Library, loop_of: Callable[[], Loop]) -> None:
    fast(lib)
    lib.add("Movies/B.mkv")
    loop = loop_of()
    wait_for("the link", linked(lib, "Movies/B.mkv"), loop.proc)
    assert loop.stop(signal.SIGINT) == 0
    assert "SIGINT received" in loop.text()
    assert integrity(lib.database) == "ok"


def test_a_second_loop_with_the_status_page_is_told_about_the_first_not_the_port(
    lib: Library, loop_of: Callable[[], Loop]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fast(lib, web={"listen": f"127.0.0.1:{port}"})
    lib.add("Movies/A.mkv")
    loop = loop_of()
    wait_for("the link", linked(lib, "Movies/A.mkv"), loop.proc)
    loop.wait_log("web: status page")
    second = lib.run("reconcile", "--loop")
    assert second.returncode == 2
    # The port is in use because the first loop serves it: the one line names the real cause.
    assert second.stderr.splitlines() == [f"graylink: another graylink (pid {loop.proc.pid}) holds {lib.database}.lock"]
    assert loop.proc.poll() is None and loop.stop() == 0


def test_while_the_loop_runs_writers_are_refused_and_readers_work(lib: Library, loop_of: Callable[[], Loop]) -> None:
    fast(lib)
    lib.add("Movies/A.mkv")
    lib.add("Movies/B.mp4")
    loop = loop_of()
    wait_for("the links", linked(lib, "Movies/B.mp4"), loop.proc)
    lock = f"{lib.database}.lock"
    refusal = f"graylink: another graylink (pid {loop.proc.pid}) holds {lock}"

    second = lib.run("reconcile")
    assert second.returncode == 2
    assert second.stderr.strip() == refusal
    second_loop = lib.run("reconcile", "--loop")
    assert second_loop.returncode == 2 and refusal in second_loop.stderr
    backup = lib.root / "during.db"
    restore = lib.run("db", "restore", str(backup))
    assert restore.returncode != 0  # no such file yet: refused before or at the lock

    status = lib.run("status", "--json")
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    assert doc["service"] == {"running": True, "pid": loop.proc.pid, "lock": lock}
    assert doc["index"]["files"] == 2 and doc["index"]["videos"] == 2 and doc["index"]["links"] == 2
    jobs = {job["name"]: job for job in doc["jobs"]}
    assert jobs["walk"]["runs"] >= 1 and jobs["walk"]["ok"] is True
    assert jobs["walk"]["next_run"] is not None and jobs["full-verify"]["next_run"] is not None
    assert jobs["mount"]["ok"] is True and jobs["mount"]["result"] == "healthy"
    assert "drive" not in jobs  # [drive] enabled = no
    assert doc["mount"]["healthy"] is True
    assert doc["last_reconcile"]["trigger"] == "walk"

    dry = lib.run("reconcile", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["dry_run"] is True

    took = lib.run("db", "backup", str(backup))
    assert took.returncode == 0, took.stderr
    restore = lib.run("db", "restore", str(backup))
    assert restore.returncode == 2 and restore.stderr.strip() == refusal

    text = lib.run("status")
    assert text.returncode == 0 and f"running (pid {loop.proc.pid})" in text.stdout

    assert loop.stop() == 0
    after = lib.run("reconcile")
    assert after.returncode == 0, after.stderr  # the lock went with the loop


def test_a_failing_job_is_logged_and_runs_again(lib: Library, loop_of: Callable[[], Loop]) -> None:
    fast(lib)
    lib.add("Movies/A.mkv")
    loop = loop_of()
    wait_for("the first link", linked(lib, "Movies/A.mkv"), loop.proc)
    # A file where the link tree should be: applying raises in every walk job.
    moved = lib.root / "links-away"
    lib.target.rename(moved)
    lib.target.write_text("not a folder")
    lib.add("Movies/B.mkv")
    loop.wait_log("job walk failed", count=2)
    lib.target.unlink()
    moved.rename(lib.target)
    lib.add("Movies/C.mkv")
    wait_for("a link after the failures", linked(lib, "Movies/C.mkv"), loop.proc)
    assert links_in(lib.target) == expected_links(lib.source)
    lines = [line for line in loop.text().splitlines() if "job walk failed" in line]
    assert " ERROR job walk failed: ConfigError: [paths] target " in lines[0]
    assert lines[0].endswith("; it runs again at its next tick")
    assert "Traceback" not in loop.text()
    status = json.loads(lib.run("status", "--json").stdout)
    walk = next(job for job in status["jobs"] if job["name"] == "walk")
    assert walk["failures"] >= 2
    assert loop.stop() == 0


def test_sighup_with_a_bad_config_keeps_the_old_one(lib: Library, loop_of: Callable[[], Loop]) -> None:
    fast(lib)
    lib.add("Movies/A.mkv")
    loop = loop_of()
    wait_for("the first link", linked(lib, "Movies/A.mkv"), loop.proc)
    good = lib.ini.read_text()
    lib.ini.write_text(good.replace("interval = 1s", "interval = soon"))
    loop.proc.send_signal(signal.SIGHUP)
    loop.wait_log("SIGHUP: the new config is not valid")
    assert "[scan] interval" in loop.text()
    lib.add("Movies/B.mkv")
    wait_for("a link with the old config", linked(lib, "Movies/B.mkv"), loop.proc)
    # A valid config is taken: here it adds a video extension.
    lib.ini.write_text(good + "\n[rules]\nextensions = .srt\n")
    lib.add("Movies/B.srt")
    loop.proc.send_signal(signal.SIGHUP)
    loop.wait_log("SIGHUP: config reloaded")
    wait_for("the subtitle linked under the new rules", linked(lib, "Movies/B.srt"), loop.proc)
    assert loop.stop() == 0


def test_log_file_in_json(lib: Library, loop_of: Callable[[], Loop]) -> None:
    log_file = lib.root / "logs" / "graylink.log"
    fast(lib, log={"file": str(log_file), "format": "json"})
    lib.add("Movies/A.mkv")
    loop = loop_of()
    wait_for("the link", linked(lib, "Movies/A.mkv"), loop.proc)
    assert loop.stop() == 0
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    messages = [r["message"] for r in records]
    assert any(m.startswith("service started") for m in messages)
    assert any(m == "service stopped" for m in messages)
    assert {"time", "level", "logger", "message"} <= set(records[0])
    # stderr carries the same lines, as JSON too
    assert json.loads(loop.text().splitlines()[0])["level"] == "INFO"


def test_loop_writes_the_snapshot_after_a_full_verification(lib: Library, loop_of: Callable[[], Loop]) -> None:
    page = lib.root / "pages" / "library.html"
    page.parent.mkdir()
    fast(lib, snapshot={"path": str(page)})
    lib.add("Movies/Snap (2020)/Snap.mkv")
    loop = loop_of()  # the first run is a full scan, hence a full verification
    wait_for("the snapshot page", page.exists, loop.proc)
    assert "Snap.mkv" in page.read_text()
    assert loop.stop() == 0


def test_a_lasting_mount_drop_is_one_error_in_the_loop_and_its_end_one_info(
    lib: Library, loop_of: Callable[[], Loop]
) -> None:
    """The mount check every second over a source really gone: the journal gets one
    ERROR for the drop (none per check, none per held walk), again from a loop
    restarted during the drop, and one INFO when it is back."""
    lib.write_ini(scan={"interval": "1s", "workers": "2"}, mount={"check_interval": "1s"})
    lib.add("Movies/A.mkv")
    loop = loop_of()
    wait_for("the first link", linked(lib, "Movies/A.mkv"), loop.proc)
    away = lib.root / "source-away"
    lib.source.rename(away)

    def mount_checks() -> int:
        conn = sqlite3.connect(lib.database)
        try:
            return int(conn.execute("SELECT runs FROM job_run WHERE name = 'mount'").fetchone()[0])
        finally:
            conn.close()

    def checks_reach(count: int) -> Callable[[], bool]:
        return lambda: mount_checks() >= count

    def errors(text: str) -> list[str]:
        return [line for line in text.splitlines() if " ERROR " in line]

    for restarted in (False, True):
        loop.wait_log("mount check source-listable failed")
        checked = mount_checks()
        wait_for("five more mount checks", checks_reach(checked + 5), loop.proc)
        if not restarted:
            assert loop.stop() == 0
            told = errors(loop.text())
            assert len(told) == 1, "\n".join(told)
            assert "mount check source-listable failed: the source" in told[0] and "does not exist" in told[0]
            assert "reconcile (walk): not run, the mount is down" in loop.text()
            loop = loop_of()
    away.rename(lib.source)
    loop.wait_log("the source is back after")
    lib.add("Movies/B.mkv")
    wait_for("a link after the drop", linked(lib, "Movies/B.mkv"), loop.proc)
    assert loop.stop() == 0
    assert len(errors(loop.text())) == 1, loop.text()
    assert sum("the source is back after" in line and " INFO " in line for line in loop.text().splitlines()) == 1


def test_sighup_with_new_rules_replans_at_once_not_at_the_next_walk(lib: Library, loop_of: Callable[[], Loop]) -> None:
    """docs/service.md: rules apply at once on SIGHUP. With an hour between walks, only the reload can do it."""
    lib.add("Movies/A.mkv")
    lib.add("Movies/A.srt")
    lib.add("Extras/Making of.mkv")
    quiet = {"scan": {"interval": "1h", "workers": "2"}, "mount": {"check_interval": "1h"}}
    lib.write_ini(**quiet)
    loop = loop_of()
    wait_for("the first links", linked(lib, "Extras/Making of.mkv"), loop.proc)
    assert links_in(lib.target) == expected_links(lib.source)
    lib.write_ini(**quiet, rules={"extensions": ".srt", "exclude_dirs": "Extras"})
    loop.proc.send_signal(signal.SIGHUP)
    sent = time.monotonic()
    wait_for("the subtitle linked under the new rules", linked(lib, "Movies/A.srt"), loop.proc)
    wait_for("the excluded folder pruned", lambda: b"Extras/Making of.mkv" not in links_in(lib.target), loop.proc)
    took = time.monotonic() - sent
    assert took < 30, f"the new rules took {took:.0f} s: they waited for something, not for the reload"
    assert links_in(lib.target) == {k: v for k, v in expected_links(lib.source, {".srt"}).items() if b"Extras" not in k}
    assert "link rules changed: re-planning every link now" in loop.text()
    assert loop.text().count("reconcile (walk)") == 1  # the first walk only
    assert loop.stop() == 0


def test_sighup_replans_only_the_library_whose_rules_changed(lib: Library, loop_of: Callable[[], Loop]) -> None:
    """Several libraries in one service (service/many.py): each reloads its own part of the config."""
    films_source, films_target = lib.root / "films", lib.root / "films-links"
    (films_source / "F").mkdir(parents=True)
    (films_source / "F" / "F.mkv").write_bytes(b"x")
    (films_source / "F" / "F.srt").write_bytes(b"x")
    lib.add("TV/S/E1.mkv")
    lib.add("TV/S/E1.srt")
    quiet = {"scan": {"interval": "1h", "workers": "2"}, "mount": {"check_interval": "1h"}}
    films = {"source": str(films_source), "target": str(films_target), "database": str(lib.root / "films.db")}
    lib.write_ini(**quiet, **{"library films": films})
    loop = loop_of()
    wait_for("both libraries linked", lambda: (films_target / "F" / "F.mkv").is_symlink(), loop.proc)
    wait_for("the default library linked", linked(lib, "TV/S/E1.mkv"), loop.proc)
    lib.write_ini(**quiet, **{"library films": {**films, "extensions": ".srt"}})
    loop.proc.send_signal(signal.SIGHUP)
    wait_for("the films' subtitle linked", lambda: (films_target / "F" / "F.srt").is_symlink(), loop.proc)
    assert "[library films] SIGHUP: the link rules changed: re-planning every link now" in loop.text()
    assert loop.text().count("the link rules changed") == 1  # the default library's rules are as they were
    assert b"TV/S/E1.srt" not in links_in(lib.target)
    assert loop.stop() == 0
