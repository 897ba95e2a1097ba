"""Files replaced in place and files still being written reach the media servers right.

A file replaced under its name (every Sonarr/Radarr upgrade that keeps it) is
noticed by the walk (its size and mtime are in the listing's fingerprint), the
index learns its new size, and the servers get a ``Modified`` (Emby/Jellyfin)
and a partial scan (Plex). A file still being written is linked at once but
announced only once its size and mtime held still for ``[scan] settle``; a
file that changes after it was announced is announced again. Real rclone
mounts where the mount matters; loopback Emby and Plex.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emby_server import FakeMediaServer
from plex_server import FakePlex
from service_support import linked, wait_for

from tests.test_mount import Mounted, rclone_mount, wait_until  # noqa: F401  (the fixture)

from conftest import REPO, Library

KEY = "emby-key-made-up-5b1e60c2"
TOKEN = "plex-token-made-up-7c0d94aa"


def updates(emby: FakeMediaServer) -> list[tuple[str, str]]:
    """Every (path, UpdateType) Emby was sent, in order."""
    return [(u["Path"], u["UpdateType"]) for post in emby.posts("/Library/Media/Updated") for u in post.body["Updates"]]


def indexed_size(database: Path, folder: bytes, name: bytes) -> int:
    conn = sqlite3.connect(database)
    try:
        row = conn.execute(
            "SELECT f.size FROM file f JOIN directory d ON f.dir_id = d.id WHERE d.path = ? AND f.name = ?",
            (folder, name),
        ).fetchone()
    finally:
        conn.close()
    return int(row[0])


def mounted_config(m: Mounted, emby: FakeMediaServer, plex: FakePlex | None, settle: str) -> None:
    lines = [
        "[paths]",
        f"source = {m.mnt}",
        f"target = {m.links}",
        f"database = {m.ini.parent / 'graylink.db'}",
        "[scan]",
        "workers = 2",
        f"settle = {settle}",
        "[emby]",
        f"url = {emby.url}",
        f"api_key = {KEY}",
        f"path_map = {m.links}=/media",
    ]
    if plex is not None:
        lines += ["[plex]", f"url = http://127.0.0.1:{plex.port}", f"token = {TOKEN}", f"path_map = {m.links}=/data"]
    m.ini.write_text("\n".join(lines) + "\n")


def run(m: Mounted, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graylink", "-c", str(m.ini), "reconcile", "--json", *args],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_file_replaced_in_place_through_an_rclone_mount_is_reindexed_and_announced(
    rclone_mount: Callable[..., Mounted],  # noqa: F811  (the imported fixture)
) -> None:
    m = rclone_mount()
    with FakeMediaServer("emby", KEY) as emby, FakePlex(TOKEN) as plex:
        mounted_config(m, emby, plex, settle="0s")
        first = run(m)
        assert first.returncode == 0, first.stderr
        assert ("/media/Movies/X (2001)/X.mp4", "Created") in updates(emby)
        sent, scans = len(updates(emby)), len(plex.scanned())
        assert run(m).returncode == 0 and len(updates(emby)) == sent, "an unchanged library announces nothing"

        # An upgrade that keeps the name: a new file moved over the old one.
        movie = m.src / "Movies/X (2001)/X.mp4"
        upgrade = movie.with_name(".X.mp4.upgrade")
        upgrade.write_bytes(b"a better encode" * 1000)
        os.replace(upgrade, movie)
        through = m.mnt / "Movies/X (2001)/X.mp4"
        wait_until(lambda: through.stat().st_size == 15000, "the new size to show through the mount")

        done = run(m)
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout)
        assert doc["actions"] == [], "the link itself is right: nothing to change in the link tree"
        assert indexed_size(m.ini.parent / "graylink.db", b"Movies/X (2001)", b"X.mp4") == 15000
        assert updates(emby)[sent:] == [("/media/Movies/X (2001)/X.mp4", "Modified")]
        assert plex.scanned()[scans:] == [("1", "/data/Movies/X (2001)")]
        assert run(m).returncode == 0 and len(updates(emby)) == sent + 1, "said once"


def test_a_replacement_the_index_learned_through_a_mark_is_announced(lib: Library) -> None:
    """A Sonarr upgrade webhook marks the folder (here: ``--path``, the same mark):
    the index learned the new size, and now the servers hear of it too."""
    lib.add("TV/Show/Season 01/S01E01.mkv", b"old" * 10)
    with FakeMediaServer("emby", KEY) as emby:
        lib.write_ini(emby={"url": emby.url, "api_key": KEY, "path_map": f"{lib.target}=/media"})
        assert lib.run("reconcile").returncode == 0
        sent = len(updates(emby))
        lib.add("TV/Show/Season 01/S01E01.mkv", b"new" * 1000)
        done = lib.run("reconcile", "--path", str(lib.source / "TV/Show/Season 01"))
        assert done.returncode == 0, done.stderr
        assert indexed_size(lib.database, b"TV/Show/Season 01", b"S01E01.mkv") == 3000
        assert updates(emby)[sent:] == [("/media/TV/Show/Season 01/S01E01.mkv", "Modified")]


def _write_slowly(path: Path, chunks: int, pause: float, started: threading.Event) -> None:
    with open(path, "wb") as handle:
        for _ in range(chunks):
            handle.write(b"v" * 65536)
            handle.flush()
            os.fsync(handle.fileno())
            started.set()
            time.sleep(pause)


def test_a_video_written_through_an_rclone_mount_is_announced_once_it_holds_still(
    rclone_mount: Callable[..., Mounted],  # noqa: F811  (the imported fixture)
) -> None:
    m = rclone_mount("--vfs-cache-mode", "writes")
    with FakeMediaServer("emby", KEY) as emby:
        mounted_config(m, emby, None, settle="2s")
        assert run(m).returncode == 0
        assert updates(emby) == [], "the library was written a moment ago: its files wait for [scan] settle"
        time.sleep(2.5)
        assert run(m).returncode == 0
        assert len(updates(emby)) == 3 and {kind for _, kind in updates(emby)} == {"Created"}
        sent = len(updates(emby))
        new = m.mnt / "Movies/New (2024)/New.mkv"
        new.parent.mkdir()
        started = threading.Event()
        writer = threading.Thread(target=_write_slowly, args=(new, 12, 0.5, started))
        writer.start()
        try:
            assert started.wait(10)
            time.sleep(1.0)
            during = run(m)  # a cycle while the video is written
            assert during.returncode == 0, during.stderr
            assert os.path.islink(m.links / "Movies/New (2024)/New.mkv"), "linked at once"
            assert updates(emby)[sent:] == [], "not announced while it is being written"
        finally:
            writer.join()
        size = 12 * 65536
        wait_until(lambda: new.stat().st_size == size, "the whole file through the mount")
        soon = run(m)  # complete, but not yet still for [scan] settle
        assert soon.returncode == 0 and updates(emby)[sent:] == []
        time.sleep(2.5)
        settled = run(m)
        assert settled.returncode == 0, settled.stderr
        assert updates(emby)[sent:] == [("/media/Movies/New (2024)/New.mkv", "Created")]
        assert run(m).returncode == 0 and len(updates(emby)) == sent + 1, "announced once"

        # Changed after it was announced: announced again, once it holds still.
        with open(new, "ab") as handle:
            handle.write(b"w" * 65536)
        wait_until(lambda: new.stat().st_size == size + 65536, "the longer file through the mount")
        assert run(m).returncode == 0 and len(updates(emby)) == sent + 1
        time.sleep(2.5)
        assert run(m).returncode == 0
        assert updates(emby)[sent:] == [
            ("/media/Movies/New (2024)/New.mkv", "Created"),
            ("/media/Movies/New (2024)/New.mkv", "Modified"),
        ]


def test_the_loop_announces_a_settled_file_without_waiting_for_the_next_walk(
    lib: Library, loop_of: Callable[[], Any]
) -> None:
    with FakeMediaServer("emby", KEY) as emby:
        lib.write_ini(
            scan={"interval": "1h", "settle": "2s"},
            emby={"url": emby.url, "api_key": KEY, "path_map": f"{lib.target}=/media"},
        )
        lib.add("Movies/Fresh (2024)/Fresh.mkv")  # written a moment ago: waits for [scan] settle
        loop = loop_of()
        wait_for("the link", linked(lib, "Movies/Fresh (2024)/Fresh.mkv"), loop.proc)
        # The next walk is an hour away; the settle job looks again within seconds.
        wait_for("the Created", lambda: bool(updates(emby)), loop.proc)
        assert updates(emby) == [("/media/Movies/Fresh (2024)/Fresh.mkv", "Created")]
        assert loop.stop() == 0
