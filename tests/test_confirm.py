"""Every change confirmed in each media server's library, or stuck with a reason (issue 28, items 1 and 3).

graylink runs as a real process against the loopback Emby / Jellyfin and
Plex, whose libraries take a file in only after a scan of a path under a
library folder finds it (tests/media_library.py names the upstream files).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from emby_server import FakeMediaServer
from plex_server import FakePlex
from service_support import Loop, wait_for
from web_support import apprise_receiver

from graylink.notify.changes import Lookup, Tracked, decide

from conftest import Library

KEY = "emby-key-made-up-5b0c19aa"
TOKEN = "plex-token-made-up-77e0d3c2"


def configure(lib: Library, emby: FakeMediaServer, plex: FakePlex | None, wait: str = "10m", **extra: Any) -> None:
    # The server reads the link tree under /media, and the source where the links point.
    emby.library.fs_map = {"/media": str(lib.target), str(lib.source): str(lib.source)}
    sections: dict[str, dict[str, str]] = {
        "emby": {"url": emby.url, "api_key": KEY, "path_map": f"{lib.target}=/media", "confirm_wait": wait},
    }
    if plex is not None:
        plex.library.fs_map = {"/data": str(lib.target)}
        sections["plex"] = {
            "url": plex.url,
            "token": TOKEN,
            "path_map": f"{lib.target}=/data",
            "confirm_wait": wait,
        }
    lib.write_ini(**sections, **extra)


def status(lib: Library) -> dict[str, Any]:
    done = lib.run("status", "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def reconcile(lib: Library) -> str:
    done = lib.run("reconcile")
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_a_change_is_confirmed_in_emby_and_plex_then_its_deletion(lib: Library) -> None:
    lib.add("Movies/A (2001)/A.mkv")
    with FakeMediaServer("emby", KEY) as emby, FakePlex(TOKEN) as plex:
        configure(lib, emby, plex)
        reconcile(lib)
        first = status(lib)
        for name in ("emby", "plex"):
            assert (first[name]["pending"], first[name]["confirmed"], first[name]["stuck"]) == (1, 0, 0)
        log = reconcile(lib)  # the next run asks each server's library
        assert "1 changes confirmed" in log
        second = status(lib)
        for name in ("emby", "plex"):
            assert (second[name]["pending"], second[name]["confirmed"], second[name]["stuck"]) == (0, 1, 0)
            assert second[name]["confirm_seconds"]["count"] == 1
        # Typed, bounded questions: one page of recently saved videos, never the whole library.
        [items] = emby.gets("/Items")
        assert "MinDateLastSaved=" in items.path and "IncludeItemTypes=Movie" in items.path and "Limit=" in items.path
        assert any("/library/sections/1/all" in url and "sort=addedAt" in url for url in plex.urls)
        reconcile(lib)  # nothing awaits: no question at all
        assert len(emby.gets("/Items")) == 1

        (lib.source / "Movies/A (2001)/A.mkv").unlink()
        reconcile(lib)  # the deletion is sent; the server's scan drops the item
        emby.tick()
        assert "/media/Movies/A (2001)/A.mkv" not in emby.library.items
        assert status(lib)["emby"]["pending"] == 1
        reconcile(lib)  # asked by the item's ID: gone
        after = status(lib)
        for name in ("emby", "plex"):
            assert after[name]["pending"] == 0 and after[name]["stuck"] == 0, after[name]
        assert "Ids=" in emby.gets("/Items")[-1].path


def test_a_change_that_never_appears_is_sent_once_more_then_stuck(lib: Library) -> None:
    lib.add("Movies/A (2001)/A.mkv")
    with FakeMediaServer("jellyfin", KEY) as emby:
        emby.library.delay = None  # takes every update, never makes the item
        configure(lib, emby, None, wait="1s")
        reconcile(lib)
        time.sleep(1.2)
        log = reconcile(lib)
        assert "their folders are sent once more" in log
        reconcile(lib)  # the re-send goes out with this run's delivery
        sent = [[u["Path"] for u in p.body["Updates"]] for p in emby.posts("/Library/Media/Updated")]
        assert sent == [["/media/Movies/A (2001)/A.mkv"], ["/media/Movies/A (2001)"]]
        assert status(lib)["emby"]["stuck"] == 0
        time.sleep(1.2)
        log = reconcile(lib)
        assert "stuck: " in log
        doc = status(lib)["emby"]  # a new process: the state is the database's
        assert (doc["pending"], doc["confirmed"], doc["stuck"]) == (0, 0, 1)
        [stuck] = doc["stuck_paths"]
        assert stuck["path"] == str(lib.target / "Movies/A (2001)/A.mkv")
        assert "no item for it came" in stuck["reason"]
        text = lib.run("status").stdout
        assert "emby library: 0 pending, 0 confirmed, 1 stuck" in text and "no item for it came" in text
        shown_everywhere(status(lib))
        # Never dropped: reconcile --path sends it again.
        emby.library.delay = 0.0
        done = lib.run("reconcile", "--path", str(lib.source / "Movies/A (2001)"))
        assert done.returncode == 0, done.stderr
        assert "stuck changes under the given paths are sent again" in done.stderr
        reconcile(lib)
        doc = status(lib)["emby"]
        assert (doc["pending"], doc["confirmed"], doc["stuck"]) == (0, 1, 0)


def test_the_targeted_scans_plugin_answers_per_path_and_confirms_at_once(lib: Library) -> None:
    lib.add("Movies/A (2001)/A.mkv")
    lib.add("Music Videos/B/B.mkv")
    with FakeMediaServer("jellyfin", KEY) as emby:
        emby.plugin = True
        emby.library.delay = None  # Media/Updated would never bring the item: only the plugin does
        configure(lib, emby, None)
        log = reconcile(lib)
        assert "Targeted Scans plugin takes the changes" in log
        [scan] = emby.posts("/Library/ScanPaths")
        assert sorted(scan.body["Paths"]) == ["/media/Movies/A (2001)/A.mkv", "/media/Music Videos/B/B.mkv"]
        assert emby.posts("/Library/Media/Updated") == []
        doc = status(lib)["emby"]  # confirmed by the answer itself, no second run needed
        assert (doc["pending"], doc["confirmed"], doc["stuck"]) == (0, 1, 1)
        assert "ParentNotFound" in doc["stuck_paths"][0]["reason"]
        (lib.source / "Movies/A (2001)/A.mkv").unlink()
        reconcile(lib)
        assert "/media/Movies/A (2001)/A.mkv" not in emby.library.items  # the plugin removed it ("Removed")
        assert status(lib)["emby"]["pending"] == 0
        assert len(emby.gets("/Items")) == 0  # nothing left to ask


def test_without_the_plugin_a_404_falls_back_quietly(lib: Library) -> None:
    lib.add("Movies/A (2001)/A.mkv")
    with FakeMediaServer("jellyfin", KEY) as emby:
        configure(lib, emby, None)
        first = reconcile(lib)
        assert "no Targeted Scans plugin" in first
        assert [r.path for r in emby.posts()] == ["/Library/ScanPaths", "/Library/Media/Updated"]
        lib.add("Movies/B (2002)/B.mkv")
        second = reconcile(lib)  # a day passes before the plugin is asked again: no 404, no line
        assert "Targeted Scans" not in second
        assert [r.path for r in emby.posts()][2:] == ["/Library/Media/Updated"]


def test_a_path_under_no_library_is_stuck_with_that_reason(lib: Library) -> None:
    lib.add("Music Videos/B/B.mkv")
    with FakeMediaServer("emby", KEY) as emby, FakePlex(TOKEN) as plex:
        configure(lib, emby, plex, wait="1s")
        reconcile(lib)
        plex_doc = status(lib)["plex"]  # Plex's sections are matched before sending: stuck at once
        assert plex_doc["stuck"] == 1 and "no library of the server holds /data/Music Videos/B" in str(plex_doc)
        time.sleep(1.2)
        reconcile(lib)  # Emby took it (204) but no library holds it: no re-send would help
        doc = status(lib)["emby"]
        assert doc["stuck"] == 1 and "no library of the server holds /media/Music Videos/B/B.mkv" in str(doc)
        assert len(emby.posts("/Library/Media/Updated")) == 1


def test_stuck_alerts_once_and_not_again_after_a_restart(lib: Library, loop_of: Callable[[], Loop]) -> None:
    lib.add("TV/Show/Season 1/e1.mkv")
    with FakeMediaServer("emby", KEY) as emby, apprise_receiver() as receiver:
        emby.library.delay = None
        configure(lib, emby, None, wait="1s", scan={"interval": "1s", "workers": "2"}, alerts={"urls": receiver.url})
        loop = loop_of()
        wait_for("the stuck alert", lambda: len(receiver.titles()) >= 1, loop.proc)
        assert "never reached emby" in receiver.titles()[0]
        assert "TV/Show/Season 1/e1.mkv" in receiver.messages[0]["message"]
        loop.wait_log("reconcile (walk)", count=8)
        assert loop.stop() == 0
        again = loop_of()
        again.wait_log("reconcile (walk)", count=4)
        assert again.stop() == 0
        assert len(receiver.titles()) == 1, receiver.titles()


def shown_everywhere(doc: dict[str, Any]) -> None:
    """The stuck change on the status page and in /metrics, from the same status document."""
    from flask import g, render_template

    from graylink.web.app import WebContext, create_app
    from graylink.web.i18n import ENGLISH
    from graylink.web.metrics import render_metrics
    from graylink.web.page import page_model

    metrics = render_metrics(doc, {})[0].decode()
    assert 'graylink_server_changes{server="emby",state="stuck"} 1.0' in metrics
    assert 'graylink_server_changes{server="emby",state="pending"} 0.0' in metrics
    assert 'graylink_server_confirm_seconds_count{server="emby"} 0.0' in metrics
    app = create_app(WebContext(config=lambda: None, wake=lambda: None))  # type: ignore[arg-type,return-value]
    with app.test_request_context("/"):
        g.words = ENGLISH  # the page's language (graylink.web.i18n), as a request sets it
        html = render_template("status.html.j2", page=page_model(doc, [], [], False), words=ENGLISH)
    assert "Changes stuck in a media server (1)" in html and "no item for it came" in html


# ----------------------------------------------------------------- the rules (pure)


def row(state: str, sent: float | None, expect: str = "present", item: str | None = None) -> Tracked:
    return Tracked(b"/links/Movies/A/A.mkv", expect, state, 0.0, sent, item)


@pytest.mark.parametrize(
    ("tracked", "lookup", "outcome"),
    [
        (row("sent", 100.0), Lookup(seen={b"/links/Movies/A/A.mkv": "7"}), "confirmed"),
        (row("sent", 100.0), Lookup(), "waits"),  # 50 s < 60 s
        (row("sent", 10.0), Lookup(), "resend"),
        (row("sent", 10.0), Lookup(scanning=True), "waits"),  # the server's scan still runs
        (row("sent", -100.0), Lookup(scanning=True), "resend"),  # but not for ever
        (row("resent", 10.0), Lookup(), "stuck"),
        (row("resent", 10.0), Lookup(error="HTTP 503"), "stuck"),
        (row("sent", 140.0), Lookup(outside={b"/links/Movies/A/A.mkv": "/x"}), "stuck"),
        (row("sent", 10.0, "absent", "7"), Lookup(gone={b"/links/Movies/A/A.mkv"}), "confirmed"),
    ],
)
def test_decide(tracked: Tracked, lookup: Lookup, outcome: str) -> None:
    decision = decide([tracked], lookup, now=150.0, wait=60.0)
    found = (
        "confirmed" if decision.confirmed else "resend" if decision.resend else "stuck" if decision.stuck else "waits"
    )
    assert found == outcome


def test_a_change_queued_while_the_server_is_down_becomes_stuck_saying_so() -> None:
    decision = decide([row("queued", None)], Lookup(), now=200.0, wait=60.0, down="connection refused")
    assert decision.stuck == [(b"/links/Movies/A/A.mkv", "the server is down: connection refused")]
