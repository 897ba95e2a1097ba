"""The Drive Activity trigger against a loopback Google, driven by the real client libraries."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from graylink.config import Config, parse_raw
from graylink.drive.feed import CredentialCache, drive_status, poll_drive
from graylink.errors import ConfigError
from graylink.store.db import Store
from tests.google_server import MY_DRIVE_ROOT, FakeGoogle

ROOT = Path(__file__).resolve().parents[1]
CLIENT_ID = "graylink-test-client.apps.example"
CLIENT_SECRET = "made-up-client-secret-4711"
REFRESH = "made-up-refresh-token-0815"
SECRETS = (CLIENT_SECRET, REFRESH)


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle() as server:
        server.add_client(CLIENT_ID, CLIENT_SECRET)
        yield server


def go_time(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")


def write_rclone_conf(
    path: Path,
    google: FakeGoogle,
    *,
    scopes: str = "drive,drive.activity.readonly",
    client_id: str = CLIENT_ID,
    expires_in: float = 3600,
    root_folder_id: str = "",
    extra: str = "",
    name: str = "gdrive",
) -> str:
    """An rclone.conf whose remote holds a token issued by the loopback Google."""
    google.grant(REFRESH, scopes.split(","))
    access = google.issue_access_token(scopes.split(","), lifetime=max(expires_in, 1))
    token = {
        "access_token": access,
        "token_type": "Bearer",
        "refresh_token": REFRESH,
        "expiry": go_time(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=expires_in)),
    }
    lines = [
        f"[{name}]",
        "type = drive",
        f"client_id = {client_id}",
        f"client_secret = {CLIENT_SECRET if client_id else ''}",
        f"scope = {scopes}",
        f"token = {json.dumps(token)}",
    ]
    if root_folder_id:
        lines.append(f"root_folder_id = {root_folder_id}")
    path.write_text("\n".join(lines) + "\n" + extra)
    return access


def make_config(tmp_path: Path, google: FakeGoogle, remote: str = "gdrive:", **drive: str) -> Config:
    (tmp_path / "src").mkdir(exist_ok=True)
    raw = {
        "paths": {
            "source": str(tmp_path / "src"),
            "target": str(tmp_path / "links"),
            "database": str(tmp_path / "graylink.db"),
        },
        "drive": {
            "enabled": "yes",
            "rclone_config": str(tmp_path / "rclone.conf"),
            "remote": remote,
            "api_endpoint": google.url,
            "token_uri": google.url + "/token",
            "auth_uri": google.url + "/auth",
            "token_file": str(tmp_path / "drive-token.json"),
            **drive,
        },
    }
    return parse_raw(raw)


class Drive:
    """A library on the loopback Drive: 'Media' is the mount root."""

    def __init__(self, google: FakeGoogle) -> None:
        self.google = google
        self.root = google.add("Media", MY_DRIVE_ROOT, folder=True, record=False)
        self.ids: dict[str, str] = {"": self.root}

    def folder(self, rel: str, record: bool = False) -> str:
        parent, _, name = rel.rpartition("/")
        self.ids[rel] = self.google.add(name, self.ids[parent], folder=True, record=record)
        return self.ids[rel]

    def file(self, rel: str, record: bool = True, at_ms: int | None = None) -> str:
        parent, _, name = rel.rpartition("/")
        self.ids[rel] = self.google.add(name, self.ids[parent], record=record, at_ms=at_ms)
        return self.ids[rel]


@pytest.fixture
def drive(google: FakeGoogle) -> Drive:
    return Drive(google)


@pytest.fixture
def setup(tmp_path: Path, google: FakeGoogle, drive: Drive) -> Iterator[tuple[Config, Store]]:
    write_rclone_conf(tmp_path / "rclone.conf", google, root_folder_id=drive.root)
    config = make_config(tmp_path, google)
    with Store(config.paths.database) as store:
        yield config, store


def marks(store: Store) -> set[tuple[bytes, bool]]:
    return {(m.path, m.recursive) for m in store.pending_marks()}


def start(config: Config, store: Store) -> None:
    """The first poll starts the cursor at now; later activities are what count."""
    first = poll_drive(config, store)
    assert first.error is None and first.marks == 0
    time.sleep(0.005)  # the next activity's millisecond is after the cursor


# ------------------------------------------------------------------ the poll


def test_first_poll_starts_from_now_and_later_changes_mark_parents(setup, drive):
    config, store = setup
    drive.folder("Shows")
    drive.folder("Shows/S1")
    drive.file("Shows/S1/old.mkv")  # before the first poll: the first full scan covers it
    start(config, store)
    assert marks(store) == set()
    drive.file("Shows/S1/e02.mkv")
    result = poll_drive(config, store)
    assert result.error is None and result.activities == 1
    assert marks(store) == {(b"Shows/S1", False)}
    assert store.pending_marks()[0].reason == "drive" and not store.pending_marks()[0].indexed


def test_second_poll_over_the_same_window_marks_nothing(setup, drive):
    config, store = setup
    start(config, store)
    drive.folder("Movies")
    drive.file("Movies/a.mkv")
    assert poll_drive(config, store).marks == 1
    store.clear_marks(m.id for m in store.pending_marks())
    again = poll_drive(config, store)
    assert (again.activities, again.marks) == (0, 0)
    assert marks(store) == set()


def test_file_move_marks_old_and_new_parent_and_rename_marks_parent(setup, drive, google):
    config, store = setup
    drive.folder("A")
    drive.folder("B")
    vid = drive.file("A/x.mkv", record=False)
    start(config, store)
    google.move(vid, drive.ids["B"])
    poll_drive(config, store)
    assert marks(store) == {(b"A", False), (b"B", False)}
    store.clear_marks(m.id for m in store.pending_marks())
    google.rename(vid, "y.mkv")
    poll_drive(config, store)
    assert marks(store) == {(b"B", False)}


def test_folder_rename_marks_old_and_new_subtrees_and_refreshes_the_cache(setup, drive, google):
    config, store = setup
    drive.folder("Shows")
    season = drive.folder("Shows/Season 1")
    drive.file("Shows/Season 1/e1.mkv", record=False)
    start(config, store)
    drive.file("Shows/Season 1/e2.mkv")
    poll_drive(config, store)  # caches the folders
    assert marks(store) == {(b"Shows/Season 1", False)}
    store.clear_marks(m.id for m in store.pending_marks())
    google.rename(season, "Season 01")
    time.sleep(0.002)
    google.add("e3.mkv", season)
    poll_drive(config, store)
    # The old and new subtrees, the folder holding them (its listing changed), the new episode's folder.
    assert marks(store) == {
        (b"Shows/Season 1", True),
        (b"Shows/Season 01", True),
        (b"Shows", False),
        (b"Shows/Season 01", False),
    }
    cached = dict(store.execute("SELECT id, path FROM drive_item").fetchall())
    assert bytes(cached[season]) == b"Shows/Season 01"


def test_folder_move_and_delete_mark_subtrees(setup, drive, google):
    config, store = setup
    drive.folder("In")
    drive.folder("Out")
    movie = drive.folder("In/Film (2001)")
    drive.file("In/Film (2001)/film.mkv", record=False)
    start(config, store)
    google.move(movie, drive.ids["Out"])
    poll_drive(config, store)
    assert marks(store) == {(b"In/Film (2001)", True), (b"Out/Film (2001)", True), (b"In", False), (b"Out", False)}
    store.clear_marks(m.id for m in store.pending_marks())
    google.trash(movie)
    poll_drive(config, store)
    assert marks(store) == {(b"Out/Film (2001)", True), (b"Out", False)}


def test_permanently_deleted_folder_is_found_in_the_cache(setup, drive, google):
    config, store = setup
    drive.folder("Old")
    gone = drive.folder("Old/Gone")
    start(config, store)
    drive.file("Old/Gone/a.mkv")
    poll_drive(config, store)  # caches Old/Gone
    store.clear_marks(m.id for m in store.pending_marks())
    google.delete_forever(gone)
    result = poll_drive(config, store)
    assert result.error is None
    assert marks(store) == {(b"Old/Gone", True), (b"Old", False)}


def test_a_file_deleted_for_good_is_placed_from_the_item_record(setup, drive, google):
    config, store = setup
    drive.folder("Shows")
    start(config, store)
    vid = drive.file("Shows/e1.mkv")
    poll_drive(config, store)  # the record learns where e1.mkv is
    store.clear_marks(m.id for m in store.pending_marks())
    before = google.calls("files.get")
    google.delete_forever(vid)
    result = poll_drive(config, store)
    assert result.error is None
    assert marks(store) == {(b"Shows", False)}  # its folder, not the whole source
    assert google.calls("files.get") == before  # no files.get answering 404


def test_unresolvable_item_marks_the_root(setup, drive, google, caplog):
    config, store = setup
    drive.folder("X")
    vid = drive.file("X/a.mkv", record=False)
    start(config, store)
    google.delete_forever(vid)  # files.get answers 404, nothing cached for a file
    drive.file("X/b.mkv")
    with caplog.at_level(logging.WARNING):
        result = poll_drive(config, store)
    assert result.error is None
    assert marks(store) == {(b"", True)}
    assert "marking the whole source dirty" in caplog.text


def test_comments_cost_nothing_and_outside_items_are_ignored(setup, drive, google):
    config, store = setup
    vid = drive.file("a.mkv", record=False)
    elsewhere = google.add("Other", MY_DRIVE_ROOT, folder=True, record=False)
    start(config, store)
    google.comment(vid)
    google.add("b.mkv", elsewhere)  # not under the root: the query leaves it out
    before = google.calls("files.get")
    result = poll_drive(config, store)
    assert (result.activities, result.marks) == (1, 0)
    assert google.calls("files.get") == before


def test_item_moved_out_of_the_root_marks_only_the_old_side(setup, drive, google):
    config, store = setup
    drive.folder("Keep")
    vid = drive.file("Keep/a.mkv", record=False)
    elsewhere = google.add("Other", MY_DRIVE_ROOT, folder=True, record=False)
    start(config, store)
    google.move(vid, elsewhere)
    poll_drive(config, store)
    assert marks(store) == {(b"Keep", False)}


def test_several_pages_and_one_lookup_per_folder(setup, drive, google, monkeypatch):
    config, store = setup
    monkeypatch.setattr("graylink.drive.activity.PAGE_SIZE", 7)
    for n in range(5):
        drive.folder(f"S{n}")
    start(config, store)
    for n in range(5):
        for e in range(6):
            drive.file(f"S{n}/e{e}.mkv")
    before = google.calls("files.get")
    result = poll_drive(config, store)
    assert result.activities == 30
    assert google.calls("activity.query") >= 5
    assert marks(store) == {(f"S{n}".encode(), False) for n in range(5)}
    # 30 files, one files.get each, plus each of the 5 folders once.
    assert google.calls("files.get") - before == 35


def test_late_activity_inside_the_overlap_is_handled_once(setup, drive, google):
    config, store = setup
    drive.folder("A")
    drive.folder("B")
    start(config, store)
    drive.file("A/now.mkv")
    poll_drive(config, store)
    cursor = int(store.get_meta("drive.cursor_ms") or 0)
    store.clear_marks(m.id for m in store.pending_marks())
    # Recorded by Google only now, with a time two minutes before the cursor.
    drive.file("B/late.mkv", at_ms=cursor - 120_000)
    result = poll_drive(config, store)
    assert (result.activities, marks(store)) == (1, {(b"B", False)})
    store.clear_marks(m.id for m in store.pending_marks())
    assert poll_drive(config, store).activities == 0
    assert marks(store) == set()
    # Outside the overlap (10m) it is too late by design: the daily full scan is the net.
    drive.file("B/too-late.mkv", at_ms=cursor - 11 * 60_000)
    assert poll_drive(config, store).activities == 0


def test_failed_poll_keeps_the_cursor_and_retries(setup, drive, google, monkeypatch):
    config, store = setup
    monkeypatch.setattr("graylink.drive.google.MAX_TRIES", 2)
    monkeypatch.setattr("graylink.drive.google.BACKOFF_BASE", 0.01)  # the real backoff starts at a second
    drive.folder("A")
    start(config, store)
    cursor = store.get_meta("drive.cursor_ms")
    drive.file("A/x.mkv")
    google.state.fail_queries = [503, 503]  # more than the retries
    result = poll_drive(config, store)
    assert result.error is not None and "503" in result.error
    assert store.get_meta("drive.cursor_ms") == cursor and marks(store) == set()
    assert drive_status(store)["last_result"] == result.error
    google.state.fail_queries = [503]  # one transient failure: retried inside the poll
    result = poll_drive(config, store)
    assert result.error is None and marks(store) == {(b"A", False)}
    assert drive_status(store)["last_result"] == "ok"


def test_kill_between_fetch_and_commit_loses_nothing(setup, drive, google, tmp_path):
    config, store = setup
    drive.folder("A")
    start(config, store)
    drive.file("A/x.mkv")
    google.state.hold_files_get = __import__("threading").Event()
    script = (
        "import sys; from graylink.config import load_config; from graylink.store.db import Store;"
        "from graylink.drive.feed import poll_drive;"
        "c = load_config(sys.argv[1]); poll_drive(c, Store(c.paths.database))"
    )
    ini = tmp_path / "graylink.ini"
    ini.write_text(
        "[paths]\n"
        + "".join(f"{k} = {getattr(config.paths, k)}\n" for k in ("source", "target", "database"))
        + "[drive]\n"
        + "".join(
            f"{k} = {getattr(config.drive, k)}\n"
            for k in ("enabled", "rclone_config", "remote", "api_endpoint", "token_uri", "token_file")
        ).replace("= True", "= yes")
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(ini)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    try:
        assert google.state.files_get_reached.wait(30), "the poll never resolved the item"
        proc.send_signal(signal.SIGKILL)  # fetched, not yet committed
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    google.state.hold_files_get.set()
    google.state.hold_files_get = None
    assert marks(store) == set()
    result = poll_drive(config, store)
    assert result.activities == 1 and marks(store) == {(b"A", False)}


# ----------------------------------------------------------- credentials


def test_refused_scope_is_one_clear_error(tmp_path, google, drive, caplog):
    write_rclone_conf(tmp_path / "rclone.conf", google, scopes="drive", root_folder_id=drive.root)
    config = make_config(tmp_path, google, feed="activity")
    with Store(config.paths.database) as store, caplog.at_level(logging.ERROR):
        result = poll_drive(config, store)
    assert result.scope_missing and result.error is not None
    assert "drive.activity" in result.error and "graylink drive auth" in result.error
    assert "rclone config reconnect" in result.error
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert google.calls("activity.query") == 1


def test_expired_access_token_is_refreshed(tmp_path, google, drive, caplog):
    old_access = write_rclone_conf(tmp_path / "rclone.conf", google, expires_in=-60, root_folder_id=drive.root)
    config = make_config(tmp_path, google)
    cache = CredentialCache()
    with Store(config.paths.database) as store, caplog.at_level(logging.DEBUG):
        assert poll_drive(config, store, cache).error is None
        assert google.calls("token") == 1
        drive.file("b.mkv")
        assert poll_drive(config, store, cache).error is None
        assert google.calls("token") == 1  # kept in memory between polls
    assert old_access in (tmp_path / "rclone.conf").read_text()  # rclone.conf untouched
    assert not any(s in caplog.text for s in (*SECRETS, "fake-access"))  # not even at debug level


def test_revoked_refresh_token_is_a_runtime_error(tmp_path, google, drive):
    write_rclone_conf(tmp_path / "rclone.conf", google, expires_in=-60, root_folder_id=drive.root)
    google.state.refresh_tokens.clear()
    config = make_config(tmp_path, google)
    with Store(config.paths.database) as store:
        result = poll_drive(config, store)
    assert result.error is not None and "invalid_grant" in result.error
    assert REFRESH not in result.error


def test_builtin_client_uses_the_access_token_while_valid(tmp_path, google, drive):
    write_rclone_conf(tmp_path / "rclone.conf", google, client_id="", root_folder_id=drive.root)
    config = make_config(tmp_path, google)
    with Store(config.paths.database) as store:
        assert poll_drive(config, store).error is None
        assert google.calls("token") == 0
        write_rclone_conf(tmp_path / "rclone.conf", google, client_id="", expires_in=-60, root_folder_id=drive.root)
        result = poll_drive(config, store)
    assert result.error is None and result.skipped  # waits for rclone's refresh: tests/test_rclone_token.py


def test_alias_remote_is_followed_to_its_drive_and_path(tmp_path, google, drive):
    drive.folder("TV")
    drive.folder("TV/Show")
    write_rclone_conf(
        tmp_path / "rclone.conf",
        google,
        root_folder_id=drive.root,
        extra="\n[media]\ntype = alias\nremote = gdrive:TV\n",
    )
    config = make_config(tmp_path, google, remote="media:Show")
    with Store(config.paths.database) as store:
        start(config, store)
        assert store.get_meta("drive.root_id") == drive.ids["TV/Show"]
        drive.folder("TV/Show/S1")
        drive.file("TV/Show/S1/e1.mkv")
        poll_drive(config, store)
        assert marks(store) == {(b"S1", False)}


def test_remote_path_is_resolved_from_my_drive_root(tmp_path, google, drive):
    write_rclone_conf(tmp_path / "rclone.conf", google)
    config = make_config(tmp_path, google, remote="gdrive:Media")
    with Store(config.paths.database) as store:
        start(config, store)
        assert store.get_meta("drive.root_id") == drive.root


@pytest.mark.parametrize(
    ("conf", "remote", "expected"),
    [
        ("[gdrive]\ntype = drive\ntoken = {not json\n", "gdrive:", "not valid JSON"),
        ("[secret]\ntype = crypt\nremote = /srv/enc\n", "secret:", "points at a local path"),
        ("[gdrive]\ntype = drive\nencoding = Slash,Bogus\n", "gdrive:", "bad encoding 'Bogus'"),
        ("[gdrive]\ntype = drive\n", "gdrive,team_drive=x", "not an rclone remote"),
        ("[other]\ntype = drive\n", "gdrive:", "no remote [gdrive]"),
        ("[s3]\ntype = s3\n", "s3:", "not 'drive'"),
        ("[a]\ntype = alias\nremote = b:\n[b]\ntype = alias\nremote = a:\n", "a:", "loop"),
        ("RCLONE_ENCRYPT_V0:\nabcdef\n", "gdrive:", "encrypted"),
    ],
)
def test_bad_rclone_conf_is_a_config_error(tmp_path, google, conf, remote, expected):
    (tmp_path / "rclone.conf").write_text(conf)
    config = make_config(tmp_path, google, remote=remote)
    with Store(config.paths.database) as store, pytest.raises(ConfigError) as err:
        poll_drive(config, store)
    assert expected in str(err.value)
    assert err.value.exit_code == 2


def test_unreadable_rclone_conf_is_a_config_error(tmp_path, google):
    config = make_config(tmp_path, google, rclone_config=str(tmp_path / "missing.conf"))
    with Store(config.paths.database) as store, pytest.raises(ConfigError, match="does not exist"):
        poll_drive(config, store)


def test_status_reports_the_feed(setup, drive):
    config, store = setup
    start(config, store)
    drive.file("a.mkv")
    poll_drive(config, store)
    status = drive_status(store)
    assert status["last_result"] == "ok" and status["last_marks"] == 1 and status["total_marks"] == 1
    assert status["cursor_age_s"] is not None and status["root_id"] == drive.root
    assert not any(s in json.dumps(status) for s in SECRETS)


def test_shared_drive_root_is_the_team_drive(tmp_path, google):
    shared = google.add("Team Media", "", folder=True, record=False, item_id="0ASharedDriveId")
    google.state.items[shared].parents = []  # a shared drive's root has no parent
    write_rclone_conf(tmp_path / "rclone.conf", google, extra="team_drive = 0ASharedDriveId\n")  # in [gdrive]
    config = make_config(tmp_path, google)
    with Store(config.paths.database) as store:
        start(config, store)
        assert store.get_meta("drive.root_id") == shared
        season = google.add("Season 1", shared, folder=True, record=False)
        google.add("e1.mkv", season)
        assert poll_drive(config, store).error is None
        assert marks(store) == {(b"Season 1", False)}
