"""Faults of a real rclone mount staged in the middle of a walk: a restart, a freeze.

The restart is the one the documented systemd unit performs (docs/rclone.md):
``fusermount3 -uz`` of the mount point, SIGTERM to rclone, then the same
``rclone mount`` again. While it happens the mount point shows the empty
folder underneath (ENOENT for every folder below it), or answers ENOTCONN /
ECONNABORTED; afterwards a new mount (a new device) shows everything again.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_mount import _MISSING, REPO, _start, _stop, wait_until

from graylink.config import load_config
from graylink.rclone.mountflags import rclone_processes_serving
from graylink.reconcile.cycle import CycleOptions, run_cycle
from graylink.source.listing import MountGone
from graylink.store.db import Store
from graylink.system.progress import Meter

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(
        bool(_MISSING),
        reason=f"FUSE TESTS SKIPPED: {', '.join(_MISSING)} missing (install Debian's rclone and fuse3)",
    ),
]

SHOWS, SEASONS, EPISODES = 200, 4, 2
FOLDERS = 1 + SHOWS * (1 + SEASONS)  # the root, each show, each season


@dataclass
class Library:
    src: Path
    mnt: Path
    links: Path
    ini: Path
    argv: list[str]
    process: subprocess.Popen[bytes]

    def files(self) -> set[str]:
        return {str(p.relative_to(self.src)) for p in self.src.rglob("*.mkv")}

    def links_now(self) -> set[str]:
        return {str(p.relative_to(self.links)) for p in self.links.rglob("*") if p.is_symlink()}

    def take_down(self) -> None:
        """What ``ExecStop=`` and a restart of the unit do: a lazy unmount, then SIGTERM."""
        subprocess.run(["fusermount3", "-uz", str(self.mnt)], capture_output=True, check=False, timeout=30)
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)

    def bring_up(self) -> None:
        self.process = _start(self.argv, self.mnt)


def _mount(tmp_path: Path, shows: int, mnt: Path | None = None, library: str = "") -> Library:
    """``library``: the source is that folder inside the mount (as /mnt/gdrive/Media often is)."""
    src, links = tmp_path / "src", tmp_path / "links"
    mnt = mnt or tmp_path / "mnt"
    for show in range(shows):
        for season in range(SEASONS):
            folder = src / library / f"Show {show:02d}" / f"Season {season}"
            folder.mkdir(parents=True)
            for episode in range(EPISODES):
                (folder / f"e{episode:02d}.mkv").write_bytes(b"v")
    mnt.mkdir()
    links.mkdir()
    argv = [
        "rclone", "mount", str(src), str(mnt), "--config", "/dev/null",
        "--dir-cache-time", "1000h", "--attr-timeout", "1s",
        "--log-file", str(tmp_path / "rclone.log"),
    ]  # fmt: skip
    ini = tmp_path / "graylink.ini"
    database = tmp_path / "graylink.db"
    ini.write_text(f"[paths]\nsource = {mnt / library}\ntarget = {links}\ndatabase = {database}\n[scan]\nworkers = 2\n")
    return Library(src, mnt, links, ini, argv, _start(argv, mnt))


def _unmount(lib: Library) -> None:
    try:
        for pid in [lib.process.pid] + [p.pid for p in rclone_processes_serving(str(lib.mnt))]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)  # a stopped rclone cannot die of SIGKILL's cleanup otherwise
    finally:
        _stop(lib.mnt, lib.process)


@pytest.fixture
def library(tmp_path: Path) -> Iterator[Library]:
    lib = _mount(tmp_path, SHOWS)
    yield lib
    _unmount(lib)


@pytest.fixture
def small_library(tmp_path: Path) -> Iterator[Library]:
    """A mount that the test will freeze, in a folder of its own: under the shared
    pytest base folder, any other process that looks at old test folders (pytest
    cleaning them up, in a concurrent session) would freeze with it."""
    private = Path(tempfile.mkdtemp(prefix="graylink-frozen-"))
    lib = _mount(tmp_path, 3, private / "mnt", library="Media")
    try:
        yield lib
    finally:
        _unmount(lib)
        shutil.rmtree(private, ignore_errors=True)


class RestartMidWalk(Meter):
    """A progress meter that takes the mount down once the walk has listed
    ``down_at`` folders, and brings it back up after ``up_after`` more
    (while the walk goes on), or 0.2 s later on a timer thread (the walk then
    ends on a mount that is down, or back as a new mount)."""

    def __init__(self, lib: Library, down_at: int, up_after: int | None) -> None:
        super().__init__(every=3600.0)  # on, and silent: only the counts it is told are used
        self.listing = False
        self.lib = lib
        self.down_at = down_at
        self.up_after = up_after
        self.went_down = self.came_up = False
        self.after_down = 0  # folders the walk went on to process
        self.comeback: threading.Thread | None = None

    def begin(self, name: str, total: int | None = None, *, approx: bool = False, counted: bool = True) -> None:
        self.listing = name == "listing folders"
        super().begin(name, total, approx=approx, counted=counted)

    def count(self, done: int, files: int | None = None) -> None:
        super().count(done, files)
        if self.listing:
            self._listed(done)

    def _listed(self, dirs: int) -> None:
        if self.went_down:
            self.after_down += 1
            if self.after_down == self.up_after:
                self.came_up = True
                self.lib.bring_up()
        elif dirs >= self.down_at:
            self.went_down = True
            self.lib.take_down()
            if self.up_after is None:
                self.comeback = threading.Timer(0.2, self.lib.bring_up)
                self.comeback.start()

    def settle(self) -> None:
        if self.comeback is not None:
            self.comeback.join(60)
        elif self.went_down and not self.came_up:
            self.lib.bring_up()
        # The walk may end early (it saw the mount change): the restart still happened mid-walk.
        assert self.went_down, "the staged restart never happened: the walk is too short for the hook"


def _indexed_files(store: Store) -> int:
    return store.count("file")


@pytest.mark.parametrize(
    ("full", "down_at", "up_after"),
    [
        pytest.param(False, FOLDERS // 5, 300, id="walk-restarted-at-20%"),
        pytest.param(False, FOLDERS * 3 // 5, None, id="walk-restarted-at-60%"),
        pytest.param(True, FOLDERS // 5, 100, id="full-verify-restarted-at-20%"),
    ],
)
def test_a_mount_restarted_during_a_walk_costs_no_link(
    library: Library, full: bool, down_at: int, up_after: int | None
) -> None:
    wanted = library.files()
    assert len(wanted) == SHOWS * SEASONS * EPISODES
    config = load_config(str(library.ini))
    with Store(config.paths.database) as store:
        assert run_cycle(config, store, CycleOptions()).exit_code == 0
        assert library.links_now() == wanted

        restart = RestartMidWalk(library, down_at, up_after)
        try:
            faulted = run_cycle(config, store, CycleOptions(progress=restart, full=full))
        except MountGone:
            pass  # the CLI reports it in one line (exit 1); the marks are kept
        else:
            assert faulted.exit_code == 1, "a walk that saw the mount change must not pass as clean"
        finally:
            restart.settle()
        # Nothing listed during the restart reached the index, and no link went.
        assert _indexed_files(store) == len(wanted)
        assert library.links_now() == wanted

        # The next run converges, and so does the brake's own advice (--force).
        after = run_cycle(config, store, CycleOptions())
        assert after.exit_code == 0, after.failures
        forced = run_cycle(config, store, CycleOptions(force=True, full=True))
        assert forced.exit_code == 0, forced.failures
        assert forced.plan.counts()["prune"] == 0
        assert library.links_now() == wanted
        assert _indexed_files(store) == len(wanted)
        assert run_cycle(config, store, CycleOptions()).plan.is_empty()


# ------------------------------------------------------------- a frozen mount


def _graylink(lib: Library, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graylink", "-c", str(lib.ini), *args],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_frozen_mount_does_not_freeze_a_reconcile(small_library: Library) -> None:
    lib = small_library
    assert _graylink(lib, "reconcile").returncode == 0
    wanted = lib.links_now()
    os.kill(lib.process.pid, signal.SIGSTOP)  # what a blocked rclone looks like
    try:
        started = time.monotonic()
        run = _graylink(lib, "reconcile", "--force")
        took = time.monotonic() - started
    finally:
        os.kill(lib.process.pid, signal.SIGCONT)
    assert run.returncode == 1, run.stderr
    assert "the mount does not answer" in run.stderr
    assert "Traceback" not in run.stderr
    # Config loading, the mount check and the walk each give up on their own
    # deadline (2 s, 10 s), not on the test's: a hang is 120 s here.
    assert took < 40, f"a reconcile over a frozen mount took {took:.0f}s"
    assert lib.links_now() == wanted
    again = _graylink(lib, "reconcile")
    assert again.returncode == 0, again.stderr
    assert lib.links_now() == wanted


class LoopProcess:
    def __init__(self, lib: Library) -> None:
        self.log = lib.ini.parent / "loop.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "graylink", "-c", str(lib.ini), "reconcile", "--loop"],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_log(self, needle: str, count: int = 1, limit: float = 60.0) -> float:
        """Seconds until ``needle`` is in the log ``count`` times."""
        started = time.monotonic()
        wait_until(lambda: self.text().count(needle) >= count or self.proc.poll() is not None, needle, limit)
        assert self.proc.poll() is None, f"the loop exited ({self.proc.returncode}):\n{self.text()}"
        return time.monotonic() - started

    def stop_within(self) -> float:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) == 0, self.text()
        return time.monotonic() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def loop_over(small_library: Library) -> Iterator[Callable[[str], LoopProcess]]:
    started: list[LoopProcess] = []

    def start(mount_keys: str) -> LoopProcess:
        with small_library.ini.open("a") as ini:
            ini.write(f"interval = 1h\n[mount]\ncheck_interval = 2s\n{mount_keys}")
        loop = LoopProcess(small_library)
        started.append(loop)
        return loop

    yield start
    for loop in started:
        loop.kill()


def test_a_frozen_mount_in_the_loop_is_reported_and_remounted(
    small_library: Library, loop_over: Callable[[str], LoopProcess]
) -> None:
    lib = small_library
    remount = shlex.join([*lib.argv, "--daemon"])
    loop = loop_over(f"remount_command = {remount}\nremount_wait = 20s\n")
    loop.wait_log("reconcile (walk)")
    wanted = lib.links_now()
    frozen = lib.process.pid
    os.kill(frozen, signal.SIGSTOP)
    try:
        # check_interval (2 s) + the probe's 10 s (the walk ran at start; it is not due again).
        assert loop.wait_log("mount check source-listable failed") < 2 + 10 + 5
        assert "the mount does not answer" in loop.text()
        loop.wait_log("lazily unmounted")
        loop.wait_log("is healthy again")
        assert sorted(os.listdir(lib.mnt / "Media")) == ["Show 00", "Show 01", "Show 02"]
        assert loop.stop_within() < 10
    finally:
        os.kill(frozen, signal.SIGCONT)
    assert lib.links_now() == wanted


def test_sigterm_stops_the_loop_within_seconds_over_a_frozen_mount(
    small_library: Library, loop_over: Callable[[str], LoopProcess]
) -> None:
    lib = small_library
    loop = loop_over("")
    loop.wait_log("reconcile (walk)")
    os.kill(lib.process.pid, signal.SIGSTOP)
    try:
        loop.wait_log("mount check source-listable failed")
        # Now every mount check blocks a thread: SIGTERM must still end the loop at once.
        time.sleep(3)
        assert loop.stop_within() < 5
    finally:
        os.kill(lib.process.pid, signal.SIGCONT)


def test_a_mount_frozen_before_the_trusted_walk_ends_it_within_its_deadline(small_library: Library) -> None:
    """``trust_dir_mtime = yes`` forced on a FUSE mount: the walk's pass of one
    lstat per known folder runs after the mount check, and a mount that freezes
    in between must end that pass on its deadline (MountGone), not hang it."""
    from graylink.source.sourcecheck import SourceGuard
    from graylink.triggers.walk import walk

    lib = small_library
    with lib.ini.open("a") as ini:
        ini.write("trust_dir_mtime = yes\n")  # into [scan]
    config = load_config(str(lib.ini))
    root = os.fsencode(config.paths.source)
    with Store(config.paths.database) as store:
        assert run_cycle(config, store, CycleOptions()).exit_code == 0
        wanted = lib.links_now()
        assert wanted and not store.pending_marks()
        guard = SourceGuard(config.paths.source, hang_prone=True)  # what the cycle takes after its mount check
        outcome: list[BaseException | None] = []

        def trusted_walk(should_stop: Callable[[], bool] | None = None) -> None:
            try:
                walk(store, root, trusted=True, workers=2, guard=guard, should_stop=should_stop, hang_timeout=3)
            except BaseException as exc:  # handed to the test
                outcome.append(exc)
            else:
                outcome.append(None)

        os.kill(lib.process.pid, signal.SIGSTOP)
        try:
            time.sleep(1.5)  # past the mount's --attr-timeout 1s: every lstat now asks the frozen rclone
            for should_stop, limit in ((None, 3 + 10), (lambda: True, 5)):
                outcome.clear()
                thread = threading.Thread(target=trusted_walk, args=(should_stop,), daemon=True)
                started = time.monotonic()
                thread.start()
                thread.join(limit)
                assert not thread.is_alive(), f"the trusted walk over a frozen mount still waits after {limit}s"
                took = time.monotonic() - started
                if should_stop is None:
                    assert isinstance(outcome[0], MountGone), outcome
                    assert "does not answer" in str(outcome[0]) and "\n" not in str(outcome[0])
                    assert took >= 3, f"gave up after {took:.1f}s, before its deadline"
                else:
                    assert type(outcome[0]).__name__ == "Interrupted", outcome
        finally:
            os.kill(lib.process.pid, signal.SIGCONT)
        assert not store.pending_marks(), "a walk that got no answer marked folders"
        assert run_cycle(config, store, CycleOptions()).exit_code == 0
        assert lib.links_now() == wanted
