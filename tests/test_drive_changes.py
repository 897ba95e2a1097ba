"""The Drive Changes feed with rclone's default token (scope = drive), against the loopback Google.

Real googleapiclient (static discovery document, ``api_endpoint`` override)
and google-auth against ``tests/google_server.py`` + ``tests/google_changes.py``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from graylink.config import Config
from graylink.drive.feed import drive_status, poll_drive
from graylink.store.db import Store
from tests import drive_feed_support as feed
from tests.google_server import MY_DRIVE_ROOT
from tests.test_drive import ROOT, make_config, marks, write_rclone_conf

google, drive, setup, clear = feed.google, feed.drive, feed.setup, feed.clear  # the shared fixtures


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("graylink.drive.google.BACKOFF_BASE", 0.01)  # the real one starts at a second


def start(config: Config, store: Store) -> None:
    first = poll_drive(config, store)
    assert first.error is None and first.feed == "changes" and first.marks == 0


def test_auto_picks_the_changes_feed_for_rclones_default_scope(setup, drive, google):
    config, store = setup
    start(config, store)
    assert google.calls("changes.getStartPageToken") == 1 and google.calls("activity.query") == 0
    status = drive_status(store)
    assert status["feed"] == "changes" and "no drive.activity scope" in status["feed_reason"]
    drive.folder("Shows")
    drive.file("Shows/e1.mkv")
    result = poll_drive(config, store)
    assert (result.error, result.activities) == (None, 1)
    assert marks(store) == {(b"Shows", False)}
    query = google.state.changes.requests[-1]
    assert query["pageSize"] == "1000" and query["includeRemoved"] == "true"
    assert query["supportsAllDrives"] == "true" and query["includeItemsFromAllDrives"] == "true"
    assert "newStartPageToken" in query["fields"] and "driveId" not in query
    assert drive_status(store)["calls_last_poll"] == result.calls >= 1


def test_move_rename_trash_untrash_and_delete_for_good(setup, drive, google):
    config, store = setup
    drive.folder("A")
    drive.folder("B")
    start(config, store)
    vid = drive.file("A/x.mkv")
    poll_drive(config, store)  # the record learns where x.mkv is
    clear(store)
    google.move(vid, drive.ids["B"])
    poll_drive(config, store)
    assert marks(store) == {(b"A", False), (b"B", False)}
    clear(store)
    google.rename(vid, "y.mkv")
    poll_drive(config, store)
    assert marks(store) == {(b"B", False)}
    clear(store)
    google.trash(vid)
    poll_drive(config, store)
    assert marks(store) == {(b"B", False)}
    clear(store)
    google.untrash(vid)
    poll_drive(config, store)
    assert marks(store) == {(b"B", False)}
    clear(store)
    before = google.calls("files.get")
    google.delete_forever(vid)
    result = poll_drive(config, store)
    assert result.error is None and marks(store) == {(b"B", False)}  # from the record: no root mark
    assert google.calls("files.get") == before


def test_folder_rename_and_move_mark_old_and_new_subtrees(setup, drive, google):
    config, store = setup
    drive.folder("Shows")
    drive.folder("Old")
    start(config, store)
    season = google.add("Season 1", drive.ids["Shows"], folder=True)
    google.add("e1.mkv", season)
    poll_drive(config, store)
    clear(store)
    google.rename(season, "Season 01")
    poll_drive(config, store)
    assert marks(store) == {(b"Shows/Season 1", True), (b"Shows/Season 01", True), (b"Shows", False)}
    clear(store)
    google.move(season, drive.ids["Old"])
    poll_drive(config, store)
    assert marks(store) == {(b"Shows/Season 01", True), (b"Old/Season 01", True), (b"Shows", False), (b"Old", False)}
    clear(store)
    # The file below the moved folder is known at its new place without a lookup.
    episode = next(i for i, item in google.state.items.items() if item.name == "e1.mkv")
    before = google.calls("files.get")
    google.delete_forever(episode)
    poll_drive(config, store)
    assert marks(store) == {(b"Old/Season 01", False)} and google.calls("files.get") == before


def test_changes_outside_the_root_cost_no_lookup_each(setup, drive, google):
    config, store = setup
    other = google.add("Other", MY_DRIVE_ROOT, folder=True, record=False)
    start(config, store)
    before = google.calls("files.get")
    for n in range(5):
        google.add(f"doc{n}.txt", other)
    poll_drive(config, store)
    first = google.calls("files.get")
    assert first - before == 2  # 'Other' and the Drive's top, once
    for n in range(5, 20):
        google.add(f"doc{n}.txt", other)
    result = poll_drive(config, store)
    assert result.error is None and marks(store) == set()
    assert google.calls("files.get") == first  # the ancestry is known: none per item
    for n in range(3):
        google.delete_forever(next(i for i, it in google.state.items.items() if it.name == f"doc{n}.txt"))
    poll_drive(config, store)
    assert marks(store) == set()  # deleted for good outside the root: known from the record


def test_changes_list_is_restricted_to_my_drive_as_rclone_asks(setup, drive, google):
    """rclone ``backend/drive/drive.go`` ``changeNotifyRunner`` sends ``RestrictToMyDrive(!SharedWithMe)``;
    files shared with the user but not in My Drive then never reach the feed (no lookups for them)."""
    config, store = setup
    start(config, store)
    sharer = google.add("Someone's folder", "", folder=True, record=False)  # no parent in My Drive
    for n in range(3):
        google.add(f"shared{n}.mkv", sharer)
    drive.file("mine.mkv")
    before = google.calls("files.get")
    result = poll_drive(config, store)
    assert result.error is None and result.activities == 1 and marks(store) == {(b"", False)}
    assert google.state.changes.requests[-1]["restrictToMyDrive"] == "true"
    assert google.calls("files.get") == before


def test_trashing_items_the_feed_never_met_marks_their_folders(setup, drive, google):
    """#25.2: files and folders there before the feed started are "never met"; their trash is a
    change with ``trashed: true`` and their parents (Drive v3 ``changes``: ``Change.file`` is the
    file as it is now), so it marks where they were shown, not nothing."""
    config, store = setup
    drive.folder("Shows")
    drive.folder("Shows/S1")
    old_file = drive.file("Shows/S1/e1.mkv", record=False)
    old_folder = drive.folder("Shows/S2")
    start(config, store)
    google.trash(old_file)
    assert poll_drive(config, store).error is None
    assert marks(store) == {(b"Shows/S1", False)}
    clear(store)
    google.trash(old_folder)
    assert poll_drive(config, store).error is None
    assert marks(store) == {(b"Shows/S2", True), (b"Shows", False)}


def test_a_trash_emptied_of_items_never_met_is_one_warning_and_one_full_walk(setup, drive, google, caplog):
    """Removals carry only the fileId (Drive v3 ``changes`` reference, ``Change.file``: "Present if
    the type is file and the file has not been removed"): items the record never met cannot be
    placed, and each marks the whole source, but a page of them is one WARNING, not one each."""
    config, store = setup
    other = google.add("Other", MY_DRIVE_ROOT, folder=True, record=False)
    old = [google.add(f"doc{n}.txt", other, record=False) for n in range(30)]  # there before the feed began
    start(config, store)
    caplog.set_level(logging.WARNING, logger="graylink")
    for item_id in old:
        google.delete_forever(item_id)
    result = poll_drive(config, store)
    assert result.error is None and marks(store) == {(b"", True)}
    told = [r.getMessage() for r in caplog.records if "cannot place" in r.getMessage()]
    assert len(told) == 1, told
    assert "was deleted for good, and the item record never met it" in told[0]
    assert told[0].endswith("and 29 more: marking the whole source dirty")


def test_three_pages_each_committed_with_its_token(setup, drive, google, monkeypatch):
    config, store = setup
    monkeypatch.setattr("graylink.drive.changes.PAGE_SIZE", 4)
    for n in range(3):
        drive.folder(f"S{n}")
    start(config, store)
    for n in range(3):
        for e in range(4):
            drive.file(f"S{n}/e{e}.mkv")
    result = poll_drive(config, store)
    assert result.activities == 12 and google.calls("changes.list") == 3
    assert marks(store) == {(f"S{n}".encode(), False) for n in range(3)}
    assert store.get_meta("drive.page_token") == str(google.state.changes.next_seq)


def test_sigkill_between_pages_loses_nothing_and_marks_nothing_twice(setup, drive, google, tmp_path, monkeypatch):
    config, store = setup
    for n in range(2):
        drive.folder(f"S{n}")
    start(config, store)
    for n in range(2):
        for e in range(3):
            drive.file(f"S{n}/e{e}.mkv")
    hang = threading.Event()
    google.state.changes.faults.hang_after = 1  # the second page never comes
    google.state.changes.faults.hang = hang
    ini = tmp_path / "graylink.ini"
    ini.write_text(
        "[paths]\n"
        + "".join(f"{k} = {getattr(config.paths, k)}\n" for k in ("source", "target", "database"))
        + "[drive]\nenabled = yes\n"
        + "".join(
            f"{k} = {getattr(config.drive, k)}\n"
            for k in ("rclone_config", "remote", "api_endpoint", "token_uri", "token_file")
        )
    )
    script = (
        "import sys; import graylink.drive.changes as c; c.PAGE_SIZE = 3;"
        "from graylink.config import load_config; from graylink.store.db import Store;"
        "from graylink.drive.feed import poll_drive;"
        "cfg = load_config(sys.argv[1]); poll_drive(cfg, Store(cfg.paths.database))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(ini)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    try:
        deadline = time.monotonic() + 30
        while len(google.state.changes.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)  # page 1, then the held page 2
        assert len(google.state.changes.requests) >= 2, "the poll never asked for the second page"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    google.state.changes.faults.hang = None
    hang.set()
    assert marks(store) == {(b"S0", False)}  # page 1 committed with its token
    monkeypatch.setattr("graylink.drive.changes.PAGE_SIZE", 3)
    first_page_token = google.state.changes.requests[0]["pageToken"]
    result = poll_drive(config, store)
    assert result.error is None and result.activities == 3
    assert [q["pageToken"] for q in google.state.changes.requests].count(first_page_token) == 1
    rows = store.execute("SELECT path, count(*) FROM dirty GROUP BY path").fetchall()
    assert {(bytes(p), n) for p, n in rows} == {(b"S0", 1), (b"S1", 1)}


def test_an_invalid_page_token_starts_over_with_one_warning(setup, drive, google, caplog):
    config, store = setup
    start(config, store)
    store.set_meta("drive.page_token", "not-a-token")
    with caplog.at_level(logging.WARNING):
        result = poll_drive(config, store)
    assert result.error is None
    assert marks(store) == {(b"", True)}
    assert [r.levelno for r in caplog.records if r.levelno >= logging.WARNING] == [logging.WARNING]
    assert "fresh page token" in caplog.text
    assert store.get_meta("drive.page_token") == str(google.state.changes.next_seq)
    clear(store)
    drive.file("n.mkv")
    poll_drive(config, store)
    assert marks(store) == {(b"", False)}


def test_rate_limits_are_backed_off_with_retry_after(setup, drive, google):
    config, store = setup
    start(config, store)
    drive.file("n.mkv")
    google.state.changes.faults.statuses = [(429, "rateLimitExceeded", "0.2"), (403, "userRateLimitExceeded", "")]
    began = time.monotonic()
    result = poll_drive(config, store)
    assert result.error is None and marks(store) == {(b"", False)}
    assert time.monotonic() - began >= 0.2  # Retry-After honoured
    assert google.calls("changes.list") == 3


def test_rate_limit_past_the_poll_deadline_gives_up_and_keeps_the_token(setup, drive, google, monkeypatch):
    config, store = setup
    monkeypatch.setattr("graylink.drive.google.POLL_DEADLINE", 1.0)
    start(config, store)
    token = store.get_meta("drive.page_token")
    drive.file("n.mkv")
    google.state.changes.faults.statuses = [(429, "rateLimitExceeded", "30")]
    began = time.monotonic()
    result = poll_drive(config, store)
    assert result.error is not None and "next poll resumes" in result.error
    assert time.monotonic() - began < 5 and store.get_meta("drive.page_token") == token
    assert poll_drive(config, store).error is None and marks(store) == {(b"", False)}


@pytest.mark.parametrize("fault", ["garbage", "loop", "hang", "token"])
def test_a_broken_google_is_the_feeds_failure_in_one_line(setup, drive, google, monkeypatch, caplog, fault):
    config, store = setup
    monkeypatch.setattr("graylink.drive.google.REQUEST_TIMEOUT", 1.0)
    start(config, store)
    token = store.get_meta("drive.page_token")
    drive.file("n.mkv")
    faults = google.state.changes.faults
    hang = threading.Event()
    if fault == "garbage":
        faults.garbage = 1
    elif fault == "loop":
        faults.loop_token = True
    elif fault == "hang":
        faults.hang = hang
    else:
        config = make_config(Path(config.paths.database).parent, google)
        write_rclone_conf(
            Path(config.drive.rclone_config), google, scopes="drive", root_folder_id=drive.root, expires_in=-60
        )
        google.state.token_garbage = 1
    began = time.monotonic()
    with caplog.at_level(logging.ERROR):
        result = poll_drive(config, store)
    hang.set()
    assert result.error is not None and "\n" not in result.error
    expected = {"garbage": "malformed", "loop": "loop", "hang": "did not answer", "token": "token endpoint"}[fault]
    assert expected in result.error
    assert time.monotonic() - began < 10
    assert [r.levelno for r in caplog.records if r.levelno >= logging.ERROR] == [logging.ERROR]
    assert "Traceback" not in caplog.text
    assert store.get_meta("drive.page_token") == token


def test_a_shared_drive_sends_drive_id_on_both_calls(tmp_path, google):
    shared = "0ASharedDriveId"
    google.add_shared_drive(shared, "Team")
    write_rclone_conf(tmp_path / "rclone.conf", google, scopes="drive", extra=f"team_drive = {shared}\n")
    config = make_config(tmp_path, google)
    with Store(config.paths.database) as store:
        start(config, store)
        google.add("a.mkv", shared, drive_id=shared)
        google.add("b.mkv", MY_DRIVE_ROOT)  # My Drive: not in the shared drive's feed
        assert poll_drive(config, store).error is None
        assert marks(store) == {(b"", False)}
    assert all(q.get("driveId") == shared for q in google.state.changes.requests)


def test_a_google_that_never_answers_neither_holds_the_loop_nor_its_stop(lib, loop_of, google):
    from service_support import linked, wait_for

    media = google.add("Media", MY_DRIVE_ROOT, folder=True, record=False)
    write_rclone_conf(lib.root / "rclone.conf", google, scopes="drive", root_folder_id=media)
    lib.add("Movies/A (2001)/a.mkv")
    lib.write_ini(
        scan={"interval": "1h", "workers": "1"},
        drive={
            "enabled": "yes",
            "interval": "1s",
            "rclone_config": str(lib.root / "rclone.conf"),
            "remote": "gdrive:",
            "api_endpoint": google.url,
            "token_uri": google.url + "/token",
            "token_file": str(lib.root / "none.json"),
        },
    )
    hang = threading.Event()
    google.state.changes.faults.hang = hang  # changes.list never answers (the start token does)
    try:
        loop = loop_of()
        wait_for("the walk's link despite the feed", linked(lib, "Movies/A (2001)/a.mkv"), loop.proc)
        wait_for("a poll that hangs", lambda: len(google.state.changes.requests) >= 1, loop.proc)
        stopped = time.monotonic()
        assert loop.stop(signal.SIGTERM) == 0
        assert time.monotonic() - stopped < 5  # the request's own deadline is 20 s: the stop came first
    finally:
        hang.set()
