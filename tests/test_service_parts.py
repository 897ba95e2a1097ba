"""The service's parts in-process: stopping a cycle, the job table, backup/restore, doctor, logging."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from graylink.cli import AppContext
from graylink.config import load_config
from graylink.reconcile.cycle import CycleOptions, run_cycle
from graylink.service.jobs import Job, Outcome
from graylink.service.logsetup import configure_logging
from graylink.service.loop import Service
from graylink.store.db import Store
from graylink.store.lock import InstanceLock, LockHeld, holder

from conftest import REPO, Library, expected_links, links_in


def big_library(lib: Library, shows: int = 40, episodes: int = 12) -> None:
    for s in range(shows):
        for e in range(episodes):
            lib.add(f"TV/Show {s:03d}/Season 01/E{e:02d}.mkv")


class StopAfter:
    """A stop request that arrives after ``n`` looks (what a SIGTERM mid-cycle does)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls > self.n


# ------------------------------------------------------------ stopping a cycle


@pytest.mark.parametrize("workers", ["1", "3"])
@pytest.mark.parametrize("after", [0, 1, 3, 20, 45])
def test_a_stopped_cycle_keeps_its_marks_and_the_next_one_converges(lib: Library, workers: str, after: int) -> None:
    lib.write_ini(scan={"workers": workers})
    big_library(lib)
    config = load_config(str(lib.ini))
    with Store(str(lib.database)) as store:
        run_cycle(config, store, CycleOptions())  # indexed and linked
        for s in range(0, 40, 3):  # then new folders and files, found by the next walk
            lib.add(f"TV/Show {s:03d}/Season 02/E01.mkv")
            lib.add(f"TV/New {s:03d}/E01.mp4")
        os.unlink(lib.source / "TV/Show 001/Season 01/E00.mkv")
        stopped = run_cycle(config, store, CycleOptions(should_stop=StopAfter(after)))
        assert stopped.stopped == "stopped on request" and stopped.exit_code == 1
        assert sqlite3.connect(lib.database).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finished = run_cycle(config, store, CycleOptions())
        assert finished.exit_code == 0, finished.failures
        assert links_in(lib.target) == expected_links(lib.source)
        assert store.pending_marks() == []
        again = run_cycle(config, store, CycleOptions())
        assert not any(again.plan.counts().values())


def test_a_stop_during_the_first_scan_then_a_full_run(lib: Library) -> None:
    big_library(lib, shows=30, episodes=5)
    config = load_config(str(lib.ini))
    with Store(str(lib.database)) as store:
        stopped = run_cycle(config, store, CycleOptions(should_stop=StopAfter(2)))
        assert stopped.stopped
        assert store.pending_marks(), "the first-run mark stays"
        run_cycle(config, store, CycleOptions())
    assert links_in(lib.target) == expected_links(lib.source)


# --------------------------------------------------------------- the job table


def test_jobs_that_raise_are_recorded_and_run_again(lib: Library, caplog: pytest.LogCaptureFixture) -> None:
    lib.add("Movies/A.mkv")
    app = AppContext(config_path=str(lib.ini), verbosity=0)
    runs: list[str] = []

    def boom(service: Service) -> Outcome:
        runs.append("boom")
        raise RuntimeError("the peer's poller hiccuped")

    def count(service: Service) -> Outcome:
        runs.append("count")
        if runs.count("boom") >= 3:
            service.stop_requested = True
        return Outcome(True, f"{len(runs)} runs")

    jobs = (
        Job("boom", lambda c: 1, boom),
        Job("count", lambda c: 1, count),
        Job("off", lambda c: 1, count, enabled=lambda c: False),
    )
    with Store(str(lib.database)) as store, caplog.at_level(logging.INFO):
        service = Service(app, app.config, store, jobs)
        service.loop()
        service.shutdown()
        rows = {r[0]: r[1:] for r in store.execute("SELECT name, runs, failures, ok, result, next_run FROM job_run")}
    assert runs.count("boom") >= 3
    assert set(rows) == {"boom", "count"}
    boom_runs, boom_failures, boom_ok, boom_result, boom_next = rows["boom"]
    assert boom_runs == boom_failures >= 3 and boom_ok == 0
    assert boom_result == "RuntimeError: the peer's poller hiccuped"
    assert rows["count"][1] == 0 and rows["count"][2] == 1
    assert boom_next is None and rows["count"][4] is None
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and all(r.exc_info is None for r in errors), "tracebacks only at debug"
    assert "job boom failed: RuntimeError: the peer's poller hiccuped" in errors[0].getMessage()


def test_next_runs_are_recorded_while_running(lib: Library) -> None:
    app = AppContext(config_path=str(lib.ini), verbosity=0)
    seen: dict[str, object] = {}

    def look(service: Service) -> Outcome:
        service._record_next_runs()
        seen.update(dict(service.store.execute("SELECT name, next_run FROM job_run").fetchall()))
        service.stop_requested = True
        return Outcome(True, "looked")

    jobs = (Job("slow", lambda c: 3600, look, at_start=False), Job("look", lambda c: 1, look))
    with Store(str(lib.database)) as store:
        service = Service(app, app.config, store, jobs)
        service.loop()
        service.shutdown()
    assert isinstance(seen["slow"], float) and seen["slow"] > time.time() + 3000


# ------------------------------------------------------------------------ lock


def test_the_lock_names_its_holder_and_goes_with_it(tmp_path: Path) -> None:
    db = str(tmp_path / "state" / "g.db")
    assert holder(db) is None
    with InstanceLock(db) as lock:
        assert holder(db) == os.getpid()
        with pytest.raises(LockHeld) as refused:
            InstanceLock(db).acquire()
        assert str(refused.value) == f"another graylink (pid {os.getpid()}) holds {lock.path}"
        assert refused.value.exit_code == 2
    assert holder(db) is None
    # A holder that dies releases the lock: no stale lock after a crash.
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from graylink.store.lock import InstanceLock; InstanceLock({db!r}).acquire(); import os; os._exit(9)",
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert child.returncode == 9
    with InstanceLock(db):
        pass


# ----------------------------------------------------------- backup / restore


def counts(db: Path) -> tuple[int, int, int]:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        orphans = conn.execute("SELECT count(*) FROM file WHERE dir_id NOT IN (SELECT id FROM directory)").fetchone()[0]
        assert orphans == 0, "a consistent index has no file without its folder"
        return tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("directory", "file", "link"))  # type: ignore[return-value]
    finally:
        conn.close()


def test_backup_during_a_reconcile_restores_to_a_consistent_index(lib: Library) -> None:
    lib.write_ini(scan={"workers": "2"})
    big_library(lib, shows=150, episodes=20)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = lib.run("reconcile")  # the database exists before the copies begin
    assert first.returncode == 0, first.stderr
    for s in range(150):
        lib.add(f"TV/Show {s:03d}/Season 02/E01.mkv")
    busy = subprocess.Popen(
        [sys.executable, "-m", "graylink", "-c", str(lib.ini), "reconcile", "--full"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    backups: list[Path] = []
    while busy.poll() is None or not backups:
        dest = lib.root / f"backup-{len(backups)}.db"
        took = lib.run("db", "backup", str(dest))
        assert took.returncode == 0, took.stderr
        backups.append(dest)
    assert busy.wait() == 0, busy.stderr.read() if busy.stderr else ""
    for backup in backups:
        dirs, files, links = counts(backup)
        assert dirs > 0 and files >= links
        assert not Path(str(backup) + "-wal").exists(), "a backup stands alone"
    # The source moves on after the backup; the restored index is older than it.
    os.unlink(lib.source / "TV/Show 007/Season 01/E03.mkv")
    lib.add("Movies/After (2024)/After.mkv")
    assert lib.run("reconcile").returncode == 0
    restored = lib.run("db", "restore", str(backups[len(backups) // 2]))
    assert restored.returncode == 0, restored.stderr
    assert Path(str(lib.database) + ".before-restore").exists()
    doc = json.loads(lib.run("status", "--json").stdout)
    assert doc["dirty"]["by_reason"]["restore"] == 1
    converge = lib.run("reconcile")
    assert converge.returncode == 0, converge.stderr
    assert links_in(lib.target) == expected_links(lib.source)
    assert json.loads(lib.run("reconcile", "--json").stdout)["counts"]["create"] == 0


def test_backup_refuses_to_overwrite_unless_forced(lib: Library) -> None:
    lib.add("A.mkv")
    assert lib.run("reconcile").returncode == 0
    dest = lib.root / "b.db"
    dest.write_text("precious")
    refused = lib.run("db", "backup", str(dest))
    assert refused.returncode == 2  # a usage error: the user names another file or adds --force
    assert refused.stderr.strip() == f"graylink: {dest} exists; use --force to overwrite it"
    assert dest.read_text() == "precious"
    forced = lib.run("db", "backup", "--force", str(dest))
    assert forced.returncode == 0 and counts(dest) == (1, 1, 1)


def test_restore_refuses_what_is_not_a_usable_graylink_database(lib: Library) -> None:
    lib.add("A.mkv")
    assert lib.run("reconcile").returncode == 0
    before = lib.database.read_bytes()
    text = lib.root / "notes.txt"
    text.write_text("hello")
    other = lib.root / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    newer = lib.root / "newer.db"
    assert lib.run("db", "backup", str(newer)).returncode == 0
    conn = sqlite3.connect(newer)
    conn.execute("INSERT INTO applied_migration (name, applied_at) VALUES ('9999_future', 0)")
    conn.commit()
    conn.close()
    for bad, message in (
        (text, "is not a graylink database"),
        (other, "is not a graylink database (no table"),
        (newer, "was written by a newer graylink (schema 9999_future)"),
        (lib.root / "missing.db", "no such file"),
    ):
        result = lib.run("db", "restore", str(bad))
        assert result.returncode == 2, (bad, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
    assert lib.database.read_bytes() == before
    assert not Path(str(lib.database) + ".before-restore").exists()


def test_restore_over_a_damaged_database(lib: Library) -> None:
    lib.add("Movies/A.mkv")
    assert lib.run("reconcile").returncode == 0
    good = lib.root / "good.db"
    assert lib.run("db", "backup", str(good)).returncode == 0
    for suffix in ("-wal", "-shm"):
        Path(str(lib.database) + suffix).unlink(missing_ok=True)
    lib.database.write_bytes(b"garbage" * 1000)
    assert lib.run("status").returncode == 2
    restored = lib.run("db", "restore", str(good))
    assert restored.returncode == 0, restored.stderr
    assert Path(str(lib.database) + ".before-restore").read_bytes().startswith(b"garbage")
    lib.add("Movies/B.mkv")
    assert lib.run("reconcile").returncode == 0
    assert links_in(lib.target) == expected_links(lib.source)


# ---------------------------------------------------------------------- doctor


def test_doctor_all_good(lib: Library) -> None:
    lib.add("A.mkv")
    assert lib.run("reconcile").returncode == 0
    result = lib.run("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    names = [line.split(":")[0] for line in lines if line.startswith("✔")]
    assert names == [
        "✔ config",
        "✔ source",
        "✔ target",
        "✔ database",
        "✔ library",
        "✔ claims",
        "✔ filesystem",
        "✔ service",
        "✔ mount",
        "✔ emby",
    ]
    assert "schema" in result.stdout and "1 files" in result.stdout


def test_doctor_reports_each_problem_with_a_hint(lib: Library) -> None:
    lib.source.rmdir()
    blocker = lib.root / "blocker"
    blocker.write_text("a file where a folder should be")
    lib.write_ini(paths={"target": str(blocker / "links")}, scan={"trust_dir_mtime": "yes"})
    result = lib.run("doctor")
    assert result.returncode == 1
    out = result.stdout
    assert "✘ source:" in out and "✘ target:" in out
    assert out.count("    hint: ") >= 2
    assert "problem(s) found" in result.stderr


def test_doctor_with_a_bad_config(lib: Library) -> None:
    lib.ini.write_text("[scan]\ninterval = later\n[paths]\nsource = /x\ntarget = /y\n")
    result = lib.run("doctor")
    assert result.returncode == 1
    assert result.stdout.startswith("✘ config: [scan] interval:")
    assert "hint:" in result.stdout


def test_status_before_the_first_run(lib: Library) -> None:
    result = lib.run("status")
    assert result.returncode == 0 and "no database yet" in result.stdout
    doc = json.loads(lib.run("status", "--json").stdout)
    assert doc["index"] is None and doc["service"]["running"] is False


# --------------------------------------------------------------------- logging


def test_log_file_rotates(tmp_path: Path) -> None:
    from graylink.config import LogConfig

    path = tmp_path / "log" / "graylink.log"
    try:
        configure_logging(LogConfig("info", str(path), "text", 2000, 2), 0)
        for i in range(200):
            logging.getLogger("graylink.test").info("line %d with some padding to fill the file", i)
        logging.getLogger("graylink.test").debug("not at info level")
    finally:
        configure_logging(None, 0)
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["graylink.log", "graylink.log.1", "graylink.log.2"]
    assert all(p.stat().st_size <= 2100 for p in path.parent.iterdir())
    assert "line 199" in path.read_text() and "not at info" not in path.read_text()


def test_unwritable_log_file_is_one_line_not_a_traceback(lib: Library) -> None:
    blocker = lib.root / "notadir"
    blocker.write_text("x")
    lib.write_ini(log={"file": str(blocker / "graylink.log")})
    lib.add("A.mkv")
    result = lib.run("reconcile")
    assert result.returncode == 0
    assert "cannot write log file" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- reload


@pytest.mark.parametrize("key", ["target", "database"])
def test_sighup_cannot_switch_the_link_tree_or_the_database(
    lib: Library, caplog: pytest.LogCaptureFixture, key: str
) -> None:
    """The links made under the old target would be owned by nobody: refused like a new database."""
    lib.add("Movies/A.mkv")
    assert lib.run("reconcile").returncode == 0  # links made: a new target would orphan them
    app = AppContext(config_path=str(lib.ini), verbosity=0)
    with Store(str(lib.database)) as store:
        service = Service(app, app.config, store)
        old = service.config
        moved = str(lib.root / f"elsewhere-{key}")
        lib.write_ini(paths={key: moved}, scan={"interval": "7m"})
        with caplog.at_level(logging.INFO):
            service.reload()
    assert service.config is old and app.config is old  # the loop keeps its config, all of it
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [errors[0]] and errors[0].startswith(f"SIGHUP: [paths] {key} changed ")
    assert moved in errors[0]
    assert errors[0].endswith("keeping the old config") and "\n" not in errors[0]
    assert not (lib.root / f"elsewhere-{key}").exists()
