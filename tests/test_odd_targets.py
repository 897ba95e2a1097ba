"""Full disks and odd link trees: a small tmpfs for the target and for the database,
a target filesystem without symlinks (a real rclone mount), a symlinked target root."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import Library, expected_links, links_in


@contextmanager
def small_tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A tmpfs of ``options`` (size, nr_inodes) mounted at ``where`` for the test; skipped loudly without root."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("SKIPPED LOUDLY: mounting a small tmpfs needs root; full disks are not tested here")
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"SKIPPED LOUDLY: cannot mount a tmpfs here ({mounted.stderr.strip()}); full disks are not tested")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def grow(where: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(where)], check=True)


def a_library(lib: Library, shows: int, episodes: int) -> None:
    for show in range(shows):
        folder = lib.source / f"TV/Show {show:03d}"
        folder.mkdir(parents=True)
        for episode in range(episodes):
            (folder / f"Show {show:03d} S01E{episode:03d}.mkv").touch()


def recorded_links(lib: Library) -> set[bytes]:
    with sqlite3.connect(lib.database) as db:
        return {bytes(d) + b"/" + bytes(n) for d, n in db.execute("SELECT dir, name FROM link")}


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "ERROR" in line or line.startswith("graylink:")]


def summary(stdout: str) -> dict[str, int]:
    doc = json.loads(stdout)
    counts: dict[str, int] = doc["counts"]
    assert counts["failed"] == len(doc["failed"])
    return counts


def test_a_full_target_counts_what_was_made_and_the_next_run_with_space_converges(lib: Library) -> None:
    """Issue 20.5: a 2 MiB / 2000-inode target once said '10000 created' for 1799 links."""
    a_library(lib, 100, 100)
    with small_tmpfs(lib.target, "size=2m,nr_inodes=2000"):
        first = lib.run("reconcile", "--json")
        assert first.returncode == 1, first.stderr
        assert "Traceback" not in first.stderr
        lines = errors(first.stderr)
        assert len(lines) == 1, lines
        assert f"filesystem of the link tree (tmpfs at {lib.target}) is full" in lines[0]
        made = links_in(lib.target)
        counts = summary(first.stdout)
        assert 0 < counts["create"] == len(made) < 10_000
        assert counts["create"] + counts["failed"] == 10_000
        assert recorded_links(lib) == set(made), "the database says exactly what is on disk"

        again = lib.run("reconcile", "--json")  # still full: nothing made, everything still owed
        assert again.returncode == 1, again.stderr
        assert summary(again.stdout)["create"] == 0 and summary(again.stdout)["failed"] == 10_000 - len(made)
        assert recorded_links(lib) == set(links_in(lib.target))

        grow(lib.target, "size=64m,nr_inodes=50000")
        resumed = lib.run("reconcile")
        assert resumed.returncode == 0, resumed.stderr
        assert f"{10_000 - len(made)} created, 0 repaired, 0 pruned, 0 conflicts in" in resumed.stdout
        assert links_in(lib.target) == expected_links(lib.source)
        assert recorded_links(lib) == set(expected_links(lib.source))
        assert not list(lib.target.rglob(".graylink-*"))


def test_a_full_database_filesystem_is_one_line_exit_1_and_nothing_is_corrupted(lib: Library) -> None:
    """Issue 20.5: SQLITE_FULL was 'bad configuration' (exit 2) with 'cannot rollback'."""
    a_library(lib, 100, 100)
    with small_tmpfs(lib.database.parent, "size=256k"):
        full = lib.run("reconcile")
        assert full.returncode == 1, full.stderr
        assert "Traceback" not in full.stderr and "cannot rollback" not in full.stderr
        lines = errors(full.stderr)
        assert len(lines) == 1, lines
        assert f"the filesystem of the database (tmpfs at {lib.database.parent}) is full" in lines[0]
        with sqlite3.connect(lib.database) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        grow(lib.database.parent, "size=32m")
        resumed = lib.run("reconcile")
        assert resumed.returncode == 0, resumed.stderr
        assert links_in(lib.target) == expected_links(lib.source)
        assert recorded_links(lib) == set(expected_links(lib.source))


def test_a_dry_run_whose_scratch_space_is_full_names_the_scratch_folder(lib: Library, tmp_path: Path) -> None:
    """Issue 20.11: the scratch copy's 'database or disk is full' blamed the real database (exit 2)."""
    a_library(lib, 50, 100)
    assert lib.run("reconcile").returncode == 0
    with small_tmpfs(tmp_path / "scratch", "size=96k") as scratch:
        dry = lib.run("reconcile", "--dry-run", "--full", env={"TMPDIR": str(scratch)})
        assert dry.returncode == 1, dry.stderr
        lines = errors(dry.stderr)
        assert len(lines) == 1, lines
        assert f"scratch copy of the database ran out of space in {scratch} (tmpfs at {scratch})" in lines[0]
        assert "TMPDIR" in lines[0] and str(lib.database) not in lines[0]


def test_a_symlinked_target_root_compares_equal(lib: Library, tmp_path: Path) -> None:
    """Issue 20.11: a full verify re-created (and re-announced) every link; a deleted movie's link was forgotten."""
    real = tmp_path / "real-links"
    real.mkdir()
    os.symlink(real, lib.target)
    for name in ("A", "B", "C"):
        lib.add(f"Movies/{name}/{name}.mkv")
    first = json.loads(lib.run("reconcile", "--json").stdout)
    assert first["counts"]["create"] == 3
    full = lib.run("reconcile", "--json", "--full")
    assert full.returncode == 0, full.stderr
    assert json.loads(full.stdout)["actions"] == [], "an unchanged tree plans nothing"
    (lib.source / "Movies/B/B.mkv").unlink()
    pruned = json.loads(lib.run("reconcile", "--json").stdout)
    assert pruned["counts"]["prune"] == 1
    assert not os.path.lexists(real / "Movies/B/B.mkv"), "the link is pruned, not left dangling"
    assert recorded_links(lib) == {b"Movies/A/A.mkv", b"Movies/C/C.mkv"}
    assert os.path.islink(lib.target), "the user's symlinked root stays as it is"


_NO_RCLONE = [
    what
    for what, present in (
        ("/dev/fuse", os.path.exists("/dev/fuse")),
        ("rclone", shutil.which("rclone") is not None),
        ("fusermount3", shutil.which("fusermount3") is not None),
    )
    if not present
]


@pytest.fixture
def rclone_target(lib: Library, tmp_path: Path) -> Iterator[Path]:
    """The link tree on an rclone mount of a local folder: rclone 1.60 has no symlinks (symlink(2) is EIO)."""
    if _NO_RCLONE:
        pytest.skip(f"FUSE TEST SKIPPED: {', '.join(_NO_RCLONE)} missing (install Debian's rclone and fuse3)")
    backing = tmp_path / "backing"
    backing.mkdir()
    lib.target.mkdir()
    argv = ["rclone", "mount", str(backing), str(lib.target), "--config", "/dev/null", "--dir-cache-time", "0s"]
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: os.path.ismount(lib.target) or process.poll() is not None)
        if process.poll() is not None:
            pytest.skip(f"FUSE TEST SKIPPED: rclone mount exited with {process.returncode}")
        yield backing
    finally:
        subprocess.run(["fusermount3", "-uz", str(lib.target)], capture_output=True, check=False)
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def wait_for(condition: Callable[[], bool], limit: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting for the rclone mount"
        time.sleep(0.05)


def test_a_target_without_symlinks_stops_at_the_first_refusal(lib: Library, rclone_target: Path) -> None:
    """Issue 20.11: 1000 ERROR lines and '1000 created' on a filesystem that takes no symlinks."""
    a_library(lib, 10, 100)
    proc = lib.run("reconcile", "--json")
    assert proc.returncode == 1, proc.stderr
    lines = errors(proc.stderr)
    assert len(lines) == 1, lines[:5]
    assert f"the filesystem of the link tree (fuse.rclone at {lib.target}) does not take symlinks" in lines[0]
    counts = summary(proc.stdout)
    assert counts["create"] == 0 and counts["failed"] == 1000
    assert recorded_links(lib) == set()


def test_one_folder_that_refuses_symlinks_is_a_failed_action_not_a_stop(lib: Library) -> None:
    """EPERM in an immutable folder is that folder's failure; the filesystem takes symlinks elsewhere."""
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        pytest.skip("SKIPPED LOUDLY: making a folder immutable needs root and chattr")
    lib.add("Movies/A/A.mkv")
    lib.add("Movies/B/B.mkv")
    (lib.target / "Movies/A").mkdir(parents=True)
    if subprocess.run(["chattr", "+i", str(lib.target / "Movies/A")], capture_output=True).returncode:
        pytest.skip("SKIPPED LOUDLY: this filesystem has no immutable attribute")
    try:
        proc = lib.run("reconcile", "--json")
        assert proc.returncode == 1, proc.stderr
        counts = summary(proc.stdout)
        assert counts["create"] == 1 and counts["failed"] == 1
        assert "does not take symlinks" not in proc.stderr
        assert os.path.islink(lib.target / "Movies/B/B.mkv")
        assert not [p for p in os.listdir(lib.target) if p.startswith(".graylink-")], "the probe is removed"
    finally:
        subprocess.run(["chattr", "-i", str(lib.target / "Movies/A")], check=False)
    fixed = lib.run("reconcile", "--json")
    assert fixed.returncode == 0, fixed.stderr
    assert summary(fixed.stdout)["create"] == 1


def test_a_read_only_link_tree_is_refused_before_anything_is_made(lib: Library) -> None:
    """A target folder on a read-only filesystem is a configuration mistake: one line, exit 2, no database."""
    lib.add("Movies/A (2001)/A.mkv")
    with small_tmpfs(lib.target, "size=1m"):
        subprocess.run(["mount", "-o", "remount,ro", str(lib.target)], check=True)
        for args in (("reconcile",), ("reconcile", "--loop")):
            refused = lib.run(*args)
            assert refused.returncode == 2, refused.stderr
            assert refused.stderr.splitlines() == [
                f"graylink: [paths] target {lib.target} is on a read-only filesystem: graylink makes its links there"
            ]
            assert not lib.database.parent.exists(), "exit 2 leaves no database and no lock file behind"
        dry = lib.run("reconcile", "--dry-run")  # changes nothing, so it may look
        assert dry.returncode == 0, dry.stderr
        assert "+ Movies/A (2001)/A.mkv" in dry.stdout
