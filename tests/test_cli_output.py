"""What the commands say: once, consistently, and the same for a dry run as for the real one."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO, Library, expected_links, links_in


def test_snapshot_says_its_result_once(lib: Library, tmp_path: Path) -> None:
    lib.add("Movies/A/A.mkv")
    assert lib.run("reconcile").returncode == 0
    proc = lib.run("snapshot", "-o", str(tmp_path / "page.html"))
    assert proc.returncode == 0, proc.stderr
    said = (proc.stdout + proc.stderr).count("1 files")
    assert said == 1, (proc.stdout, proc.stderr)


def test_snapshot_status_and_backup_count_folders_the_same_way(lib: Library, tmp_path: Path) -> None:
    lib.add("Movies/A/A.mkv")
    lib.add("Movies/B/B.mkv")
    lib.add("TV/Show/S1/E1.mkv")
    (lib.source / "Empty").mkdir()
    assert lib.run("reconcile").returncode == 0
    on_disk = sum(len(dirs) for _, dirs, _ in os.walk(lib.source))  # folders below the source
    assert on_disk == 7
    status = json.loads(lib.run("status", "--json").stdout)
    assert status["index"]["dirs"] == on_disk
    assert f"index:    {on_disk} folders," in lib.run("status").stdout
    snap = lib.run("snapshot", "-o", str(tmp_path / "page.html"))
    assert f": {on_disk} folders, " in snap.stdout
    backup = lib.run("db", "backup", str(tmp_path / "b.db"))
    assert f": {on_disk} folders, " in backup.stdout


def _codes(lib: Library) -> tuple[int, int]:
    dry = lib.run("reconcile", "--dry-run")
    real = lib.run("reconcile")
    return dry.returncode, real.returncode


def test_a_dry_run_exits_1_whenever_the_real_run_would(lib: Library) -> None:
    for i in range(30):
        lib.add(f"Movies/M{i}/M{i}.mkv")
    assert lib.run("reconcile").returncode == 0
    # Withheld prunes: the brake.
    for i in range(25):
        (lib.source / f"Movies/M{i}/M{i}.mkv").unlink()
    assert _codes(lib) == (1, 1)
    assert lib.run("reconcile", "--force").returncode == 0
    # A conflict: a regular file where a link belongs.
    lib.add("TV/S/E1.mkv")
    (lib.target / "TV/S").mkdir(parents=True)
    (lib.target / "TV/S/E1.mkv").write_text("mine")
    assert _codes(lib) == (1, 1)
    (lib.target / "TV/S/E1.mkv").unlink()
    assert _codes(lib) == (0, 0)
    # An unhealthy mount (its anchor gone): every prune withheld.
    lib.write_ini(mount={"anchor": ".anchor"})
    assert _codes(lib) == (1, 1)


def test_an_empty_config_file_is_said_to_be_empty(lib: Library, tmp_path: Path) -> None:
    empty = tmp_path / "empty.ini"
    empty.write_text("; nothing yet\n")
    for given in ("/dev/null", str(empty)):
        proc = lib.run_bare("-c", given, "status")
        assert proc.returncode == 2
        assert proc.stderr.strip() == (
            f"graylink: config file {given} is empty: set [paths] source and target in it "
            "(graylink.ini.example lists every key)"
        )
    # Empty, with everything from the environment: fine.
    env = {"GRAYLINK_PATHS_SOURCE": str(lib.source), "GRAYLINK_PATHS_TARGET": str(lib.target)}
    env["GRAYLINK_PATHS_DATABASE"] = str(lib.database)
    assert lib.run_bare("-c", "/dev/null", "status", env=env).returncode == 0
    proc = lib.run_bare("-c", str(tmp_path), "status")
    assert proc.returncode == 2 and "is a directory" in proc.stderr


def test_dvd_folders_are_not_linked_file_by_file(lib: Library) -> None:
    lib.add("Movies/Disc (1999)/VIDEO_TS/VTS_01_1.VOB")
    lib.add("Movies/Disc (1999)/VIDEO_TS/VIDEO_TS.VOB")
    lib.add("Movies/Disc (1999)/AUDIO_TS/x.vob")
    lib.add("Movies/Disc (2001)/video_ts/vts_01_1.vob")
    lib.add("Movies/Plain/Plain.vob")
    assert lib.run("reconcile").returncode == 0
    assert set(links_in(lib.target)) == {b"Movies/Plain/Plain.vob"}
    assert set(expected_links(lib.source, {".vob", ".VOB"})) == {b"Movies/Plain/Plain.vob"}


def test_status_human_times_are_local_and_say_how_long_ago(lib: Library) -> None:
    lib.add("Movies/A/A.mkv")
    assert lib.run("reconcile").returncode == 0
    text = lib.run("status").stdout
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(\d+s ago\)"
    assert re.search(r"^last reconcile: " + stamp, text, re.M), text
    assert re.search(r"^full verification: " + stamp, text, re.M), text
    # No raw epoch numbers and no empty "key: " lines anywhere.
    assert not re.search(r"\b1[6-9]\d{8}(\.\d+)?\b", text), text
    assert not [line for line in text.splitlines() if line.rstrip().endswith(":") and ":" in line[:-1]], text
    assert "failed check" not in text


def test_status_last_reconcile_is_the_latest_run_even_when_it_did_nothing(lib: Library) -> None:
    lib.add("Movies/A/A.mkv")
    assert lib.run("reconcile").returncode == 0
    first = json.loads(lib.run("status", "--json").stdout)["last_reconcile"]
    assert first["counts"]["create"] == 1
    assert lib.run("reconcile").returncode == 0  # nothing to do
    last = json.loads(lib.run("status", "--json").stdout)["last_reconcile"]
    assert last["at"] > first["at"]
    assert last["counts"]["create"] == 0 and last["exit_code"] == 0


def test_status_does_not_call_a_running_loop_not_running() -> None:
    """The webhook job has no schedule (a web request wakes it): its next run is none while the loop runs."""
    from graylink.report.status_render import render_status

    job = {"name": "webhook", "last_run": 100.0, "duration_s": 0.1, "ok": True, "result": "reconciled"}
    job |= {"runs": 1, "failures": 0, "next_run": None}
    doc = {"source": "/s", "target": "/t", "database": "/d", "service": {"running": True, "pid": 42}}
    doc |= {"index": {"dirs": 1, "files": 1, "videos": 1, "links": 1, "link_dirs": 1, "last_full_verify": None}}
    doc |= {"dirty": {"total": 0, "by_reason": {}, "oldest_marked_at": None}, "jobs": [job]}
    text = render_status(doc, now=200.0)
    assert "running (pid 42)" in text and "loop not running" not in text
    assert "loop not running" in render_status({**doc, "service": {"running": False, "pid": None}}, now=200.0)


def test_quiet_is_silent_unless_something_needs_attention(lib: Library, tmp_path: Path) -> None:
    """``-q`` is "errors only": a cron job with it mails nothing for a run that went well."""
    lib.add("Movies/A/A.mkv")
    lib.add("Movies/B/B.mkv")
    for args in (
        ("reconcile",),
        ("reconcile",),
        ("db", "backup", str(tmp_path / "copy.db")),
        ("snapshot", "-o", str(tmp_path / "page.html")),
    ):
        proc = lib.run("-q", *args)
        assert proc.returncode == 0, proc.stderr
        assert (proc.stdout, proc.stderr) == ("", ""), args
    assert (tmp_path / "copy.db").exists() and (tmp_path / "page.html").exists()
    # A conflict needs attention: its error and the summary are printed.
    (lib.target / "Movies/B/B.mkv").unlink()
    (lib.target / "Movies/B/B.mkv").write_text("a file in the way")
    lib.add("Movies/B/B2.mkv")
    (lib.target / "Movies/B/B2.mkv").write_text("a file in the way")
    proc = lib.run("-q", "reconcile", "--full")
    assert proc.returncode == 1
    assert "conflict" in proc.stderr and "2 conflicts" in proc.stdout
    # --json and a dry run's plan are what was asked for: printed whatever -q says.
    assert json.loads(lib.run("-q", "reconcile", "--json").stdout)["counts"]["conflict"] == 2
    assert "! " in lib.run("-q", "reconcile", "--dry-run").stdout


def test_status_shows_a_name_that_is_not_utf8_as_the_log_does(lib: Library) -> None:
    lib.add(b"Movies/A/caf\xe9.mkv")
    assert lib.run("reconcile").returncode == 0
    link = os.path.join(os.fsencode(lib.target), b"Movies/A/caf\xe9.mkv")
    os.unlink(link)
    with open(link, "wb") as handle:
        handle.write(b"a file in the way")
    assert lib.run("reconcile", "--full").returncode == 1
    proc = subprocess.run(
        [sys.executable, "-m", "graylink", "-c", str(lib.ini), "status"],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert b"Movies/A/caf\\xe9.mkv" in proc.stdout and b"caf\xe9" not in proc.stdout
