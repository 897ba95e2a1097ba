"""The service's cadence with the Changes feed, on a real rclone mount of a local folder.

While the feed is healthy a walk cycle lists no source folder and a poll with
nothing new is one ``changes.list``; a file the feed reports is linked at the
next poll; the feed broken, the walk lists every folder again; the feed back,
it stops again. Counted twice: by the cycles' own stats (``status --json``)
and by the loopback Google's request log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.google_server import MY_DRIVE_ROOT, FakeGoogle
from tests.test_drive import CLIENT_ID, CLIENT_SECRET, write_rclone_conf
from tests.test_mount import _MISSING, REPO, Mounted, free_port, wait_until
from tests.test_mount import rclone_mount as rclone_mount  # the fixture

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(bool(_MISSING), reason=f"FUSE TESTS SKIPPED: {', '.join(_MISSING)} missing"),
]


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle() as server:
        server.add_client(CLIENT_ID, CLIENT_SECRET)
        yield server


def status(mounted: Mounted) -> dict[str, Any]:
    proc = mounted.graylink("status", "--json")
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def walk_cycle(mounted: Mounted, since: float) -> dict[str, Any] | None:
    """The last walk cycle's summary, if one ended after ``since``."""
    last = status(mounted).get("last_reconcile") or {}
    return last if last.get("trigger") == "walk" and last.get("at", 0) > since else None


def test_a_healthy_feed_takes_the_listing_off_the_walk(
    rclone_mount: Callable[..., Mounted], google: FakeGoogle, tmp_path: Path
) -> None:
    # The recommended mount: a directory cache that never expires, and rc for vfs/refresh.
    port = free_port()
    mounted = rclone_mount("--rc", "--rc-addr", f"127.0.0.1:{port}", "--rc-no-auth", dir_cache="1000h")
    media = google.add("Media", MY_DRIVE_ROOT, folder=True, record=False)
    show = google.add("Show", media, folder=True, record=False)
    season = google.add("S01", show, folder=True, record=False)
    conf = tmp_path / "rclone.conf"
    write_rclone_conf(conf, google, scopes="drive", root_folder_id=media)
    mounted.ini.write_text(
        f"[paths]\nsource = {mounted.mnt}\ntarget = {mounted.links}\ndatabase = {tmp_path / 'graylink.db'}\n"
        "[scan]\ninterval = 2s\nworkers = 2\n"
        f"[mount]\nrclone_rc = http://127.0.0.1:{port}\n"
        f"[drive]\nenabled = yes\ninterval = 1s\nrclone_config = {conf}\nremote = gdrive:\n"
        f"api_endpoint = {google.url}\ntoken_uri = {google.url}/token\ntoken_file = {tmp_path / 'none.json'}\n"
    )
    log = tmp_path / "loop.log"
    loop = subprocess.Popen(
        [sys.executable, "-m", "graylink", "-c", str(mounted.ini), "reconcile", "--loop"],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        wait_until(lambda: "Show/S01/e01.mkv" in mounted.links_now(), "the first walk's links", 60)
        # Healthy: a walk cycle lists nothing; a poll with nothing new is one changes.list.
        began = time.time()
        wait_until(lambda: walk_cycle(mounted, began) is not None, "a walk cycle with the feed healthy", 60)
        quiet = walk_cycle(mounted, began)
        assert quiet is not None and quiet["dirs_listed"] == 0
        drive = status(mounted)["drive"]
        assert drive["feed"] == "changes" and drive["calls_last_poll"] == 1
        assert "only the folders it marked" in drive["walk"]
        before_list, before_get = google.calls("changes.list"), google.calls("files.get")
        wait_until(lambda: google.calls("changes.list") >= before_list + 2, "two more polls", 30)
        assert google.calls("files.get") == before_get  # nothing changed: nothing looked up

        # A file the feed reports is linked at the next poll: rclone's cache would hide it
        # for 1000h, the walk would not list its folder; the feed's mark is vfs/refreshed.
        (mounted.src / "Show/S01/e03.mkv").write_bytes(b"video")
        google.add("e03.mkv", season)
        wait_until(lambda: "Show/S01/e03.mkv" in mounted.links_now(), "the reported file's link", 30)

        # The feed broken: the walk lists every folder again, with one WARNING.
        google.state.changes.faults.statuses = [(403, "forbidden", "")] * 1000
        broken = time.time()
        wait_until(
            lambda: (w := walk_cycle(mounted, broken)) is not None and w["dirs_listed"] > 0,
            "a listing walk with the feed broken",
            60,
        )
        assert "the walk lists every folder" in status(mounted)["drive"]["walk"]
        assert log.read_text().count(" WARNING ") == 1

        # The feed back: the walk stops listing again.
        google.state.changes.faults.statuses = []
        back = time.time()
        wait_until(
            lambda: (w := walk_cycle(mounted, back)) is not None and w["dirs_listed"] == 0,
            "a quiet walk with the feed back",
            60,
        )
        assert "Traceback" not in log.read_text()
    finally:
        loop.send_signal(signal.SIGTERM)
        try:
            loop.wait(timeout=60)
        except subprocess.TimeoutExpired:
            loop.kill()
    assert loop.returncode == 0
