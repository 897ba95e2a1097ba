"""Faults of a real rclone mount staged in the middle of a walk: a restart, a freeze.

The restart is the one the documented systemd unit performs (docs/rclone.md):
``fusermount3 -uz`` of the mount point, SIGTERM to rclone, then the same
``rclone mount`` again. While it happens the mount point shows the empty
folder underneath (ENOENT for every folder below it), or answers ENOTCONN /
ECONNABORTED; afterwards a new mount (a new device) shows everything again.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_mount import _MISSING, _start, _stop

from graylink.config import load_config
from graylink.cycle import CycleOptions, run_cycle
from graylink.db import Store
from graylink.listing import MountGone

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


@pytest.fixture
def library(tmp_path: Path) -> Iterator[Library]:
    src, mnt, links = tmp_path / "src", tmp_path / "mnt", tmp_path / "links"
    for show in range(SHOWS):
        for season in range(SEASONS):
            folder = src / f"Show {show:02d}" / f"Season {season}"
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
    ini.write_text(
        f"[paths]\nsource = {mnt}\ntarget = {links}\ndatabase = {tmp_path / 'graylink.db'}\n[scan]\nworkers = 2\n"
    )
    lib = Library(src, mnt, links, ini, argv, _start(argv, mnt))
    yield lib
    _stop(lib.mnt, lib.process)


class RestartMidWalk:
    """A progress hook that takes the mount down once the walk has listed
    ``down_at`` folders, and brings it back up after ``up_after`` more
    (while the walk goes on), or 0.2 s later on a timer thread (the walk then
    ends on a mount that is down, or back as a new mount)."""

    def __init__(self, lib: Library, down_at: int, up_after: int | None) -> None:
        self.lib = lib
        self.down_at = down_at
        self.up_after = up_after
        self.went_down = self.came_up = False
        self.after_down = 0  # folders the walk went on to process
        self.comeback: threading.Thread | None = None

    def __call__(self, dirs: int, files: int) -> None:
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
