"""The Plex notifier against a loopback Plex (tests/plex_server.py) with the real requests client."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from plex_server import FakePlex, PlexAnswer, PlexSection

from graylink.config import Config, PlexConfig, parse_raw
from graylink.links.planner import Op
from graylink.links.tree import MARKER_DIR
from graylink.notify.plex import deliver, parse_sections
from graylink.notify.plex_doctor import doctor_checks
from graylink.notify.queue import enqueue, queue_status
from graylink.store.db import Store

TOKEN = "plex-token-made-up-4b8f2c"


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def links(tmp_path: Path) -> Path:
    root = tmp_path / "links"
    root.mkdir()
    return root


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(str(tmp_path / "g.db")) as opened:
        yield opened


@pytest.fixture
def plex() -> Iterator[FakePlex]:
    with FakePlex(TOKEN) as server:
        yield server


def plex_config(url: str, links: Path, **overrides: object) -> PlexConfig:
    values: dict[str, object] = {
        "url": url,
        "token": TOKEN,
        "path_map": ((str(links), "/data"),),
        "collapse_threshold": 20,
        "max_scans": 50,
    }
    values.update(overrides)
    return PlexConfig(**values)  # type: ignore[arg-type]


def changed(store: Store, links: Path, *rels: str, op: Op = Op.CREATE, make: bool = True) -> None:
    """Queue link changes for Plex; the links' folders exist unless ``make`` is false (a prune)."""
    for rel in rels:
        if make:
            (links / rel).parent.mkdir(parents=True, exist_ok=True)
    with store.atomic():
        enqueue(store, [(op, os.fsencode(links / rel)) for rel in rels], ("plex",))


def send(store: Store, plex: FakePlex, links: Path, **overrides: object) -> object:
    return deliver(plex_config(plex.url, links, **overrides), store, tree_root=str(links), sleep=Sleeps())


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ------------------------------------------------------------- protocol


def test_sections_read_the_same_from_xml_and_json(plex: FakePlex) -> None:
    xml = requests.get(plex.url + "/library/sections", headers={"X-Plex-Token": TOKEN}, timeout=5)
    as_json = requests.get(
        plex.url + "/library/sections", headers={"X-Plex-Token": TOKEN, "Accept": "application/json"}, timeout=5
    )
    assert xml.headers["Content-Type"].startswith("text/xml") and xml.text.startswith("<?xml")
    from_xml = parse_sections(xml.headers["Content-Type"], xml.content)
    assert from_xml == parse_sections(as_json.headers["Content-Type"], as_json.content)
    assert [(s.key, s.locations) for s in from_xml] == [("1", ("/data/Movies",)), ("2", ("/data/TV", "/data/More TV"))]


def test_without_the_token_plex_answers_401(plex: FakePlex) -> None:
    assert requests.get(plex.url + "/library/sections", timeout=5).status_code == 401
    assert requests.get(plex.url + "/identity", timeout=5).status_code == 200


def test_one_partial_scan_per_changed_folder(store: Store, plex: FakePlex, links: Path) -> None:
    changed(store, links, "Movies/A (2001)/A.mkv", "Movies/A (2001)/A.srt", "TV/Show/Season 01/E01.mkv")
    changed(store, links, "More TV/Other/Season 02/E05.mkv")  # the section's second location
    result = send(store, plex, links)
    assert result.ok and result.sent == 4 and result.pending == 0 and result.entries == 3  # type: ignore[attr-defined]
    assert sorted(plex.scanned()) == [
        ("1", "/data/Movies/A (2001)"),
        ("2", "/data/More TV/Other/Season 02"),
        ("2", "/data/TV/Show/Season 01"),
    ]
    assert not any(scan.ignored for scan in plex.scans)
    assert all(scan.headers.get("X-Plex-Token") == TOKEN for scan in plex.scans)
    assert not any(TOKEN in url for url in plex.urls)  # the token never travels in a URL
    assert "path=%2Fdata%2FMovies%2FA+%282001%29" in next(s.url for s in plex.scans if s.section == "1")


def test_many_changed_folders_under_one_parent_collapse(store: Store, plex: FakePlex, links: Path) -> None:
    changed(store, links, *[f"TV/Show/Season {n:02}/E01.mkv" for n in range(1, 5)])
    assert send(store, plex, links, collapse_threshold=3).ok  # type: ignore[attr-defined]
    assert plex.scanned() == [("2", "/data/TV/Show")]


def test_exactly_threshold_folders_stay_separate(store: Store, plex: FakePlex, links: Path) -> None:
    changed(store, links, *[f"TV/Show/Season {n:02}/E01.mkv" for n in range(1, 4)])
    assert send(store, plex, links, collapse_threshold=3).ok  # type: ignore[attr-defined]
    assert len(plex.scanned()) == 3


def test_more_scans_than_the_cap_become_one_section_refresh(
    store: Store, plex: FakePlex, links: Path, caplog: pytest.LogCaptureFixture
) -> None:
    changed(store, links, *[f"Movies/M{n} (2001)/M{n}.mkv" for n in range(3)], "TV/Show/Season 01/E01.mkv")
    with caplog.at_level(logging.INFO, logger="graylink"):
        result = send(store, plex, links, max_scans=2)
    assert result.ok and result.mode == "section" and result.pending == 0  # type: ignore[attr-defined]
    assert sorted(plex.scanned(), key=str) == sorted([("1", None), ("2", "/data/TV/Show/Season 01")], key=str)
    assert [r for r in caplog.records if "refreshing the whole section" in r.getMessage() and r.levelname == "INFO"]


def test_a_folder_under_no_section_is_reported_once_and_never_sent(
    store: Store, plex: FakePlex, links: Path, caplog: pytest.LogCaptureFixture
) -> None:
    changed(store, links, "Music/Album/track.mkv", "Movies/A (2001)/A.mkv")
    with caplog.at_level(logging.WARNING, logger="graylink"):
        first = send(store, plex, links)
        second = send(store, plex, links)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "/data/Music/Album" in warnings[0] and "[plex] path_map" in warnings[0]
    assert first.ok and first.skipped == 1 and first.sent == 1 and first.pending == 0  # type: ignore[attr-defined]
    assert second.mode == "none"  # type: ignore[attr-defined]
    assert plex.scanned() == [("1", "/data/Movies/A (2001)")]


def test_a_removed_folder_is_scanned_from_its_nearest_folder_still_there(
    store: Store, plex: FakePlex, links: Path
) -> None:
    (links / "Movies").mkdir()
    changed(store, links, "Movies/Gone (1999)/Gone.mkv", op=Op.PRUNE, make=False)
    assert send(store, plex, links).ok  # type: ignore[attr-defined]
    assert plex.scanned() == [("1", "/data/Movies")]


def test_a_folder_whose_name_is_not_utf8_is_scanned_through_its_parent(
    store: Store, plex: FakePlex, links: Path
) -> None:
    # A Drive name with an invalid byte reaches the mount as it is; Plex's query cannot carry it.
    odd = os.fsdecode(b"Movies/Bad\xffName (2005)/Bad\xff.mkv")
    changed(store, links, odd, "TV/Show/Season 01/E01.mkv")
    result = send(store, plex, links)
    assert result.ok and result.sent == 2 and result.pending == 0  # type: ignore[attr-defined]
    assert sorted(plex.scanned()) == [("1", "/data/Movies"), ("2", "/data/TV/Show/Season 01")]


# ------------------------------------------------------------ failures


def test_a_refused_token_is_reported_with_the_fix_and_kept(
    store: Store, plex: FakePlex, links: Path, caplog: pytest.LogCaptureFixture
) -> None:
    changed(store, links, "Movies/A (2001)/A.mkv")
    with caplog.at_level(logging.DEBUG):
        result = deliver(
            plex_config(plex.url, links, token="wrong-token-1234"), store, tree_root=str(links), sleep=Sleeps()
        )
    assert result.refused and result.pending == 1 and "[plex] token" in result.error
    assert "wrong-token-1234" not in caplog.text and "wrong-token-1234" not in result.error


def test_plex_down_keeps_everything_then_delivers_once(store: Store, links: Path) -> None:
    changed(store, links, "Movies/A (2001)/A.mkv")
    sleeps = Sleeps()
    down = deliver(plex_config(dead_url(), links), store, tree_root=str(links), sleep=sleeps)
    assert not down.ok and down.pending == 1 and "connection refused" in down.error and sleeps == [1.0, 2.0]
    with FakePlex(TOKEN) as plex:
        assert send(store, plex, links).ok  # type: ignore[attr-defined]
        assert send(store, plex, links).mode == "none"  # type: ignore[attr-defined]
        assert plex.scanned() == [("1", "/data/Movies/A (2001)")]


def test_a_failure_halfway_keeps_only_what_plex_missed(store: Store, plex: FakePlex, links: Path) -> None:
    changed(store, links, "Movies/A (2001)/A.mkv", "TV/Show/Season 01/E01.mkv")
    plex.answer(PlexAnswer(200), PlexAnswer(503), PlexAnswer(503), PlexAnswer(503))
    result = send(store, plex, links)
    assert not result.ok and result.sent == 1 and result.pending == 1  # type: ignore[attr-defined]
    assert send(store, plex, links).ok  # type: ignore[attr-defined]
    assert plex.scanned() == [("1", "/data/Movies/A (2001)"), ("2", "/data/TV/Show/Season 01")]


def test_retry_after_is_honoured(store: Store, plex: FakePlex, links: Path) -> None:
    changed(store, links, "Movies/A (2001)/A.mkv")
    plex.answer(PlexAnswer(503, {"Retry-After": "4"}))
    sleeps = Sleeps()
    result = deliver(plex_config(plex.url, links), store, tree_root=str(links), sleep=sleeps)
    assert result.ok and sleeps == [4.0]


def test_a_dripping_plex_is_cut_at_the_deadline(store: Store, plex: FakePlex, links: Path) -> None:
    changed(store, links, "Movies/A (2001)/A.mkv")
    plex.answer(*[PlexAnswer(200, drip=0.3)] * 3)
    result = deliver(plex_config(plex.url, links), store, tree_root=str(links), sleep=Sleeps(), deadline=1.0)
    assert not result.ok and "no complete answer within 1s" in result.error and result.pending == 1


def test_status_shows_plex_queue(store: Store, links: Path) -> None:
    changed(store, links, "Movies/A (2001)/A.mkv")
    deliver(plex_config(dead_url(), links), store, tree_root=str(links), sleep=Sleeps())
    status = queue_status(store, "plex")
    assert status["pending"] == 1 and status["last_delivery"]["ok"] is False
    assert queue_status(store, "emby")["pending"] == 0


# --------------------------------------------------------------- doctor


def doctor_config(tmp_path: Path, url: str, token: str = TOKEN) -> Config:
    (tmp_path / "src").mkdir(exist_ok=True)
    links = tmp_path / "links"
    raw = {
        "paths": {"source": str(tmp_path / "src"), "target": str(links), "database": str(tmp_path / "db" / "g.db")},
        "plex": {"url": url, "token": token, "path_map": f"{links}=/data"},
    }
    return parse_raw(raw)


def test_doctor_all_good(tmp_path: Path, plex: FakePlex, links: Path) -> None:
    (links / "Movies").mkdir()
    (links / "TV").mkdir()
    checks = doctor_checks(doctor_config(tmp_path, plex.url))
    assert [(c.name, c.status) for c in checks] == [
        ("plex.reachable", "ok"),
        ("plex.token", "ok"),
        ("plex.paths", "ok"),
    ]
    assert "1.41.3" in checks[0].message


def test_doctor_leaves_graylinks_marker_folder_out(tmp_path: Path, plex: FakePlex, links: Path) -> None:
    (links / "Movies").mkdir()
    (links / os.fsdecode(MARKER_DIR)).mkdir()  # every link tree has it after the first reconcile
    paths = doctor_checks(doctor_config(tmp_path, plex.url))[-1]
    assert paths.name == "plex.paths" and paths.status == "ok", paths.message


def test_doctor_warns_about_top_folders_under_no_section(tmp_path: Path, plex: FakePlex, links: Path) -> None:
    (links / "Movies").mkdir()
    (links / "Music").mkdir()
    paths = doctor_checks(doctor_config(tmp_path, plex.url))[-1]
    assert (
        paths.name == "plex.paths"
        and paths.warn
        and "/data/Music" in paths.message
        and "/data/Movies" not in paths.message
    )


def test_doctor_reports_a_refused_token_and_an_unreachable_server(tmp_path: Path, plex: FakePlex) -> None:
    refused = doctor_checks(doctor_config(tmp_path, plex.url, token="not-the-token-99"))
    assert [(c.name, c.status) for c in refused] == [("plex.reachable", "ok"), ("plex.token", "fail")]
    assert all("not-the-token-99" not in c.message + c.hint for c in refused)
    down = doctor_checks(doctor_config(tmp_path, dead_url()))
    assert [(c.name, c.status) for c in down] == [("plex.reachable", "fail")]


def test_plex_sections_with_many_locations_are_all_considered(tmp_path: Path, links: Path) -> None:
    sections = [PlexSection("7", "Everything", "movie", ("/data/A", "/data/B", "/data/C"))]
    with FakePlex(TOKEN, sections) as plex, Store(str(tmp_path / "h.db")) as store:
        changed(store, links, "C/x (2000)/x.mkv", "A/y (2001)/y.mkv")
        assert send(store, plex, links).ok  # type: ignore[attr-defined]
        assert sorted(plex.scanned()) == [("7", "/data/A/y (2001)"), ("7", "/data/C/x (2000)")]
