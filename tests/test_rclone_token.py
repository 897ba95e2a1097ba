"""A token borrowed from rclone's built-in client: used until its real expiry, waited for, then explained.

The loopback Google (tests/google_server.py) refuses an access token after the
lifetime it issued it with, as Google does; rclone.conf is rewritten by the test
the way a running rclone rewrites it after its own refresh (fs/config/configfile).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import pytest

from graylink.cli import AppContext
from graylink.drive.feed import TOKEN_PATIENCE, TOKEN_RETRY, CredentialCache, poll_drive
from graylink.service.jobs import Job, job_drive
from graylink.service.loop import Service
from graylink.store.db import Store
from tests.google_server import FakeGoogle
from tests.test_drive import Drive, go_time, make_config, write_rclone_conf


@pytest.fixture
def google():
    with FakeGoogle() as server:
        yield server


def rewrite_token(path: Path, google: FakeGoogle, expires_in: float) -> str:
    """What rclone does after refreshing: the same remote, a new access token and expiry."""
    text = path.read_text()
    head, _, _ = text.partition("token = ")
    access = google.issue_access_token(["drive", "drive.activity.readonly"], lifetime=max(expires_in, 1))
    token = {
        "access_token": access,
        "token_type": "Bearer",
        "refresh_token": "made-up-refresh",
        "expiry": go_time(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=expires_in)),
    }
    tail = text.partition("token = ")[2].partition("\n")[2]
    path.write_text(f"{head}token = {json.dumps(token)}\n{tail}")
    return access


def test_a_token_two_minutes_from_expiry_is_still_used(tmp_path, google):
    drive = Drive(google)
    write_rclone_conf(tmp_path / "rclone.conf", google, client_id="", root_folder_id=drive.root, expires_in=120)
    config = make_config(tmp_path, google)
    with Store(config.paths.database) as store:
        first = poll_drive(config, store)
        drive.file("a.mkv")
        second = poll_drive(config, store)
    assert first.error is None and second.error is None, (first.error, second.error)
    assert second.marks == 1
    assert google.calls("token") == 0, "graylink never refreshes rclone's built-in client itself"


def test_an_expired_token_waits_quietly_for_rclone_then_uses_the_rewritten_one(tmp_path, google, caplog):
    drive = Drive(google)
    conf = tmp_path / "rclone.conf"
    write_rclone_conf(conf, google, client_id="", root_folder_id=drive.root, expires_in=-30)
    config = make_config(tmp_path, google)
    cache = CredentialCache()
    with Store(config.paths.database) as store, caplog.at_level(logging.INFO):
        waiting = poll_drive(config, store, cache)
        assert waiting.error is None and waiting.retry_in == TOKEN_RETRY and waiting.skipped
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert any("has not refreshed it yet" in r.getMessage() for r in caplog.records)
        fresh = rewrite_token(conf, google, expires_in=3600)  # rclone refreshed while graylink runs
        assert poll_drive(config, store, cache).error is None
        drive.file("b.mkv")
        assert poll_drive(config, store, cache).marks == 1
    assert fresh in google.state.access_tokens
    assert store_waits_cleared(config)


def store_waits_cleared(config):
    with Store(config.paths.database) as store:
        return store.get_meta("drive.token_waits") is None


def test_a_token_that_stays_expired_is_an_error_with_the_right_advice(tmp_path, google, caplog):
    drive = Drive(google)
    write_rclone_conf(tmp_path / "rclone.conf", google, client_id="", root_folder_id=drive.root, expires_in=-30)
    config = make_config(tmp_path, google)
    with Store(config.paths.database) as store, caplog.at_level(logging.INFO):
        results = [poll_drive(config, store) for _ in range(TOKEN_PATIENCE)]
    assert all(r.error is None for r in results[:-1])
    error = results[-1].error
    assert error is not None and "built-in client" in error and "--poll-interval" in error
    assert "reconnect" not in error, "reconnecting does not help: rclone refreshes only while it runs"
    assert [r.levelno for r in caplog.records if r.levelno >= logging.WARNING] == [logging.ERROR]


def test_the_service_retries_the_feed_soon_after_a_skipped_poll(tmp_path, google):
    drive = Drive(google)
    conf = tmp_path / "rclone.conf"
    write_rclone_conf(conf, google, client_id="", root_folder_id=drive.root, expires_in=-30)
    config = make_config(tmp_path, google)
    ini = tmp_path / "graylink.ini"
    ini.write_text(
        f"[paths]\nsource = {config.paths.source}\ntarget = {config.paths.target}\n"
        f"database = {config.paths.database}\n[drive]\nenabled = yes\nremote = gdrive:\nrclone_config = {conf}\n"
        f"api_endpoint = {google.url}\ntoken_uri = {google.url}/token\n"
        f"token_file = {tmp_path / 'no-token.json'}\n"
    )
    app = AppContext(config_path=str(ini), verbosity=0)
    with Store(config.paths.database) as store:
        service = Service(app, app.config, store, (Job("drive", lambda c: 3600, job_drive),))
        service.schedule_jobs()
        service.run_job(service.jobs[0])
        retries = service.scheduler.get_jobs("drive-retry")
        assert len(retries) == 1 and retries[0].interval == TOKEN_RETRY
        rewrite_token(conf, google, expires_in=3600)
        retries[0].next_run = dt.datetime.now() - dt.timedelta(seconds=1)  # schedule's clock is local time
        service.scheduler.run_pending()  # what the loop does: the interval job is an hour away
        assert not service.scheduler.get_jobs("drive-retry"), "the retry runs once"
        row = store.execute("SELECT ok, result FROM job_run WHERE name = 'drive'").fetchone()
    assert row[0] == 1, row
