"""Jellyfin and Emby as upstream documents them (issue 15 item 12; ARCHITECTURE §5).

The loopback servers (tests/emby_server.py) follow Jellyfin's source and
Emby's OpenAPI document; each test here failed against the notifier before
its fix.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from emby_server import FakeMediaServer
from test_emby import KEY, Sleeps, emby_config, full_config

from graylink.links.planner import Op
from graylink.notify.emby import deliver, detect, enqueue
from graylink.notify.emby_doctor import doctor_checks, library_locations
from graylink.store.db import Store

UPDATED = "/Library/Media/Updated"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(str(tmp_path / "g.db")) as opened:
        yield opened


def _queue(store: Store) -> None:
    with store.atomic():
        enqueue(store, [(Op.CREATE, os.fsencode("/links/Movies/A (2001)/A.mkv"))])


def test_a_kind_seen_while_jellyfin_starts_does_not_stick(store: Store) -> None:
    """Before: camelCase ``productName`` read as Emby, the kind kept, and Jellyfin 12 refused Emby's header."""
    with FakeMediaServer("jellyfin", KEY) as jellyfin:
        jellyfin.starting = 2  # /System/Info/Public in camelCase, then the POST's 503 + Retry-After: 005
        _queue(store)
        sleeps = Sleeps()
        result = deliver(emby_config(jellyfin.url), store, sleep=sleeps)
        infos = [r for r in jellyfin.requests if r.path == "/System/Info/Public"]
        posts = jellyfin.posts(UPDATED)
    assert result.ok and result.server == "jellyfin" and result.pending == 0, result.error
    assert sleeps == [5.0]  # Jellyfin's Retry-After "005"
    assert len(infos) == 2  # asked again after the startup answer
    assert posts[-1].headers.get("Authorization") == f'MediaBrowser Token="{KEY}"'
    assert "X-Emby-Token" not in posts[-1].headers


def test_detection_reads_either_case_and_knows_a_startup_answer() -> None:
    assert detect({"ProductName": "Jellyfin Server", "Version": "10.10.7"}).final
    starting = detect({"productName": "Jellyfin Server", "version": "10.11.0", "startupWizardCompleted": False})
    assert starting.kind == "jellyfin" and not starting.final
    emby = detect({"ServerName": "x", "Version": "4.8.10.0", "Id": "1"})  # Emby's PublicSystemInfo: no ProductName
    assert emby.kind == "emby" and emby.final


def test_a_kind_fixed_in_config_is_never_asked(store: Store) -> None:
    with FakeMediaServer("jellyfin", KEY) as jellyfin:
        jellyfin.starting = 1
        _queue(store)
        result = deliver(emby_config(jellyfin.url, server="jellyfin"), store, sleep=Sleeps())
        assert result.ok and not [r for r in jellyfin.requests if r.path == "/System/Info/Public"]


def test_emby_library_folders_come_from_selectable_media_folders(tmp_path: Path) -> None:
    """Before: doctor read Emby's undocumented plain GET /Library/VirtualFolders."""
    with FakeMediaServer("emby", KEY, locations=["/media/Movies", "/media/TV"]) as emby:
        config = full_config(tmp_path, emby_config(emby.url, path_map=((str(tmp_path / "links"), "/media"),)))
        (tmp_path / "links" / "Movies").mkdir()
        checks = doctor_checks(config)
        paths = [r.path for r in emby.requests]
    assert [(c.name, c.status) for c in checks] == [
        ("emby.reachable", "ok"),
        ("emby.api_key", "ok"),
        ("emby.paths", "ok"),
    ]
    assert "/Library/SelectableMediaFolders" in paths and "/Library/VirtualFolders" not in paths


def test_jellyfin_library_folders_stay_virtual_folders(tmp_path: Path) -> None:
    with FakeMediaServer("jellyfin", KEY, locations=["/media/Movies"]) as jellyfin:
        config = full_config(tmp_path, emby_config(jellyfin.url, path_map=((str(tmp_path / "links"), "/media"),)))
        (tmp_path / "links" / "Movies").mkdir()
        assert all(c.status == "ok" for c in doctor_checks(config))
        assert "/Library/VirtualFolders" in [r.path for r in jellyfin.requests]


def test_library_locations_of_each_shape() -> None:
    emby = [{"Name": "Movies", "SubFolders": [{"Path": "/m/Movies"}, {"Path": "/m/More"}]}, {"Name": "x"}]
    assert library_locations(emby, "emby") == ["/m/Movies", "/m/More"]
    assert library_locations([{"Name": "TV", "Locations": ["/m/TV"]}], "jellyfin") == ["/m/TV"]
    assert library_locations({"Items": []}, "emby") == []


def test_doctor_says_a_starting_jellyfin_is_starting(tmp_path: Path) -> None:
    with FakeMediaServer("jellyfin", KEY) as jellyfin:
        jellyfin.starting = 5
        checks = doctor_checks(full_config(tmp_path, emby_config(jellyfin.url)))
    assert [(c.name, c.status) for c in checks] == [("emby.reachable", "fail")]
    assert "still starting" in checks[0].message and KEY not in checks[0].message
