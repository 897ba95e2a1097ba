"""The servers' libraries protected while the mount is down, and put back after (issue 28, item 4).

``graylink reconcile --loop`` runs as a real process; the loopback Emby and
Plex keep libraries whose own scans remove items whose links dangle
(tests/media_library.py and the servers' docstrings name the upstream files).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

from emby_server import DAILY, SCAN_TASK_ID, FakeMediaServer
from plex_server import FakePlex
from service_support import Loop, wait_for
from web_support import apprise_receiver

from conftest import Library

KEY = "emby-key-made-up-0c4e7f21"
TOKEN = "plex-token-made-up-e19a5b7d"
EPISODE = "/media/TV/Show/Season 1/e1.mkv"


def configure(lib: Library, emby: FakeMediaServer, plex: FakePlex, alerts: str, emby_protect: str = "yes") -> None:
    emby.library.fs_map = {"/media": str(lib.target), str(lib.source): str(lib.source)}
    plex.library.fs_map = {"/data": str(lib.target)}
    lib.write_ini(
        scan={"interval": "1h", "workers": "2"},
        mount={"anchor": ".anchor", "check_interval": "1s"},
        emby={"url": emby.url, "api_key": KEY, "path_map": f"{lib.target}=/media", "protect": emby_protect},
        plex={"url": plex.url, "token": TOKEN, "path_map": f"{lib.target}=/data"},
        alerts={"urls": alerts},
    )


def test_the_loopback_scan_really_removes_items_whose_links_dangle(lib: Library) -> None:
    """The danger the protection is for, in the loopback itself: a completed scan drops the item."""
    (lib.target / "TV/Show/Season 1").mkdir(parents=True)
    os.symlink(lib.source / "TV/Show/Season 1/e1.mkv", lib.target / "TV/Show/Season 1/e1.mkv")  # dangling
    with FakeMediaServer("jellyfin", KEY) as emby:
        emby.library.fs_map = {"/media": str(lib.target)}
        emby.library.add(EPISODE)
        emby.start_scan(duration=0.0)
        emby.tick()
        assert EPISODE not in emby.library.items


def test_a_scan_running_when_the_mount_drops_is_stopped_and_settings_come_back_after_a_sigkill(
    lib: Library, loop_of: Callable[[], Loop]
) -> None:
    lib.add("TV/Show/Season 1/e1.mkv")
    lib.add(".anchor")
    away = lib.root / "away"
    with FakeMediaServer("jellyfin", KEY) as emby, FakePlex(TOKEN) as plex, apprise_receiver() as receiver:
        configure(lib, emby, plex, receiver.url)
        loop = loop_of()
        loop.wait_log("reconcile (walk)")
        wait_for("graylink's updates taken", lambda: emby.posts() and plex.scans, loop.proc)
        emby.tick()  # the targeted refreshes it sent are done: the items are there
        plex.tick()
        assert EPISODE in emby.library.items and "/data/TV/Show/Season 1/e1.mkv" in plex.library.items
        emby.start_scan(duration=3.0)  # the server's own scheduled scan starts...
        plex.start_scan("2", duration=3.0)
        os.rename(lib.source, away)  # ...and the mount drops: every link dangles

        wait_for("the scan stopped", lambda: emby.scan_state == "Idle" and not plex.running, loop.proc)
        wait_for("the triggers held", lambda: emby.triggers == [], loop.proc)
        deletes = [r.path for r in emby.requests if r.method == "DELETE"]
        assert deletes == [f"/ScheduledTasks/Running/{SCAN_TASK_ID}"]
        assert plex.cancelled and plex.prefs["autoEmptyTrash"] is True  # Plex: default protect, no setting
        wait_for("the protect alerts", lambda: len(receiver.titles()) >= 2, loop.proc)
        time.sleep(3.2)  # when the scans would have completed
        emby.tick()
        plex.tick()
        assert EPISODE in emby.library.items and "/data/TV/Show/Season 1/e1.mkv" in plex.library.items
        loop.proc.send_signal(signal.SIGKILL)  # killed while the settings are held
        loop.proc.wait(timeout=10)

        os.rename(away, lib.source)  # the mount is back
        again = loop_of()
        wait_for("the triggers put back", lambda: emby.triggers == DAILY, again.proc)
        wait_for("the release alerts", lambda: sum("no longer held" in t for t in receiver.titles()) == 2, again.proc)
        again.wait_log("put back as it was")
        again.wait_log("reconcile (walk)", count=1)
        assert again.stop() == 0
        titles = receiver.titles()
        assert sum("protecting" in t for t in titles) == 2, titles  # one per server, not one per check
        assert sum("no longer held" in t for t in titles) == 2, titles
        assert EPISODE in emby.library.items
    for text in (loop.text(), again.text()):
        assert KEY not in text and TOKEN not in text


def test_plex_trash_setting_is_held_and_restored(lib: Library, loop_of: Callable[[], Loop]) -> None:
    lib.add("Movies/A (2001)/A.mkv")
    lib.add(".anchor")
    with FakeMediaServer("emby", KEY) as emby, FakePlex(TOKEN) as plex, apprise_receiver() as receiver:
        configure(lib, emby, plex, receiver.url, emby_protect="no")
        text = lib.ini.read_text().replace("[plex]\n", "[plex]\nprotect = yes\n")
        lib.ini.write_text(text)
        loop = loop_of()
        loop.wait_log("reconcile (walk)")
        (lib.source / ".anchor").unlink()
        wait_for("autoEmptyTrash off", lambda: plex.prefs["autoEmptyTrash"] is False, loop.proc)
        assert not [r for r in emby.requests if r.path.startswith("/ScheduledTasks")]  # protect = no
        lib.add(".anchor")
        wait_for("autoEmptyTrash back on", lambda: plex.prefs["autoEmptyTrash"] is True, loop.proc)
        assert loop.stop() == 0


def test_a_stale_mount_in_the_servers_container_is_told_once(lib: Library, loop_of: Callable[[], Loop]) -> None:
    """Item 5: graylink reads the source, the server (a container with a dead FUSE mount) cannot."""
    lib.add("Movies/A (2001)/A.mkv")
    with FakeMediaServer("jellyfin", KEY) as emby, apprise_receiver() as receiver:
        emby.library.fs_map = {str(lib.source): str(lib.source), "/media": str(lib.target)}
        lib.write_ini(
            scan={"interval": "1h", "workers": "2"},
            mount={"check_interval": "1s"},
            emby={"url": emby.url, "api_key": KEY, "path_map": f"{lib.target}=/media"},
            alerts={"urls": receiver.url},
        )
        loop = loop_of()
        wait_for("a listing asked", lambda: emby.gets("/Environment/DirectoryContents"), loop.proc)
        emby.stale_mount = True
        wait_for("the stale-mount alert", lambda: len(receiver.titles()) >= 1, loop.proc)
        assert "cannot read" in receiver.titles()[0] and "rslave" in receiver.messages[0]["message"]
        loop.wait_log("the server cannot list")
        asked = len(emby.gets("/Environment/DirectoryContents"))
        wait_for("more checks", lambda: len(emby.gets("/Environment/DirectoryContents")) >= asked + 3, loop.proc)
        assert len(receiver.titles()) == 1  # one alert, not one per check
        assert loop.text().count("media server's view of the mount") == 1
        status = lib.run("status").stdout
        assert "its view of the mount: STALE: the server cannot list" in status
        emby.stale_mount = False
        wait_for("the recovery alert", lambda: len(receiver.titles()) == 2, loop.proc)
        assert "reads" in receiver.titles()[1]
        assert loop.stop() == 0
