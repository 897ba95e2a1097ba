"""A clock once in the future (issue 26, item 11): the times the database keeps never stop what they schedule.

The runs are the real CLI; the future comes from libfaketime (Debian's
``faketime``) or is written into a real database, as a run with a wrong
clock leaves it.
"""

from __future__ import annotations

import calendar
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from web_support import WebLoop

from graylink.store.db import Store
from tests.test_drive_reconcile import World, world  # noqa: F401  (the fixture)
from tests.test_web import web  # noqa: F401  (the fixture)

from conftest import Library, links_in

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
YEAR_2100 = calendar.timegm((2100, 1, 1, 0, 0, 0))


def meta(lib: Library, key: str) -> str | None:
    conn = sqlite3.connect(lib.database)
    try:
        row = conn.execute("SELECT value FROM meta_value WHERE key = ?", (key,)).fetchone()
    finally:
        conn.close()
    return None if row is None else str(row[0])


def set_meta(database: Path | str, key: str, value: str) -> None:
    with Store(str(database)) as store, store.atomic():
        store.set_meta(key, value)


def test_a_full_verification_recorded_in_2100_is_due_at_once_and_told_once(lib: Library) -> None:
    if not LIBFAKETIME.exists():
        pytest.skip(f"CLOCK TEST SKIPPED: {LIBFAKETIME} is missing (apt-get install faketime)")
    lib.add("Movies/Heat (1995)/Heat.mkv")
    lib.add("Movies/Ronin (1998)/Ronin.mkv")
    in_2100 = {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME": "@2100-01-01 00:00:00", "FAKETIME_DONT_RESET": "1"}
    first = lib.run("reconcile", env=in_2100)
    assert first.returncode == 0, first.stderr
    assert float(meta(lib, "last_full_verify") or 0) >= YEAR_2100  # the run really saw 2100
    link = lib.target / "Movies/Heat (1995)/Heat.mkv"
    link.unlink()  # a link deleted by hand: only a full verification puts it back
    again = lib.run("reconcile")
    assert again.returncode == 0, again.stderr
    assert os.fsencode("Movies/Heat (1995)/Heat.mkv") in links_in(lib.target), "the full verification never ran"
    assert again.stderr.count("WARNING") == 1 and "in the future" in again.stderr, again.stderr
    assert "last full verification is recorded at 2100-01-01" in again.stderr
    assert float(meta(lib, "last_full_verify") or 0) <= time.time()
    quiet = lib.run("reconcile")
    assert quiet.returncode == 0 and "WARNING" not in quiet.stderr, quiet.stderr


def test_a_mount_outage_recorded_since_2100_is_counted_from_now(lib: Library) -> None:
    lib.add("Movies/Heat (1995)/Heat.mkv")
    lib.add(".anchor")
    lib.write_ini(mount={"anchor": ".anchor"})
    assert lib.run("reconcile").returncode == 0
    (lib.source / ".anchor").unlink()
    set_meta(lib.database, "mount_down_since", repr(float(YEAR_2100)))
    down = lib.run("reconcile")
    assert down.returncode == 1
    assert "start of the mount outage is recorded at 2100-01-01" in down.stderr, down.stderr
    assert float(meta(lib, "mount_down_since") or 0) <= time.time()


def test_a_drive_cursor_in_2100_restarts_the_feed_and_looks_at_everything(world: World) -> None:  # noqa: F811
    database = world.config().paths.database
    with Store(database) as store:
        assert store.get_meta("drive.cursor_ms") is not None, "the feed is not the Activity feed"
    set_meta(database, "drive.cursor_ms", str(YEAR_2100 * 1000))
    world.add("Shows/S1/e2.mkv")  # the feed reports it; the walk alone cannot see it
    assert world.reconcile() == 0
    assert "Shows/S1/e2.mkv" in world.links()
    with Store(database) as store:
        assert int(store.get_meta("drive.cursor_ms") or 0) <= time.time() * 1000


def test_drive_calls_counted_in_an_hour_of_2100_leave_the_last_24_hours(tmp_path: Path) -> None:
    import json

    from graylink.drive.feed import META_CALLS_HOURLY, _hourly

    now = time.time()
    with Store(str(tmp_path / "graylink.db")) as store, store.atomic():
        store.set_meta(META_CALLS_HOURLY, json.dumps({str(YEAR_2100 // 3600): 500, str(int(now // 3600)): 3}))
        assert _hourly(store, 2, now) == {str(int(now // 3600)): 5}


def test_a_webhook_wait_announced_in_2100_ends_within_arr_wait_of_now(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from graylink.web.arrwait import mark_event, recheck, waiting

    now = time.time()
    with Store(str(tmp_path / "graylink.db")) as store:
        # One file announced while the clock said 2100; one announced now, then again in 2100.
        mark_event(store, b"TV/Show", [b"TV/Show/e1.mkv"], "sonarr", 60, now=float(YEAR_2100))
        mark_event(store, b"TV/Movie", [b"TV/Movie/m.mkv"], "radarr", 60, now=now - 10)
        mark_event(store, b"TV/Movie", [b"TV/Movie/m.mkv"], "radarr", 60, now=float(YEAR_2100))
        with caplog.at_level(logging.WARNING):
            assert recheck(store, 60, now=now) == 2  # not there yet: both folders are looked at again
        jumps = [r.getMessage() for r in caplog.records if "in the future" in r.getMessage()]
        assert len(jumps) == 1 and "2 file(s) a webhook named" in jumps[0] and "2100-01-01" in jumps[0], jumps
        assert all(w.since <= now and w.until <= now + 60 for w in waiting(store)), waiting(store)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert recheck(store, 60, now=now + 30) == 2
            assert not caplog.records  # told once
            assert recheck(store, 60, now=now + 61) == 0  # and they end as any wait does
        assert waiting(store) == []
        assert [r.getMessage().count("did not reach the mount within") for r in caplog.records] == [1, 1]


def test_the_service_ends_a_wait_announced_in_2100(lib: Library, web: Callable[..., WebLoop]) -> None:  # noqa: F811
    from graylink.web.arrwait import mark_event, waiting

    w = web(web={"arr_wait": "3s"})  # looked at every second
    with Store(str(lib.database)) as store:  # the row a run with the clock in 2100 left
        mark_event(store, b"TV/Show", [b"TV/Show/e1.mkv"], "sonarr", 3, now=float(YEAR_2100))
    w.loop.wait_log("did not reach the mount within [web] arr_wait")
    text = w.loop.text()
    assert text.count("in the future") == 1 and "a webhook named (e.g. TV/Show/e1.mkv)" in text, text
    with Store(str(lib.database)) as store:
        assert waiting(store) == []
    assert "Traceback" not in text
