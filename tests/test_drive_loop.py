"""The Drive feed inside ``graylink reconcile --loop``, a real process against a loopback Google.

The walk runs once an hour here and folder mtimes are trusted and put back
after every change (as an rclone mount shows them), so whatever the loop links
after its first walk, it found through the feed.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator

import pytest
from service_support import Loop, linked, wait_for

from tests.google_server import MY_DRIVE_ROOT, FakeGoogle
from tests.test_drive import CLIENT_ID, CLIENT_SECRET, SECRETS, write_rclone_conf
from tests.test_drive_service_account import EMAIL, KEY_ID, account_info, make_key

from conftest import Library, links_in

OLD = time.time() - 7200  # every folder's mtime, as the mount keeps showing it


class Mirror:
    """The library twice: in the source folder and on the loopback Drive ('Media' is the mount root)."""

    def __init__(self, lib: Library, google: FakeGoogle) -> None:
        self.lib = lib
        self.google = google
        self.ids = {"": google.add("Media", MY_DRIVE_ROOT, folder=True, record=False)}
        self.rclone_conf = lib.root / "rclone.conf"

    def folder(self, rel: str, record: bool = False) -> None:
        (self.lib.source / rel).mkdir(parents=True)
        parent, _, name = rel.rpartition("/")
        self.ids[rel] = self.google.add(name, self.ids[parent], folder=True, record=record)
        self.age(parent, rel)

    def file(self, rel: str, record: bool = True) -> None:
        parent, _, name = rel.rpartition("/")
        (self.lib.source / rel).write_bytes(b"video")
        self.ids[rel] = self.google.add(name, self.ids[parent], record=record)
        self.age(parent)

    def age(self, *rels: str) -> None:
        for rel in rels:
            os.utime(self.lib.source / rel if rel else self.lib.source, (OLD, OLD))

    def age_all(self) -> None:
        for dirpath, _, _ in os.walk(self.lib.source):
            os.utime(dirpath, (OLD, OLD))

    def write_ini(self, scopes: str = "drive,drive.activity.readonly", feed: str = "auto") -> None:
        write_rclone_conf(self.rclone_conf, self.google, scopes=scopes, root_folder_id=self.ids[""])
        self.lib.write_ini(
            scan={"interval": "1h", "trust_dir_mtime": "yes", "workers": "2"},
            drive={
                "enabled": "yes",
                "feed": feed,
                "interval": "1s",
                "rclone_config": str(self.rclone_conf),
                "remote": "gdrive:",
                "api_endpoint": self.google.url,
                "token_uri": self.google.url + "/token",
                "token_file": str(self.lib.root / "drive-token.json"),  # never written: rclone's token is used
            },
        )


@pytest.fixture
def mirror(lib: Library) -> Iterator[Mirror]:
    with FakeGoogle() as google:
        google.add_client(CLIENT_ID, CLIENT_SECRET)
        m = Mirror(lib, google)
        m.folder("Shows")
        m.folder("Shows/S1")
        m.file("Shows/S1/e1.mkv", record=False)
        m.age_all()
        yield m


def job_row(lib: Library, name: str) -> tuple[int, int] | None:
    """(runs, failures) of one job, as the loop recorded them."""
    conn = sqlite3.connect(lib.database)
    try:
        row = conn.execute("SELECT runs, failures FROM job_run WHERE name = ?", (name,)).fetchone()
    except sqlite3.OperationalError:
        return None  # the loop has not created its tables yet
    finally:
        conn.close()
    return None if row is None else (int(row[0]), int(row[1]))


def runs_at_least(lib: Library, name: str, count: int) -> Callable[[], bool]:
    def check() -> bool:
        row = job_row(lib, name)
        return row is not None and row[0] >= count

    return check


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if " ERROR " in line]


def test_the_loop_links_what_only_the_feed_reports(lib: Library, mirror: Mirror, loop_of: Callable[[], Loop]) -> None:
    mirror.write_ini()
    loop = loop_of()
    wait_for("the first walk's link", linked(lib, "Shows/S1/e1.mkv"), loop.proc)
    # An activity recorded before the feed's first poll would count as the past.
    loop.wait_log("drive feed: started")

    mirror.file("Shows/S1/e2.mkv")
    wait_for("the new episode linked through the feed", linked(lib, "Shows/S1/e2.mkv"), loop.proc)
    mirror.folder("Shows/S2", record=True)
    mirror.file("Shows/S2/e1.mkv")
    wait_for("a new season linked through the feed", linked(lib, "Shows/S2/e1.mkv"), loop.proc)
    assert set(links_in(lib.target)) == {b"Shows/S1/e1.mkv", b"Shows/S1/e2.mkv", b"Shows/S2/e1.mkv"}
    assert job_row(lib, "walk") == (1, 0), "only the start walk ran: the feed found the new files"

    status = lib.run("status", "--json")
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    drive = doc["drive"]
    assert drive["last_result"] == "ok"
    assert drive["last_poll"] is not None and drive["last_poll_age_s"] < 3600
    assert drive["cursor"] is not None and drive["cursor_age_s"] is not None
    assert drive["total_marks"] >= 2
    assert drive["root_id"] == mirror.ids[""]
    jobs = {job["name"]: job for job in doc["jobs"]}
    assert jobs["drive"]["runs"] >= 3 and jobs["drive"]["failures"] == 0
    assert jobs["drive"]["next_run"] is not None
    assert doc["last_reconcile"]["trigger"] == "drive"

    text = lib.run("status")
    assert text.returncode == 0 and "drive feed" in text.stdout

    assert loop.stop() == 0
    log = loop.text()
    assert "Traceback" not in log and error_lines(log) == []
    assert "reconcile (drive): 1 created" in log
    assert not any(secret in log + status.stdout + text.stdout for secret in SECRETS)


def test_a_refused_scope_is_one_error_line_per_poll_and_the_loop_recovers(
    lib: Library, mirror: Mirror, loop_of: Callable[[], Loop]
) -> None:
    mirror.write_ini(scopes="drive", feed="activity")  # rclone's default: Google refuses activity:query
    loop = loop_of()
    wait_for("the first walk's link", linked(lib, "Shows/S1/e1.mkv"), loop.proc)
    wait_for("three refused polls", runs_at_least(lib, "drive", 3), loop.proc)
    assert loop.proc.poll() is None

    refused = mirror.google.calls("activity.query")
    assert refused >= 3
    runs, failures = job_row(lib, "drive") or (0, 0)
    errors = error_lines(loop.text())  # read after the count: a poll may be logging now
    assert failures == runs and runs >= 3
    assert failures <= len(errors) <= failures + 1, errors
    for line in errors:
        # One line per poll: the missing scope and both fixes, nothing else.
        assert "drive feed: " in line, line
        assert "drive.activity" in line and "graylink drive auth" in line and "rclone config reconnect" in line
    assert "Traceback" not in loop.text()
    status = json.loads(lib.run("status", "--json").stdout)
    assert "drive.activity" in status["drive"]["last_result"]
    assert status["drive"]["cursor"] is None  # nothing was read: the feed has not started

    # The user follows the hint (rclone reconnect with the activity scope):
    # the next poll re-reads rclone.conf and the feed starts, no restart.
    mirror.write_ini()
    loop.wait_log("drive feed: started")
    mirror.file("Shows/S1/e2.mkv")
    wait_for("the new episode linked once the scope is granted", linked(lib, "Shows/S1/e2.mkv"), loop.proc)
    assert job_row(lib, "walk") == (1, 0)
    assert loop.stop(signal.SIGTERM) == 0
    assert not any(secret in loop.text() for secret in SECRETS)


def test_status_before_the_first_poll_and_with_the_feed_off(lib: Library, mirror: Mirror) -> None:
    lib.write_ini(scan={"trust_dir_mtime": "yes"})
    assert lib.run("reconcile").returncode == 0
    off = json.loads(lib.run("status", "--json").stdout)
    assert "drive" not in off
    mirror.write_ini()
    on = json.loads(lib.run("status", "--json").stdout)
    assert on["drive"]["last_poll"] is None and on["drive"]["cursor"] is None
    assert on["drive"]["total_marks"] == 0
    assert mirror.google.calls("activity.query") == 0  # status never talks to Google


def test_sighup_to_another_remote_drops_the_cached_credentials(
    lib: Library, mirror: Mirror, loop_of: Callable[[], Loop]
) -> None:
    mirror.write_ini()
    loop = loop_of()
    loop.wait_log("drive feed: started")
    # The user moves the feed to a service-account remote and reloads.
    key = make_key()
    mirror.google.add_service_account(EMAIL, KEY_ID, key.public_pem)
    account = lib.root / "sa.json"
    account.write_text(json.dumps(account_info(key, mirror.google)))
    with mirror.rclone_conf.open("a") as conf:
        conf.write(f"\n[robot]\ntype = drive\nservice_account_file = {account}\nroot_folder_id = {mirror.ids['']}\n")
    lib.ini.write_text(lib.ini.read_text().replace("remote = gdrive:", "remote = robot:"))
    loop.proc.send_signal(signal.SIGHUP)
    loop.wait_log("SIGHUP: config reloaded")
    wait_for("a poll with the service account", lambda: bool(mirror.google.state.jwt_grants), loop.proc)
    mirror.file("Shows/S1/e2.mkv")
    wait_for("the new episode linked through the new remote", linked(lib, "Shows/S1/e2.mkv"), loop.proc)
    assert loop.stop() == 0
    text = loop.text()
    assert error_lines(text) == [] and "Traceback" not in text
    assert not any(fragment in text for fragment in key.fragments())
