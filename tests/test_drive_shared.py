"""Two libraries on one Drive share one Changes poll, routed by folder (issue 30).

``graylink reconcile --loop`` runs as a real process with two ``[library
NAME]`` sections on the same rclone remote (each its own folder of it),
against the loopback Google (tests/google_server.py, tests/google_changes.py:
googleapiclient with its static discovery document and ``api_endpoint``).
The walk runs once an hour and folder mtimes are trusted and put back after
every change, so whatever gets linked after the first walk came through the feed.
"""

from __future__ import annotations

import time
from pathlib import Path

from service_support import wait_for

from tests.drive_libraries import NAMES, drive_loop
from tests.google_server import FakeGoogle
from tests.test_drive import SECRETS

from conftest import links_in

INTERVAL = 2.0


def test_two_libraries_on_one_drive_list_changes_once_per_interval(tmp_path: Path) -> None:
    with (
        FakeGoogle() as google,
        drive_loop(tmp_path, google, feed="changes", scopes="drive", interval=INTERVAL) as loop,
    ):
        loop.wait_walked()
        loop.add("films", "A (2001)", "A.mkv")
        wait_for("the film linked", lambda: b"A (2001)/A.mkv" in links_in(tmp_path / "links-films"), loop.proc)
        loop.add("series", "Show", "e1.mkv")
        wait_for("the episode linked", lambda: b"Show/e1.mkv" in links_in(tmp_path / "links-series"), loop.proc)
        assert links_in(tmp_path / "links-films").keys() == {b"A (2001)/A.mkv"}  # each change routed to its own
        assert links_in(tmp_path / "links-series").keys() == {b"Show/e1.mkv"}

        before, start = google.calls("changes.list"), time.monotonic()
        time.sleep(5 * INTERVAL)
        listed, spent = google.calls("changes.list") - before, time.monotonic() - start
        # One list per interval for both libraries (two libraries polling alone list twice as often).
        assert listed <= spent / INTERVAL + 1, (listed, spent)
    text = loop.logged()
    assert loop.code == 0, text
    assert "Traceback" not in text and " ERROR " not in text, text
    for name in NAMES:  # each linked through the feed, in its own library only
        assert text.count(f"[library {name}] reconcile (drive): 1 created") == 1, text
    assert not any(secret in text for secret in SECRETS)


def test_shared_pages_start_from_the_oldest_token_and_expire_within_half_an_interval() -> None:
    from graylink.drive.shared_changes import ChangePages, drive_key

    now = [0.0]
    pages = ChangePages(clock=lambda: now[0])
    key = drive_key("/rclone.conf", "gdrive", "", "", "rclone")
    fetched: list[str] = []

    def fetch(token: str) -> object:
        fetched.append(token)
        return f"page from {token}"

    first, second = pages.view(key, 1.0), pages.view(key, 1.0)
    assert first.start("120") == "120" and first.page("120", fetch) == "page from 120"
    # A library added later holds a newer token: it reads the older chain (re-reading, never skipping).
    assert second.start("130") == "120" and second.page("120", fetch) == "page from 120"
    assert fetched == ["120"] and second.shared == 1
    # A library behind the others (an older token) is never moved forward.
    assert pages.view(key, 1.0).start("110") == "110"
    assert pages.view(key, 1.0).start("not-a-number") == "not-a-number"  # tokens not numbers: never compared
    now[0] = 1.5  # past the shared window: listed afresh
    assert first.page("120", fetch) == "page from 120" and fetched == ["120", "120"]
    other = pages.view(drive_key("/rclone.conf", "work", "", "", "rclone"), 1.0)  # another remote: its own
    assert other.start("125") == "125" and other.page("125", fetch) and fetched[-1] == "125"
