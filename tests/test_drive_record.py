"""The item record lists the root's tree (graylink.drive.seed), so removals of items the feed never met
are placed (or known to lie outside) instead of marking the whole source; with the Drive calls it costs.

Against the loopback Google (``tests/google_server.py``: ``files.list`` after drive.v3.json and the
"Search for files and folders" guide; ``tests/google_changes.py``: ``changes.list``). Drive v3
``changes``: a removal carries only ``fileId`` and ``removed: true``.
"""

from __future__ import annotations

import logging
import time

import pytest

from graylink.config import Config
from graylink.drive.feed import drive_status, poll_drive
from graylink.store.db import Store
from tests import drive_feed_support as feed
from tests.google_server import MY_DRIVE_ROOT
from tests.test_drive import Drive, marks

google, drive, setup, clear = feed.google, feed.drive, feed.setup, feed.clear  # the shared fixtures


@pytest.fixture(autouse=True)
def no_margin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("graylink.drive.seed.MARGIN_MS", 0)


def library(drive: Drive, shows: int, seasons: int, episodes: int) -> None:
    """A library already on the Drive before the feed starts: nothing of it is in the change log."""
    for s in range(shows):
        drive.folder(f"Show {s}")
        for n in range(seasons):
            drive.folder(f"Show {s}/S{n}")
            for e in range(episodes):
                drive.file(f"Show {s}/S{n}/e{e}.mkv", record=False)


def poll_until_listed(config: Config, store: Store, limit: int = 50) -> int:
    """Polls until the record knows every item under the root; how many polls it took."""
    for n in range(1, limit + 1):
        result = poll_drive(config, store)
        assert result.error is None
        if drive_status(store)["record_complete"]:
            return n
    raise AssertionError("the record never listed the whole tree")


def test_a_file_deleted_for_good_that_the_feed_never_met_marks_its_folder_not_the_root(setup, drive, google):
    config, store = setup
    library(drive, 2, 2, 3)
    other = google.add("Other", MY_DRIVE_ROOT, folder=True, record=False)
    elsewhere = [google.add(f"doc{n}.txt", other, record=False) for n in range(5)]
    assert poll_until_listed(config, store) == 1  # 1 + 2 + 4 folders: one files.list each level, one poll
    time.sleep(0.005)
    clear(store)
    google.delete_forever(drive.ids["Show 1/S0/e2.mkv"])
    assert poll_drive(config, store).error is None
    assert marks(store) == {(b"Show 1/S0", False)}
    clear(store)
    for item_id in elsewhere:  # never under the root: the complete record says so, nothing is marked
        google.delete_forever(item_id)
    assert poll_drive(config, store).error is None
    assert marks(store) == set()


def test_removals_while_the_listing_is_unfinished_still_mark_the_whole_source(setup, drive, google, monkeypatch):
    config, store = setup
    monkeypatch.setattr("graylink.drive.seed.CALLS_PER_POLL", 1)
    library(drive, 3, 1, 1)
    other = google.add("Other", MY_DRIVE_ROOT, folder=True, record=False)
    doc = google.add("doc.txt", other, record=False)
    assert poll_drive(config, store).error is None  # started; the root listed, its folders not yet
    assert not drive_status(store)["record_complete"]
    google.delete_forever(doc)
    assert poll_drive(config, store).error is None
    assert marks(store) == {(b"", True)}


def test_removals_dated_before_the_listing_finished_stay_ambiguous(setup, drive, google, monkeypatch):
    """A folder listed at time L misses what was removed just before L, while that removal may still
    wait in the feed: such removals are dated before the listing and keep marking the source."""
    monkeypatch.setattr("graylink.drive.seed.MARGIN_MS", 120_000)
    config, store = setup
    library(drive, 1, 1, 2)
    other = google.add("Other", MY_DRIVE_ROOT, folder=True, record=False)
    doc = google.add("doc.txt", other, record=False)
    poll_until_listed(config, store)
    google.delete_forever(doc)
    assert poll_drive(config, store).error is None
    assert marks(store) == {(b"", True)}


def test_folders_moved_in_and_created_are_listed_and_their_files_known(setup, drive, google):
    config, store = setup
    library(drive, 1, 1, 1)
    outside = google.add("Downloads", MY_DRIVE_ROOT, folder=True, record=False)
    pack = google.add("Season Pack", outside, folder=True, record=False)
    inside = [google.add(f"p{n}.mkv", pack, record=False) for n in range(3)]
    poll_until_listed(config, store)
    time.sleep(0.005)
    google.move(pack, drive.ids["Show 0"])
    assert poll_drive(config, store).error is None
    assert drive_status(store)["record_complete"]  # listed in the poll that placed it
    clear(store)
    google.delete_forever(inside[1])
    assert poll_drive(config, store).error is None
    assert marks(store) == {(b"Show 0/Season Pack", False)}


def test_listing_cost_is_one_call_per_fifty_folders_and_bounded_per_poll(setup, drive, google, caplog):
    """The measure in docs/google-drive.md: 20 shows x 4 seasons x 10 episodes (101 folders, 800
    files) take ceil(1/50) + ceil(20/50) + ceil(80/50) = 4 files.list calls; a poll spends at most
    CALLS_PER_POLL; a quiet poll after it is one changes.list again."""
    config, store = setup
    library(drive, 20, 4, 10)
    caplog.set_level(logging.INFO, logger="graylink")
    assert poll_until_listed(config, store) == 1
    assert google.calls("files.list") == 4
    assert drive_status(store)["known_items"] == 1 + 20 + 80 + 800
    before = dict(google.state.calls)
    result = poll_drive(config, store)
    assert result.calls == 1 and google.calls("files.list") == before["files.list"]
    assert "knows every item under the root" in caplog.text


def test_a_big_tree_is_listed_over_several_polls(setup, drive, google, monkeypatch):
    config, store = setup
    monkeypatch.setattr("graylink.drive.seed.CALLS_PER_POLL", 2)
    monkeypatch.setattr("graylink.drive.seed.PAGE_SIZE", 10)
    library(drive, 3, 2, 5)  # 1 + 3 + 6 folders, 30 files: pages of 10
    polls = poll_until_listed(config, store)
    assert polls > 1
    assert drive_status(store)["known_items"] == 1 + 3 + 6 + 30
