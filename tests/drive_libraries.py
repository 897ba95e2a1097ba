"""Two ``[library NAME]`` sections on one Drive remote, each its own folder of it, run as a real
``graylink reconcile --loop`` against the loopback Google (tests/google_server.py): the setup
tests/test_drive_shared.py (Changes feed) and tests/test_drive_shared_activity.py (Activity feed) share.

The walk runs once an hour and folder mtimes are trusted and put back after every change, so
whatever gets linked or pruned after the first walk came through the feed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from service_support import WAIT_S, wait_for

from tests.google_server import MY_DRIVE_ROOT, FakeGoogle
from tests.test_drive import CLIENT_ID, CLIENT_SECRET, write_rclone_conf

from conftest import REPO

NAMES = ("films", "series")
OLD = time.time() - 7200  # every folder's mtime, as the mount keeps showing it

# Called for each library before the loop starts: (name, its source folder, its Drive folder's id).
Prepare = Callable[[str, Path, str], None]


def age(root: Path) -> None:
    for dirpath, _, _ in os.walk(root):
        os.utime(dirpath, (OLD, OLD))


@dataclass
class DriveLoop:
    tmp_path: Path
    google: FakeGoogle
    media: str  # the Drive folder both libraries' folders sit in
    folders: dict[str, str]  # each library's Drive folder
    proc: subprocess.Popen[bytes]
    log: Path
    code: int | None = None  # the loop's exit code, once stopped

    def logged(self) -> str:
        return self.log.read_text(errors="replace")

    def add(self, name: str, folder: str, file: str) -> None:
        """A new folder with a file, on the Drive and on the 'mount' (whose folder mtimes stay)."""
        src = self.tmp_path / f"src-{name}"
        (src / folder).mkdir()
        (src / folder / file).write_bytes(b"video")
        age(src)
        self.google.add(file, self.google.add(folder, self.folders[name], folder=True, record=True), record=True)

    def wait_walked(self) -> None:
        """Each library's feed started and its first walk done: the rest is the feed's."""
        for name in NAMES:
            for step in ("drive feed: started", "reconcile (walk)"):
                wait_for(f"{name}: {step}", lambda s=f"[library {name}] {step}": s in self.logged(), self.proc)  # type: ignore[misc]


@contextmanager
def drive_loop(
    tmp_path: Path, google: FakeGoogle, *, feed: str, scopes: str, interval: float, prepare: Prepare | None = None
) -> Iterator[DriveLoop]:
    """The loop of two libraries on one remote, stopped (SIGTERM) when the block ends."""
    google.add_client(CLIENT_ID, CLIENT_SECRET)
    media = google.add("Media", MY_DRIVE_ROOT, folder=True, record=False)
    conf = tmp_path / "rclone.conf"
    write_rclone_conf(conf, google, scopes=scopes, root_folder_id=media)
    folders: dict[str, str] = {}
    text = (
        f"[paths]\ndatabase = {tmp_path / 'state' / 'graylink.db'}\n"
        "[scan]\ninterval = 1h\ntrust_dir_mtime = yes\nsettle = 0s\nworkers = 2\n"
        f"[drive]\nenabled = yes\nfeed = {feed}\ninterval = {interval:g}s\nrclone_config = {conf}\n"
        f"api_endpoint = {google.url}\ntoken_uri = {google.url}/token\n"
        f"token_file = {tmp_path / 'drive-token.json'}\n"
    )
    for name in NAMES:
        folders[name] = google.add(name.title(), media, folder=True, record=False)
        src = tmp_path / f"src-{name}"
        src.mkdir()
        if prepare is not None:
            prepare(name, src, folders[name])
        age(src)
        text += (
            f"[library {name}]\nsource = {src}\ntarget = {tmp_path / f'links-{name}'}\n"
            f"drive_remote = gdrive:\ndrive_folder_id = {folders[name]}\n"
        )
    ini = tmp_path / "graylink.ini"
    ini.write_text(text)
    log = tmp_path / "loop.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "graylink", "-c", str(ini), "reconcile", "--loop"],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    loop = DriveLoop(tmp_path, google, media, folders, proc, log)
    try:
        yield loop
    finally:
        proc.terminate()
        loop.code = proc.wait(timeout=WAIT_S)
