"""graylink on a real rclone FUSE mount of a local folder."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from graylink.config import load_config
from graylink.rclone import mountflags, rc
from graylink.reconcile.cycle import CycleOptions, run_cycle
from graylink.store.db import Mark, Store
from graylink.system import fsinfo
from graylink.triggers import mount_checks

from conftest import links_in

REPO = Path(__file__).resolve().parents[1]

_MISSING = [
    what
    for what, present in (
        ("/dev/fuse", os.path.exists("/dev/fuse")),
        ("rclone", shutil.which("rclone") is not None),
        ("fusermount3", shutil.which("fusermount3") is not None),
    )
    if not present
]

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(
        bool(_MISSING),
        reason=f"FUSE TESTS SKIPPED: {', '.join(_MISSING)} missing (install Debian's rclone and fuse3)",
    ),
]

SHOW = ("Show/S01/e01.mkv", "Show/S01/e02.mkv", "Movies/X (2001)/X.mp4")


def wait_until(condition: Callable[[], bool], what: str, limit: float = 20.0) -> None:
    """Poll for something rclone does in its own time; the limit only stops a hung test."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Mounted:
    src: Path
    mnt: Path
    links: Path
    ini: Path
    argv: list[str]
    process: subprocess.Popen[bytes]

    def write_config(self, **mount_keys: str) -> None:
        lines = [
            "[paths]",
            f"source = {self.mnt}",
            f"target = {self.links}",
            f"database = {self.ini.parent / 'graylink.db'}",
            "[scan]",
            "workers = 2",
            "[mount]",
            *(f"{key} = {value}" for key, value in mount_keys.items()),
        ]
        self.ini.write_text("\n".join(lines) + "\n")

    def graylink(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "graylink", "-c", str(self.ini), *args],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def links_now(self) -> set[str]:
        # Not Path.rglob: before Python 3.11.4 it raises on a link into a dead mount (ENOTCONN).
        return {os.fsdecode(rel) for rel in links_in(self.links)}

    def visible(self, rel: str) -> bool:
        path = self.mnt / rel
        try:
            return path.name in os.listdir(path.parent)
        except OSError:
            return False


def _start(argv: list[str], mnt: Path) -> subprocess.Popen[bytes]:
    # In the foreground, not --daemon: rclone 1.60 with --daemon and --rc
    # binds the rc port in the parent and the child then fails to start.
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
    wait_until(lambda: fsinfo.is_mountpoint(str(mnt)) or process.poll() is not None, "the rclone mount")
    if process.poll() is not None:
        raise AssertionError(f"rclone mount exited with {process.returncode}")
    return process


def _stop(mnt: Path, process: subprocess.Popen[bytes]) -> None:
    subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True, check=False)
    # Remounts started by graylink run as daemons of their own: find them too.
    for found in mountflags.rclone_processes_serving(str(mnt)):
        try:
            os.kill(found.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)
    subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True, check=False)


@pytest.fixture
def rclone_mount(tmp_path: Path) -> Iterator[Callable[..., Mounted]]:
    started: list[Mounted] = []

    def start(*extra: str, dir_cache: str = "1s") -> Mounted:
        src, mnt, links = tmp_path / "src", tmp_path / "mnt", tmp_path / "links"
        for folder in (mnt, links):
            folder.mkdir(exist_ok=True)
        if not src.exists():
            for rel in SHOW:
                (src / rel).parent.mkdir(parents=True, exist_ok=True)
                (src / rel).write_bytes(b"video")
        argv = [
            "rclone", "mount", str(src), str(mnt), "--config", "/dev/null",
            "--dir-cache-time", dir_cache, "--attr-timeout", "0s",
            "--log-file", str(tmp_path / "rclone.log"), *extra,
        ]  # fmt: skip
        mounted = Mounted(src, mnt, links, tmp_path / "graylink.ini", argv, _start(argv, mnt))
        mounted.write_config()
        started.append(mounted)
        return mounted

    yield start
    for mounted in started:
        _stop(mounted.mnt, mounted.process)


def test_reconcile_follows_changes_through_the_mount(rclone_mount: Callable[..., Mounted]) -> None:
    m = rclone_mount()
    assert fsinfo.fs_type(str(m.mnt)) == "fuse.rclone"
    first = m.graylink("reconcile")
    assert first.returncode == 0, first.stderr
    assert m.links_now() == set(SHOW)
    assert os.readlink(m.links / SHOW[0]) == str(m.mnt / SHOW[0])

    # A new episode in an existing season folder: the folder's mtime seen
    # through rclone does not move, so only re-listing finds it.
    (m.src / "Show/S01/e03.mkv").write_bytes(b"video")
    wait_until(lambda: m.visible("Show/S01/e03.mkv"), "e03 to show through the mount")
    second = m.graylink("reconcile")
    assert second.returncode == 0, second.stderr
    assert "Show/S01/e03.mkv" in m.links_now()

    (m.src / "Show/S01/e01.mkv").unlink()
    wait_until(lambda: not m.visible("Show/S01/e01.mkv"), "e01 to vanish from the mount")
    third = m.graylink("reconcile")
    assert third.returncode == 0, third.stderr
    assert m.links_now() == {"Show/S01/e02.mkv", "Show/S01/e03.mkv", "Movies/X (2001)/X.mp4"}


def test_unmounted_source_is_remounted_and_nothing_is_pruned(rclone_mount: Callable[..., Mounted]) -> None:
    m = rclone_mount()
    assert m.graylink("reconcile").returncode == 0
    before = m.links_now()
    remount = shlex.join([*m.argv, "--daemon"])
    m.write_config(remount_command=remount, remount_wait="20s")
    subprocess.run(["fusermount3", "-u", str(m.mnt)], check=True)
    m.process.wait(timeout=10)
    assert os.listdir(m.mnt) == []  # what a dropped mount looks like

    run = m.graylink("reconcile")
    assert run.returncode == 0, run.stderr
    assert "source-mountpoint" in run.stderr
    assert "Traceback" not in run.stderr
    assert fsinfo.is_mountpoint(str(m.mnt))
    assert m.links_now() == before
    assert all(os.path.exists(m.links / rel) for rel in before)
    status = m.graylink("reconcile", "--dry-run")
    assert status.returncode == 0 and "source-mountpoint" not in status.stderr


def test_failing_remount_command_prunes_nothing_and_exits_1(rclone_mount: Callable[..., Mounted]) -> None:
    m = rclone_mount()
    assert m.graylink("reconcile").returncode == 0
    before = m.links_now()
    m.write_config(remount_command=shlex.join([*m.argv, "--no-such-flag", "--daemon"]), remount_wait="2s")
    subprocess.run(["fusermount3", "-u", str(m.mnt)], check=True)
    m.process.wait(timeout=10)

    run = m.graylink("reconcile", "--force")
    assert run.returncode == 1
    assert "mount check source-mountpoint failed" in run.stderr
    assert "remount command (rclone) failed" in run.stderr
    assert "Traceback" not in run.stderr
    assert m.links_now() == before


def test_dead_mount_prunes_nothing(rclone_mount: Callable[..., Mounted]) -> None:
    m = rclone_mount()
    assert m.graylink("reconcile").returncode == 0
    before = m.links_now()
    m.process.send_signal(signal.SIGKILL)
    m.process.wait(timeout=10)
    with pytest.raises(OSError) as dead:
        os.listdir(m.mnt)
    assert "not connected" in str(dead.value)

    run = m.graylink("reconcile", "--force")
    assert run.returncode == 1
    assert "mount check source-listable failed" in run.stderr
    assert "Traceback" not in run.stderr
    assert m.links_now() == before


def test_dead_mount_is_lazily_unmounted_before_the_remount(rclone_mount: Callable[..., Mounted]) -> None:
    m = rclone_mount()
    assert m.graylink("reconcile").returncode == 0
    m.write_config(remount_command=shlex.join([*m.argv, "--daemon"]), remount_wait="20s")
    m.process.send_signal(signal.SIGKILL)
    m.process.wait(timeout=10)

    run = m.graylink("reconcile")
    assert run.returncode == 0, run.stderr
    assert "lazily unmounted" in run.stderr
    assert m.links_now() == set(SHOW)


def _rc_config(m: Mounted, port: int, **keys: str) -> None:
    m.write_config(rclone_rc=f"http://127.0.0.1:{port}", **keys)


def test_vfs_refresh_without_auth_shows_new_files_at_once(rclone_mount: Callable[..., Mounted]) -> None:
    port = free_port()
    m = rclone_mount("--rc", "--rc-addr", f"127.0.0.1:{port}", "--rc-no-auth", dir_cache="1000h")
    _rc_config(m, port)
    config = load_config(str(m.ini))
    assert sorted(os.listdir(m.mnt / "Show/S01")) == ["e01.mkv", "e02.mkv"]
    (m.src / "Show/S01/e03.mkv").write_bytes(b"video")
    (m.src / "Show/S02").mkdir()
    (m.src / "Show/S02/e01.mkv").write_bytes(b"video")
    assert not m.visible("Show/S01/e03.mkv")  # the directory cache holds for 1000h

    # S02 is new to rclone's VFS: refreshing it falls back to its parent.
    assert rc.vfs_refresh(config, [b"Show/S01", b"Show/S02"])
    assert m.visible("Show/S01/e03.mkv")
    assert m.visible("Show/S02")


def test_drive_marks_are_vfs_refreshed_before_the_reconcile(rclone_mount: Callable[..., Mounted]) -> None:
    port = free_port()
    m = rclone_mount("--rc", "--rc-addr", f"127.0.0.1:{port}", "--rc-no-auth", dir_cache="1000h")
    _rc_config(m, port)
    config = load_config(str(m.ini))
    with Store(config.paths.database) as store:
        assert run_cycle(config, store, CycleOptions()).exit_code == 0
        (m.src / "Show/S01/e03.mkv").write_bytes(b"video")
        store.add_marks([Mark(b"Show/S01", "drive", recursive=False)])
        result = run_cycle(config, store, CycleOptions())
    assert result.exit_code == 0
    assert "Show/S01/e03.mkv" in m.links_now()


def test_reconcile_path_has_rclone_re_read_the_folder(rclone_mount: Callable[..., Mounted]) -> None:
    """troubleshooting.md: --path forces a re-read of the folder, through rclone's long directory cache too."""
    port = free_port()
    m = rclone_mount("--rc", "--rc-addr", f"127.0.0.1:{port}", "--rc-no-auth", dir_cache="1000h")
    _rc_config(m, port)
    assert m.graylink("reconcile").returncode == 0
    (m.src / "Show/S01/e03.mkv").write_bytes(b"video")
    (m.src / "Show/S02").mkdir()
    (m.src / "Show/S02/e01.mkv").write_bytes(b"video")
    assert not m.visible("Show/S01/e03.mkv")  # the directory cache holds for 1000h
    run = m.graylink("reconcile", "--path", "Show/S01/e03.mkv", "--path", "Show")
    assert run.returncode == 0, run.stderr
    assert "2 created" in run.stdout, run.stdout + run.stderr
    assert {"Show/S01/e03.mkv", "Show/S02/e01.mkv"} <= m.links_now()


def test_vfs_refresh_with_credentials(rclone_mount: Callable[..., Mounted], caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    secret = "made-up-rc-pass-7"
    m = rclone_mount(
        "--rc", "--rc-addr", f"127.0.0.1:{port}", "--rc-user", "graylink", "--rc-pass", secret, dir_cache="1000h"
    )
    _rc_config(m, port, rclone_rc_user="graylink", rclone_rc_pass=secret)
    (m.src / "Movies/Y (2002)").mkdir()
    assert rc.vfs_refresh(load_config(str(m.ini)), [b"Movies"])
    assert m.visible("Movies/Y (2002)")

    caplog.set_level(logging.DEBUG)
    _rc_config(m, port, rclone_rc_user="graylink", rclone_rc_pass="wrong-" + secret)
    assert not rc.vfs_refresh(load_config(str(m.ini)), [b"Movies"])
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("refused vfs/refresh (401)" in e for e in errors)
    assert all(secret not in r.getMessage() for r in caplog.records)


def test_doctor_checks_read_the_serving_rclone_flags(rclone_mount: Callable[..., Mounted]) -> None:
    port = free_port()
    m = rclone_mount("--rc", "--rc-addr", f"127.0.0.1:{port}", "--rc-no-auth")
    _rc_config(m, port)
    config = load_config(str(m.ini))
    with Store(config.paths.database) as store:
        checks = mount_checks.doctor_checks(config, store)
    by_name = {c.name: c for c in checks}
    assert by_name["mount"].ok
    flags = [c for c in checks if c.name == "rclone flags"]
    assert len(flags) == 1 and flags[0].warn
    assert flags[0].message.startswith("--dir-cache-time 1s is shorter than an hour")
    assert by_name["rclone rc"].ok


def test_a_deleted_folder_named_by_path_is_pruned_through_the_directory_cache(
    rclone_mount: Callable[..., Mounted],
) -> None:
    """issue 27 item 5: a Radarr MovieDelete (--path of a folder gone from the Drive).

    vfs/refresh of the gone folder answers an error; rclone's cache still shows
    it. The parent is refreshed, not recursively, and the links go at once;
    never a recursive refresh of the parent or of rclone's root.
    """
    port = free_port()
    m = rclone_mount("--rc", "--rc-addr", f"127.0.0.1:{port}", "--rc-no-auth", dir_cache="1000h")
    _rc_config(m, port)
    assert m.graylink("reconcile").returncode == 0
    assert "Movies/X (2001)/X.mp4" in m.links_now()
    shutil.rmtree(m.src / "Movies/X (2001)")
    assert m.visible("Movies/X (2001)")  # the directory cache holds for 1000h
    run = m.graylink("-v", "reconcile", "--path", "Movies/X (2001)")
    assert run.returncode == 0, run.stderr
    assert "1 pruned" in run.stdout, run.stdout + run.stderr
    assert "Movies/X (2001)/X.mp4" not in m.links_now()
    assert " ERROR " not in run.stderr, run.stderr
    refreshes = [line for line in run.stderr.splitlines() if "vfs/refresh" in line and "POST" in line]
    assert refreshes and not any("recursive" in line for line in refreshes if "dir=Movies/X" not in line), refreshes


def test_doctor_tells_an_rc_that_serves_another_mount(rclone_mount: Callable[..., Mounted], tmp_path: Path) -> None:
    """issue 27 item 5: a wrong rclone_rc port (another rclone) refreshed another remote, silently."""
    port = free_port()
    m = rclone_mount("--rc", "--rc-addr", f"127.0.0.1:{port}", "--rc-no-auth", dir_cache="1000h")
    other_src, other_mnt, other_port = tmp_path / "other-src", tmp_path / "other-mnt", free_port()
    other_src.mkdir()
    other_mnt.mkdir()
    argv = ["rclone", "mount", str(other_src), str(other_mnt), "--config", "/dev/null",
            "--rc", "--rc-addr", f"127.0.0.1:{other_port}", "--rc-no-auth"]  # fmt: skip
    other = _start(argv, other_mnt)
    try:
        wait_until(lambda: _answers(other_port), "the other rclone's rc")
        _rc_config(m, other_port)
        wrong = m.graylink("doctor")
        line = next(line for line in wrong.stdout.splitlines() if "rclone rc source" in line)
        assert line.startswith("✘") and f"serves {other_src}, not {m.src}" in line, wrong.stdout
        _rc_config(m, port)
        right = m.graylink("doctor")
        line = next(line for line in right.stdout.splitlines() if "rclone rc source" in line)
        assert line.startswith("✔") and f"serves the mount at {m.mnt}" in line, right.stdout
    finally:
        _stop(other_mnt, other)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_a_dry_run_does_not_ask_rclone_to_refresh(rclone_mount: Callable[..., Mounted]) -> None:
    """issue 27 item 7: --dry-run asked rclone to re-read folders (it changes nothing, rclone's cache included)."""
    port = free_port()
    m = rclone_mount("--rc", "--rc-addr", f"127.0.0.1:{port}", "--rc-no-auth", dir_cache="1000h")
    _rc_config(m, port)
    assert m.graylink("reconcile").returncode == 0
    (m.src / "Show/S02").mkdir()
    (m.src / "Show/S02/e01.mkv").write_bytes(b"video")
    run = m.graylink("-v", "reconcile", "--dry-run", "--path", "Show/S02", "--path", "Show")
    assert "vfs/refresh" not in run.stderr, run.stderr
    assert not m.visible("Show/S02")  # rclone's directory cache was left as it was
