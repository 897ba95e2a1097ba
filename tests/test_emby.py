"""The Emby / Jellyfin notifier against a real HTTP server on 127.0.0.1, with the real requests client."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from emby_server import Answer, FakeMediaServer
from hypothesis import given, settings
from hypothesis import strategies as st

from graylink.config import Config, EmbyConfig, parse_raw
from graylink.links.planner import Op
from graylink.notify.batch import CREATED, DELETED, MODIFIED, QUEUED_OPS, build_entries, collapse, merge
from graylink.notify.emby import (
    DeliveryResult,
    deliver,
    enqueue,
    queue_status,
)
from graylink.notify.emby_doctor import doctor_checks
from graylink.notify.pathmap import map_path
from graylink.store.db import Store

KEY = "made-up-key-5f3a9c0e"
UPDATED = "/Library/Media/Updated"
REFRESH = "/Library/Refresh"


class Sleeps(list[float]):
    """An injectable sleep that records instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def emby_config(url: str, **overrides: object) -> EmbyConfig:
    values: dict[str, object] = {
        "url": url,
        "api_key": KEY,
        "server": "auto",
        "mode": "targeted",
        "path_map": (),
        "collapse_threshold": 20,
        "max_updates": 500,
    }
    values.update(overrides)
    return EmbyConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "state" / "graylink.db")


@pytest.fixture
def store(db_path: str) -> Iterator[Store]:
    with Store(db_path) as opened:
        yield opened


@pytest.fixture
def emby() -> Iterator[FakeMediaServer]:
    with FakeMediaServer("emby", KEY) as server:
        yield server


@pytest.fixture
def jellyfin() -> Iterator[FakeMediaServer]:
    with FakeMediaServer("jellyfin", KEY) as server:
        yield server


def queue(store: Store, *changes: tuple[Op, str]) -> None:
    with store.atomic():
        enqueue(store, [(op, os.fsencode(path)) for op, path in changes])


def updates_of(server: FakeMediaServer) -> list[list[dict[str, str]]]:
    return [post.body["Updates"] for post in server.posts(UPDATED)]


def dead_url() -> str:
    """A local URL where nothing listens: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ------------------------------------------------------------ one request


def test_many_changes_go_out_as_exactly_one_request(store: Store, emby: FakeMediaServer) -> None:
    queue(store, *[(Op.CREATE, f"/links/Movies/Film {i} (2001)/Film {i}.mkv") for i in range(12)])
    queue(store, (Op.REPAIR, "/links/TV/Show/Season 1/e1.mkv"), (Op.PRUNE, "/links/TV/Old/e1.mkv"))

    result = deliver(emby_config(emby.url), store, sleep=Sleeps())

    assert result.ok and result.sent == 14 and result.pending == 0 and result.mode == "targeted"
    assert result.server == "emby"
    [updates] = updates_of(emby)
    assert len(updates) == 14
    by_path = {u["Path"]: u["UpdateType"] for u in updates}
    assert by_path["/links/Movies/Film 3 (2001)/Film 3.mkv"] == "Created"
    assert by_path["/links/TV/Show/Season 1/e1.mkv"] == "Modified"
    assert by_path["/links/TV/Old/e1.mkv"] == "Deleted"
    assert emby.posts(UPDATED)[0].headers["X-Emby-Token"] == KEY
    assert queue_status(store)["queued"] == 0

    # Nothing queued: nothing sent.
    again = deliver(emby_config(emby.url), store, sleep=Sleeps())
    assert again == DeliveryResult() and len(emby.posts()) == 1


def test_server_is_detected_once_per_run(store: Store, emby: FakeMediaServer) -> None:
    emby.answer(Answer(503), Answer(204))
    queue(store, (Op.CREATE, "/links/Movies/a.mkv"))
    assert deliver(emby_config(emby.url), store, sleep=Sleeps()).ok
    infos = [r for r in emby.requests if r.method == "GET" and r.path == "/System/Info/Public"]
    assert len(infos) == 1 and len(emby.posts(UPDATED)) == 2


def test_emby_answers_under_the_emby_prefix(store: Store, emby: FakeMediaServer) -> None:
    queue(store, (Op.CREATE, "/links/Movies/a.mkv"))
    assert deliver(emby_config(emby.url + "/emby"), store, sleep=Sleeps()).ok
    assert [p.path for p in emby.posts()] == ["/emby" + UPDATED]


def test_updates_of_several_runs_are_merged_latest_wins(store: Store, emby: FakeMediaServer) -> None:
    emby.answer(Answer(500), Answer(500), Answer(500))
    queue(store, (Op.CREATE, "/links/a.mkv"), (Op.PRUNE, "/links/b.mkv"), (Op.REPAIR, "/links/c.mkv"))
    queue(store, (Op.CREATE, "/links/d.mkv"))
    failed = deliver(emby_config(emby.url), store, sleep=Sleeps())
    assert not failed.ok and failed.pending == 4 and failed.sent == 0

    queue(store, (Op.PRUNE, "/links/a.mkv"), (Op.CREATE, "/links/b.mkv"), (Op.REPAIR, "/links/d.mkv"))
    result = deliver(emby_config(emby.url), store, sleep=Sleeps())

    assert result.ok and result.sent == 7 and result.pending == 0
    last = updates_of(emby)[-1]
    assert sorted((u["Path"], u["UpdateType"]) for u in last) == [
        ("/links/a.mkv", "Deleted"),  # create then prune
        ("/links/b.mkv", "Modified"),  # prune then create: the server knew the old file
        ("/links/c.mkv", "Modified"),
        ("/links/d.mkv", "Created"),  # never announced: a repair keeps it new
    ]


def test_merge_rules() -> None:
    assert merge([(b"/a", Op.CREATE), (b"/a", Op.PRUNE)]) == {b"/a": DELETED}
    assert merge([(b"/a", Op.PRUNE), (b"/a", Op.CREATE)]) == {b"/a": MODIFIED}
    assert merge([(b"/a", Op.CREATE), (b"/a", Op.REPAIR)]) == {b"/a": CREATED}
    assert merge([(b"/a", Op.REPAIR), (b"/a", Op.REPAIR)]) == {b"/a": MODIFIED}
    with pytest.raises(ValueError):
        merge([(b"/a", Op.CONFLICT)])


def test_enqueue_refuses_what_is_not_a_change(store: Store) -> None:
    with pytest.raises(ValueError):
        enqueue(store, [(Op.CONFLICT, b"/links/a.mkv")])
    with pytest.raises(ValueError):
        enqueue(store, [(Op.CREATE, b"relative/a.mkv")])
    assert queue_status(store)["queued"] == 0


def test_without_url_nothing_is_sent(store: Store) -> None:
    queue(store, (Op.CREATE, "/links/a.mkv"))
    result = deliver(emby_config(""), store, sleep=Sleeps())
    assert result.mode == "none" and result.pending == 1 and result.ok


# ---------------------------------------------------------------- mapping


def test_path_map_matches_whole_components_longest_first() -> None:
    pairs = (("/srv/links", "/media"), ("/srv/links/TV", "/tv"), ("/", "/host"))
    assert map_path("/srv/links/Movies/x.mkv", pairs) == "/media/Movies/x.mkv"
    assert map_path("/srv/links/TV/Show/e.mkv", pairs) == "/tv/Show/e.mkv"
    assert map_path("/srv/links/TVx/e.mkv", pairs) == "/media/TVx/e.mkv"
    assert map_path("/srv/links2/y.mkv", pairs) == "/host/srv/links2/y.mkv"
    assert map_path("/srv/links", pairs) == "/media"
    assert map_path("/srv/links2/y.mkv", (("/srv/links", "/media"),)) == "/srv/links2/y.mkv"
    assert map_path("/data/a.mkv", (("/data", "/"),)) == "/a.mkv"


def test_request_carries_server_paths(store: Store, emby: FakeMediaServer) -> None:
    config = emby_config(emby.url, path_map=(("/srv/links", "/media"), ("/srv/links/TV", "/tv")))
    queue(store, (Op.CREATE, "/srv/links/Movies/X (2001)/X.mkv"), (Op.CREATE, "/srv/links/TV/S/e1.mkv"))
    queue(store, (Op.CREATE, "/srv/links2/Other/o.mkv"))
    assert deliver(config, store, sleep=Sleeps()).ok
    assert sorted(u["Path"] for u in updates_of(emby)[0]) == [
        "/media/Movies/X (2001)/X.mkv",
        "/srv/links2/Other/o.mkv",
        "/tv/S/e1.mkv",
    ]


def test_undecodable_name_is_sent_as_its_folder(store: Store, emby: FakeMediaServer) -> None:
    enqueue(store, [(Op.CREATE, b"/links/TV/Show/\xff\xfe.mkv"), (Op.CREATE, b"/links/TV/Other/ok.mkv")])
    assert deliver(emby_config(emby.url), store, sleep=Sleeps()).ok
    assert sorted((u["Path"], u["UpdateType"]) for u in updates_of(emby)[0]) == [
        ("/links/TV/Other/ok.mkv", "Created"),
        ("/links/TV/Show", "Modified"),
    ]


# --------------------------------------------------------------- collapse


def test_many_changes_in_one_folder_collapse_to_the_folder(store: Store, emby: FakeMediaServer) -> None:
    season = "/links/TV/Show/Season 01"
    queue(store, *[(Op.CREATE, f"{season}/Show - S01E{i:02}.mkv") for i in range(1, 22)])
    queue(store, *[(Op.CREATE, f"/links/TV/Show/Season 02/Show - S02E{i:02}.mkv") for i in range(1, 4)])
    result = deliver(emby_config(emby.url), store, tree_root="/links", sleep=Sleeps())
    assert result.ok and result.sent == 24 and result.entries == 4
    updates = updates_of(emby)[0]
    assert {"Path": season, "UpdateType": "Created"} in updates
    assert not any(u["Path"].startswith(season + "/") for u in updates)


def test_exactly_threshold_changes_stay_separate() -> None:
    updates = {f"/l/TV/S/e{i}.mkv".encode(): CREATED for i in range(20)}
    assert len(collapse(updates, 20, floors=[b"/l"])) == 20
    updates[b"/l/TV/S/e20.mkv"] = CREATED
    assert collapse(updates, 20, floors=[b"/l"]) == {b"/l/TV/S": CREATED}


def test_collapse_climbs_but_never_to_the_tree_root_or_above() -> None:
    # 21 shows, each with 21 new episodes: seasons collapse, then the library folder.
    updates = {f"/l/TV/Show{s}/e{i}.mkv".encode(): CREATED for s in range(21) for i in range(21)}
    assert collapse(updates, 20, floors=[b"/l"]) == {b"/l/TV": CREATED}
    # 21 libraries changed wholesale: the tree root itself is never an entry.
    many = {f"/l/Lib{n}/e{i}.mkv".encode(): CREATED for n in range(21) for i in range(21)}
    assert set(collapse(many, 20, floors=[b"/l"])) == {f"/l/Lib{n}".encode() for n in range(21)}
    # Without any floor, the filesystem root is still never sent.
    top = {f"/f{i}.mkv".encode(): CREATED for i in range(30)}
    assert collapse(top, 20) == top


def test_collapsed_deletions_say_deleted_only_when_the_folder_is_gone(tmp_path: Path) -> None:
    kept, gone = tmp_path / "kept", tmp_path / "gone"
    kept.mkdir()
    updates = {os.fsencode(f"{d}/e{i}.mkv"): DELETED for d in (kept, gone) for i in range(21)}
    entries = build_entries(updates, 20, (), floors=[os.fsencode(tmp_path)], is_gone=lambda p: not os.path.lexists(p))
    assert {(e.path, e.update_type) for e in entries} == {(str(kept), MODIFIED), (str(gone), DELETED)}


def test_more_than_max_updates_becomes_one_library_refresh(store: Store, emby: FakeMediaServer) -> None:
    queue(store, *[(Op.CREATE, f"/links/Movies/M{i}/m.mkv") for i in range(6)])
    result = deliver(emby_config(emby.url, max_updates=5), store, sleep=Sleeps())
    assert result.ok and result.mode == "library" and result.sent == 6 and result.pending == 0
    assert [p.path for p in emby.posts()] == [REFRESH]


def test_collapsing_can_keep_a_batch_under_max_updates(store: Store, emby: FakeMediaServer) -> None:
    queue(store, *[(Op.CREATE, f"/links/TV/S/e{i}.mkv") for i in range(30)])
    result = deliver(emby_config(emby.url, max_updates=5), store, sleep=Sleeps())
    assert result.mode == "targeted" and updates_of(emby) == [[{"Path": "/links/TV/S", "UpdateType": "Created"}]]


def test_library_mode_always_refreshes_the_library(store: Store, emby: FakeMediaServer) -> None:
    queue(store, (Op.CREATE, "/links/Movies/a.mkv"))
    result = deliver(emby_config(emby.url, mode="library"), store, sleep=Sleeps())
    assert result.ok and result.mode == "library"
    assert [p.path for p in emby.posts()] == [REFRESH]


# ------------------------------------------------------ failures and retries


def test_outage_then_recovery_delivers_exactly_once(store: Store) -> None:
    queue(store, (Op.CREATE, "/links/Movies/a.mkv"), (Op.PRUNE, "/links/Movies/b.mkv"))
    sleeps = Sleeps()
    down = deliver(emby_config(dead_url(), server="emby"), store, sleep=sleeps)
    assert not down.ok and down.pending == 2 and "unreachable" in down.error and "connection refused" in down.error
    assert sleeps == [1.0, 2.0]  # three tries, backoff between them

    with FakeMediaServer("emby", KEY) as server:
        server.answer(Answer(503), Answer(503), Answer(503))
        still_down = deliver(emby_config(server.url), store, sleep=Sleeps())
        assert not still_down.ok and still_down.pending == 2 and "HTTP 503" in still_down.error
        assert len(server.posts()) == 3

        up = deliver(emby_config(server.url), store, sleep=Sleeps())
        assert up.ok and up.sent == 2 and up.pending == 0
        assert deliver(emby_config(server.url), store, sleep=Sleeps()).mode == "none"
        assert len(server.posts()) == 4
        assert len(updates_of(server)[-1]) == 2


def test_slow_server_is_a_timeout_then_retried(store: Store, emby: FakeMediaServer) -> None:
    emby.answer(Answer(204, delay=2.0))
    queue(store, (Op.CREATE, "/links/Movies/a.mkv"))
    sleeps = Sleeps()
    result = deliver(emby_config(emby.url), store, sleep=sleeps, deadline=0.3)
    assert result.ok and sleeps == [1.0] and len(emby.posts()) == 2


def test_retry_after_is_honoured(store: Store, emby: FakeMediaServer) -> None:
    emby.answer(Answer(429, {"Retry-After": "7"}), Answer(503, {"Retry-After": "0"}))
    queue(store, (Op.CREATE, "/links/Movies/a.mkv"))
    sleeps = Sleeps()
    result = deliver(emby_config(emby.url), store, sleep=sleeps)
    assert result.ok and sleeps == [7.0, 2.0]  # never shorter than the backoff
    assert len(emby.posts()) == 3


def test_retry_after_as_an_http_date(store: Store, emby: FakeMediaServer) -> None:
    emby.answer(Answer(503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))  # already past
    queue(store, (Op.CREATE, "/links/Movies/a.mkv"))
    sleeps = Sleeps()
    assert deliver(emby_config(emby.url), store, sleep=sleeps).ok and sleeps == [1.0]


def test_a_long_retry_after_is_left_for_the_next_run(store: Store, emby: FakeMediaServer) -> None:
    emby.answer(Answer(429, {"Retry-After": "3600"}))
    queue(store, (Op.CREATE, "/links/Movies/a.mkv"))
    sleeps = Sleeps()
    result = deliver(emby_config(emby.url), store, sleep=sleeps)
    assert not result.ok and result.pending == 1 and sleeps == [] and "3600" in result.error


def test_refused_key_is_one_error_line_and_kept(
    store: Store, emby: FakeMediaServer, caplog: pytest.LogCaptureFixture
) -> None:
    queue(store, (Op.CREATE, "/links/Movies/a.mkv"))
    caplog.set_level(logging.INFO)
    sleeps = Sleeps()
    result = deliver(emby_config(emby.url, api_key="wrong-key-000"), store, sleep=sleeps)
    assert result.refused and not result.ok and result.pending == 1 and sleeps == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "Emby refused the API key" in errors[0].getMessage()
    assert len(emby.posts()) == 1

    assert deliver(emby_config(emby.url), store, sleep=Sleeps()).ok
    assert queue_status(store)["queued"] == 0


def test_missing_key_keeps_the_queue(store: Store, emby: FakeMediaServer) -> None:
    queue(store, (Op.CREATE, "/links/Movies/a.mkv"))
    result = deliver(emby_config(emby.url, api_key=""), store, sleep=Sleeps())
    assert result.refused and result.pending == 1 and "api_key is not set" in result.error
    assert emby.posts() == []


def test_other_client_errors_are_not_retried(store: Store, emby: FakeMediaServer) -> None:
    emby.answer(Answer(400))
    queue(store, (Op.CREATE, "/links/Movies/a.mkv"))
    sleeps = Sleeps()
    result = deliver(emby_config(emby.url), store, sleep=sleeps)
    assert not result.ok and "HTTP 400" in result.error and result.pending == 1 and sleeps == []


def test_rows_queued_during_delivery_stay_queued(store: Store, emby: FakeMediaServer) -> None:
    emby.answer(Answer(503))
    queue(store, (Op.CREATE, "/links/Movies/a.mkv"))

    def sleep_and_queue(seconds: float) -> None:
        # Another reconcile records a change while this delivery waits to retry.
        queue(store, (Op.CREATE, "/links/Movies/late.mkv"), (Op.PRUNE, "/links/Movies/a.mkv"))

    result = deliver(emby_config(emby.url), store, sleep=sleep_and_queue)
    assert result.ok and result.sent == 1 and result.pending == 2
    assert [u["Path"] for u in updates_of(emby)[-1]] == ["/links/Movies/a.mkv"]

    assert deliver(emby_config(emby.url), store, sleep=Sleeps()).ok
    assert sorted((u["Path"], u["UpdateType"]) for u in updates_of(emby)[-1]) == [
        ("/links/Movies/a.mkv", "Deleted"),
        ("/links/Movies/late.mkv", "Created"),
    ]


def test_queue_survives_a_process_restart(db_path: str, emby: FakeMediaServer) -> None:
    with Store(db_path) as first:
        queue(first, (Op.CREATE, "/links/Movies/a.mkv"))
        assert not deliver(emby_config(dead_url(), server="emby"), first, sleep=Sleeps()).ok
    with Store(db_path) as second:
        status = queue_status(second)
        assert status["pending"] == 1 and status["oldest_queued_at"] is not None
        assert status["last_delivery"]["ok"] is False
        result = deliver(emby_config(emby.url), second, sleep=Sleeps())
        assert result.ok and result.sent == 1
        assert updates_of(emby) == [[{"Path": "/links/Movies/a.mkv", "UpdateType": "Created"}]]
        assert queue_status(second)["last_delivery"]["ok"] is True


# ---------------------------------------------------------------- jellyfin


def test_jellyfin_gets_the_mediabrowser_header(store: Store, jellyfin: FakeMediaServer) -> None:
    queue(store, (Op.CREATE, "/links/Movies/a.mkv"))
    result = deliver(emby_config(jellyfin.url), store, sleep=Sleeps())
    assert result.ok and result.server == "jellyfin"
    [post] = jellyfin.posts(UPDATED)
    assert post.headers["Authorization"] == f'MediaBrowser Token="{KEY}"'
    assert "X-Emby-Token" not in post.headers
    assert KEY not in post.path


def test_emby_header_against_jellyfin_12_is_refused(
    store: Store, jellyfin: FakeMediaServer, caplog: pytest.LogCaptureFixture
) -> None:
    queue(store, (Op.CREATE, "/links/Movies/a.mkv"))
    result = deliver(emby_config(jellyfin.url, server="emby"), store, sleep=Sleeps())
    assert result.refused and result.pending == 1 and "[emby] server" in result.error


# ------------------------------------------------------------------ secrets


def test_key_never_appears_in_logs_results_status_or_database(
    db_path: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    results: list[DeliveryResult] = []
    with Store(db_path) as store, FakeMediaServer("jellyfin", "the-other-key") as wrong:
        queue(store, (Op.CREATE, "/links/Movies/a.mkv"))
        results.append(deliver(emby_config(dead_url()), store, sleep=Sleeps()))
        results.append(deliver(emby_config(wrong.url), store, sleep=Sleeps()))
        results.append(deliver(emby_config(wrong.url, server="emby"), store, sleep=Sleeps()))
        with FakeMediaServer("emby", KEY) as right:
            results.append(deliver(emby_config(right.url), store, sleep=Sleeps()))
            config = full_config(tmp_path, emby_config(right.url))
            checks = doctor_checks(config) + doctor_checks(full_config(tmp_path, emby_config(wrong.url)))
        status = json.dumps(queue_status(store))
    assert results[-1].ok
    out = capsys.readouterr()
    shown = [caplog.text, out.out, out.err, status, json.dumps([r.as_json() for r in results])]
    shown += [f"{c.message} {c.hint}" for c in checks]
    for text in shown:
        assert KEY not in text
    for suffix in ("", "-wal"):
        if os.path.exists(db_path + suffix):
            assert KEY.encode() not in Path(db_path + suffix).read_bytes()


# ------------------------------------------------------------------- doctor


def full_config(tmp_path: Path, emby: EmbyConfig) -> Config:
    source, target = tmp_path / "src", tmp_path / "links"
    source.mkdir(exist_ok=True)
    target.mkdir(exist_ok=True)
    raw = {
        "paths": {"source": str(source), "target": str(target), "database": str(tmp_path / "db" / "g.db")},
        "emby": {
            "url": emby.url,
            "api_key": emby.api_key,
            "server": emby.server,
            "mode": emby.mode,
            "path_map": ",".join(f"{a}={b}" for a, b in emby.path_map),
        },
    }
    return parse_raw(raw)


def test_doctor_all_good(tmp_path: Path, jellyfin: FakeMediaServer) -> None:
    config = full_config(tmp_path, emby_config(jellyfin.url, path_map=((str(tmp_path / "links"), "/media"),)))
    (tmp_path / "links" / "Movies").mkdir()
    checks = doctor_checks(config)
    assert [(c.name, c.status) for c in checks] == [
        ("emby.reachable", "ok"),
        ("emby.api_key", "ok"),
        ("emby.paths", "ok"),
    ]
    assert "Jellyfin Server 12.0.0" in checks[0].message


def test_doctor_warns_about_folders_under_no_library(tmp_path: Path, emby: FakeMediaServer) -> None:
    config = full_config(tmp_path, emby_config(emby.url, path_map=((str(tmp_path / "links"), "/media"),)))
    for name in ("Movies", "Anime"):
        (tmp_path / "links" / name).mkdir()
    checks = doctor_checks(config)
    paths = checks[-1]
    assert paths.name == "emby.paths" and paths.warn and not paths.failed
    assert "/media/Anime" in paths.message and "/media/Movies" not in paths.message


def test_doctor_warns_when_the_map_points_nowhere(tmp_path: Path, emby: FakeMediaServer) -> None:
    config = full_config(tmp_path, emby_config(emby.url))  # no path_map: the server sees host paths
    paths = doctor_checks(config)[-1]
    assert paths.warn and "no library lies there" in paths.message


def test_doctor_reports_refused_key_and_unreachable_server(tmp_path: Path, jellyfin: FakeMediaServer) -> None:
    refused = doctor_checks(full_config(tmp_path, emby_config(jellyfin.url, api_key="wrong")))
    assert [(c.name, c.status) for c in refused] == [("emby.reachable", "ok"), ("emby.api_key", "fail")]
    assert "Jellyfin refused the API key" in refused[1].message

    wrong_kind = doctor_checks(full_config(tmp_path, emby_config(jellyfin.url, server="emby")))
    assert ("emby.server", "fail") in [(c.name, c.status) for c in wrong_kind]

    down = doctor_checks(full_config(tmp_path, emby_config(dead_url())))
    assert [(c.name, c.status) for c in down] == [("emby.reachable", "fail")]


def test_doctor_without_url_is_fine(tmp_path: Path) -> None:
    [check] = doctor_checks(full_config(tmp_path, emby_config("")))
    assert check.ok


# ------------------------------------------------------- the reconcile cycle


def make_source(root: Path) -> None:
    for rel in ("Movies/A (2001)/A.mkv", "TV/Show/Season 1/e1.mkv", "TV/Show/Season 1/e2.mkv", "TV/Show/notes.txt"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"video")


def cycle_config(tmp_path: Path, url: str, **emby: str) -> Config:
    raw = {
        "paths": {
            "source": str(tmp_path / "src"),
            "target": str(tmp_path / "links"),
            "database": str(tmp_path / "db" / "g.db"),
        },
        "emby": {"url": url, "api_key": KEY, "path_map": f"{tmp_path / 'links'}=/media", **emby},
        "scan": {"settle": "0s"},  # the files were just written: announced at once, not once settled
    }
    return parse_raw(raw)


def test_reconcile_sends_one_request_for_its_changes(tmp_path: Path, emby: FakeMediaServer) -> None:
    from graylink.reconcile.cycle import CycleOptions, run_cycle

    make_source(tmp_path / "src")
    config = cycle_config(tmp_path, emby.url)
    with Store(config.paths.database) as store:
        first = run_cycle(config, store, CycleOptions())
        assert first.exit_code == 0 and first.emby is not None and first.emby.sent == 3
        assert os.path.islink(tmp_path / "links" / "TV" / "Show" / "Season 1" / "e1.mkv")
        assert sorted((u["Path"], u["UpdateType"]) for u in updates_of(emby)[0]) == [
            ("/media/Movies/A (2001)/A.mkv", "Created"),
            ("/media/TV/Show/Season 1/e1.mkv", "Created"),
            ("/media/TV/Show/Season 1/e2.mkv", "Created"),
        ]

        unchanged = run_cycle(config, store, CycleOptions())
        assert unchanged.emby is not None and unchanged.emby.mode == "none"
        assert len(emby.posts(UPDATED)) == 1

        (tmp_path / "src" / "TV" / "Show" / "Season 1" / "e2.mkv").unlink()
        run_cycle(config, store, CycleOptions())
        assert updates_of(emby)[-1] == [{"Path": "/media/TV/Show/Season 1/e2.mkv", "UpdateType": "Deleted"}]

        dry = run_cycle(config, store, CycleOptions(dry_run=True))
        assert dry.emby is None and len(emby.posts(UPDATED)) == 2


def test_reconcile_without_url_queues_nothing(tmp_path: Path) -> None:
    from graylink.reconcile.cycle import CycleOptions, run_cycle

    make_source(tmp_path / "src")
    config = cycle_config(tmp_path, "")
    with Store(config.paths.database) as store:
        result = run_cycle(config, store, CycleOptions())
        assert result.exit_code == 0 and result.emby is None and result.plan.counts()["create"] == 3
        assert queue_status(store)["queued"] == 0


def test_reconcile_cli_exits_1_while_the_server_is_down_then_delivers(tmp_path: Path) -> None:
    import subprocess
    import sys

    make_source(tmp_path / "src")
    repo = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(repo),
        "GRAYLINK_PATHS_SOURCE": str(tmp_path / "src"),
        "GRAYLINK_PATHS_TARGET": str(tmp_path / "links"),
        "GRAYLINK_PATHS_DATABASE": str(tmp_path / "db" / "g.db"),
        "GRAYLINK_EMBY_URL": dead_url(),
        "GRAYLINK_EMBY_API_KEY": KEY,
        "GRAYLINK_EMBY_SERVER": "emby",
        "GRAYLINK_SCAN_SETTLE": "0s",  # the files were just written: announced at once
    }
    env.pop("GRAYLINK_CONFIG", None)
    command = [sys.executable, "-m", "graylink", "reconcile", "--json"]
    # Three refused connections and two backoff pauses (1 s + 2 s) of the real sleep.
    down = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert down.returncode == 1, down.stderr
    assert "links themselves are done" in down.stderr
    assert KEY not in down.stderr + down.stdout
    document = json.loads(down.stdout)
    assert document["emby"]["ok"] is False and document["emby"]["pending"] == 3
    assert os.path.islink(tmp_path / "links" / "Movies" / "A (2001)" / "A.mkv")

    with FakeMediaServer("emby", KEY) as server:
        up = subprocess.run(
            command, env={**env, "GRAYLINK_EMBY_URL": server.url}, cwd=tmp_path, capture_output=True, text=True
        )
        assert up.returncode == 0, up.stderr
        assert json.loads(up.stdout)["emby"]["sent"] == 3
        assert len(updates_of(server)) == 1 and len(updates_of(server)[0]) == 3


# ------------------------------------------------------------ properties

_names = st.sampled_from(["a", "b", "c", "Season 1", "é"])
_rel_paths = st.lists(_names, min_size=1, max_size=4).map("/".join)


@settings(max_examples=200, deadline=None)
@given(
    changes=st.lists(st.tuples(_rel_paths, st.sampled_from(list(QUEUED_OPS))), min_size=1, max_size=60),
    threshold=st.integers(min_value=1, max_value=5),
)
def test_every_change_is_covered_by_exactly_the_entries_sent(changes: list[tuple[str, Op]], threshold: int) -> None:
    rows = [(f"/srv/links/{rel}".encode(), op) for rel, op in changes]
    entries = build_entries(merge(rows), threshold, (("/srv/links", "/media"),), floors=[b"/srv/links"])
    paths = [e.path for e in entries]
    assert len(paths) == len(set(paths)) <= len({p for p, _ in rows})
    for path in paths:
        assert path.startswith("/media/")  # never the root itself, never unmapped
        assert not any(path.startswith(other + "/") for other in paths)  # no entry inside another
    for rel, _ in changes:
        mapped = f"/media/{rel}"
        assert any(mapped == p or mapped.startswith(p + "/") for p in paths)
