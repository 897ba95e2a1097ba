"""The Drive feed with a service account (``service_account_file`` on the rclone remote).

The loopback Google verifies each assertion with the account's public key, as
Google does, and records the scopes it asked for. The private key is a
throwaway made by the test; it must never show in logs, errors or output.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from graylink.config import Config
from graylink.drive.credentials import GRAYLINK_SCOPES, load_credentials
from graylink.drive.feed import CredentialCache, poll_drive
from graylink.drive.remote import read_remote
from graylink.errors import ConfigError
from graylink.store.db import Store
from tests.google_server import MY_DRIVE_ROOT, FakeGoogle
from tests.test_drive import CLIENT_ID, CLIENT_SECRET, SECRETS, make_config, write_rclone_conf

ROOT = Path(__file__).resolve().parents[1]
EMAIL = "graylink-feed@made-up-project.iam.gserviceaccount.com"
KEY_ID = "made-up-key-id-0001"


@dataclass(frozen=True)
class Key:
    private_pem: str
    public_pem: bytes

    def fragments(self) -> list[str]:
        """Pieces of the private key that would betray it in any output."""
        body = [line for line in self.private_pem.splitlines() if line and not line.startswith("-----")]
        return [line[:24] for line in body]


def make_key() -> Key:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Key(pem, public)


@pytest.fixture(scope="module")
def key() -> Key:
    return make_key()


def account_info(key: Key, google: FakeGoogle, **override: Any) -> dict[str, Any]:
    """A service account JSON key as the Cloud console hands it out."""
    info: dict[str, Any] = {
        "type": "service_account",
        "project_id": "made-up-project",
        "private_key_id": KEY_ID,
        "private_key": key.private_pem,
        "client_email": EMAIL,
        "client_id": "100000000000000000001",
        "auth_uri": google.url + "/auth",
        "token_uri": google.url + "/token",
    }
    info.update(override)
    return {k: v for k, v in info.items() if v is not None}


class Setup:
    def __init__(self, tmp_path: Path, google: FakeGoogle, key: Key) -> None:
        self.tmp_path = tmp_path
        self.google = google
        self.key = key
        self.root = google.add("Media", MY_DRIVE_ROOT, folder=True, record=False)
        self.shows = google.add("Shows", self.root, folder=True, record=False)
        self.account_file = tmp_path / "sa.json"
        self.conf = tmp_path / "rclone.conf"
        google.add_service_account(EMAIL, KEY_ID, key.public_pem)

    def write_account(self, text: str | None = None, **override: Any) -> None:
        if text is None:
            text = json.dumps(account_info(self.key, self.google, **override), indent=2)
        self.account_file.write_text(text)

    def write_conf(self, extra: str = "") -> None:
        self.conf.write_text(
            "[gdrive]\n"
            "type = drive\n"
            "scope = drive\n"
            f"service_account_file = {self.account_file}\n"
            f"root_folder_id = {self.root}\n" + extra
        )

    def config(self) -> Config:
        return make_config(self.tmp_path, self.google)

    def ini(self) -> Path:
        """The same setup as a config file, for graylink as a process."""
        (self.tmp_path / "links").mkdir(exist_ok=True)
        config = self.config()
        lines = [
            "[paths]",
            f"source = {config.paths.source}",
            f"target = {config.paths.target}",
            f"database = {config.paths.database}",
            "[drive]",
            "enabled = yes",
            f"rclone_config = {self.conf}",
            "remote = gdrive:",
            f"api_endpoint = {self.google.url}",
            f"token_uri = {self.google.url}/token",
            f"token_file = {self.tmp_path / 'drive-token.json'}",
        ]
        path = self.tmp_path / "graylink.ini"
        path.write_text("\n".join(lines) + "\n")
        return path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "graylink", "-c", str(self.ini()), *args],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=120,
        )

    def leaks(self, text: str) -> list[str]:
        """Secrets found in text: key material, access tokens, assertions."""
        found = [f for f in self.key.fragments() if f in text]
        found += [t for t in self.google.state.access_tokens if t in text]
        found += [s for s in SECRETS if s in text]
        if "eyJ" in text:  # the start of any JWT (a signed assertion)
            found.append("a JWT")
        return found


@pytest.fixture
def setup(tmp_path: Path, key: Key) -> Iterator[Setup]:
    with FakeGoogle() as google:
        google.add_client(CLIENT_ID, CLIENT_SECRET)
        s = Setup(tmp_path, google, key)
        s.write_account()
        s.write_conf()
        yield s


def test_a_poll_with_the_service_account_asks_for_the_activity_scope(setup: Setup, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    config = setup.config()
    cache = CredentialCache()
    with Store(config.paths.database) as store:
        first = poll_drive(config, store, cache)
        assert first.error is None, first.error
        assert store.get_meta("drive.cursor_ms") is not None
        time.sleep(0.005)
        setup.google.add("e1.mkv", setup.shows)
        second = poll_drive(config, store, cache)
        assert second.error is None, second.error
        assert (second.activities, second.marks) == (1, 1)
        assert [(m.path, m.recursive) for m in store.pending_marks()] == [(b"Shows", False)]
    assert cache.credentials is not None and cache.credentials.source == "service_account"
    grants = setup.google.state.jwt_grants
    assert len(grants) == 1, "the access token is kept in memory between polls"
    assert grants[0].email == EMAIL and grants[0].subject == ""
    assert grants[0].scopes == frozenset(GRAYLINK_SCOPES)
    assert "https://www.googleapis.com/auth/drive.activity.readonly" in grants[0].scopes
    assert setup.leaks(caplog.text) == []


def test_the_service_account_wins_over_an_rclone_token_without_the_activity_scope(setup: Setup) -> None:
    # What rclone writes by default: its token only has 'drive', which Google refuses for the feed.
    write_rclone_conf(setup.conf, setup.google, scopes="drive", root_folder_id=setup.root)
    setup.conf.write_text(setup.conf.read_text() + f"service_account_file = {setup.account_file}\n")
    config = setup.config()
    assert load_credentials(config.drive, read_remote(config.drive)).source == "service_account"
    with Store(config.paths.database) as store:
        assert poll_drive(config, store).error is None
    assert setup.google.state.jwt_grants


def test_impersonation_asks_for_the_user_as_subject(setup: Setup) -> None:
    setup.write_conf("impersonate = someone@example.com\n")
    config = setup.config()
    with Store(config.paths.database) as store:
        assert poll_drive(config, store).error is None
    assert [g.subject for g in setup.google.state.jwt_grants] == ["someone@example.com"]


def test_inline_service_account_credentials(setup: Setup) -> None:
    inline = json.dumps(account_info(setup.key, setup.google))
    setup.conf.write_text(
        f"[gdrive]\ntype = drive\nservice_account_credentials = {inline}\nroot_folder_id = {setup.root}\n"
    )
    config = setup.config()
    with Store(config.paths.database) as store:
        assert poll_drive(config, store).error is None
    assert len(setup.google.state.jwt_grants) == 1


CORRUPT: dict[str, tuple[str | None, dict[str, Any], str]] = {
    # name: (file text, or None for a JSON key with these fields overridden; message expected)
    "not json": ("{ this is not json", {}, "is not valid JSON"),
    "json list": ('["service_account"]', {}, "not a JSON object"),
    "truncated key": (None, {"private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"}, ""),
    "garbage key": (None, {"private_key": "not a key"}, ""),
    "no key": (None, {"private_key": None}, ""),
    "no email": (None, {"client_email": None}, ""),
    "oauth client file": ('{"installed": {"client_id": "x", "client_secret": "y"}}', {}, "not a service account"),
    "user token": (None, {"type": "authorized_user"}, "not a service account"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_a_corrupt_service_account_file_is_one_clear_config_error(setup: Setup, case: str) -> None:
    text, override, expected = CORRUPT[case]
    if text is None:
        setup.write_account(**override)
    else:
        setup.write_account(text)
    config = setup.config()
    with Store(config.paths.database) as store, pytest.raises(ConfigError) as caught:
        poll_drive(config, store)
    message = str(caught.value)
    assert "\n" not in message
    assert str(setup.account_file) in message
    assert expected in message
    assert setup.leaks(message) == []
    assert setup.google.calls("token") == 0


def test_a_missing_service_account_file_is_a_config_error(setup: Setup) -> None:
    setup.account_file.unlink()
    config = setup.config()
    with Store(config.paths.database) as store, pytest.raises(ConfigError, match="cannot read service_account_file"):
        poll_drive(config, store)


@pytest.mark.parametrize("case", ["garbage key", "not json"])
def test_a_corrupt_service_account_file_exits_2_through_the_cli(setup: Setup, case: str) -> None:
    text, override, _ = CORRUPT[case]
    if text is None:
        setup.write_account(**override)
    else:
        setup.write_account(text)
    proc = setup.run("reconcile")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("graylink: [drive] remote: "), proc.stderr
    assert str(setup.account_file) in lines[0]
    assert "Traceback" not in proc.stderr
    assert setup.leaks(proc.stdout + proc.stderr) == []


def test_a_refused_assertion_is_a_runtime_error_that_names_the_service_account(setup: Setup) -> None:
    # The key was deleted in the Cloud console: Google refuses the signature.
    setup.google.add_service_account(EMAIL, KEY_ID, make_key().public_pem)
    config = setup.config()
    with Store(config.paths.database) as store:
        result = poll_drive(config, store)
        assert store.get_meta("drive.cursor_ms") is None
    assert result.error is not None
    assert "invalid_grant" in result.error and "service account" in result.error
    assert "graylink drive auth" not in result.error  # no use to a service account
    assert setup.leaks(result.error) == []
    doctor = setup.run("doctor")
    assert doctor.returncode == 1
    assert "the service account's token request failed (invalid_grant)" in doctor.stdout + doctor.stderr
    assert "Traceback" not in doctor.stderr
    assert setup.leaks(doctor.stdout + doctor.stderr) == []


def test_no_key_material_in_verbose_output_of_reconcile_and_doctor(setup: Setup) -> None:
    (setup.tmp_path / "src" / "Shows").mkdir(parents=True)
    (setup.tmp_path / "src" / "Shows" / "e1.mkv").write_bytes(b"v")
    done = setup.run("-v", "reconcile")
    assert done.returncode == 0, done.stderr
    assert "drive feed: started" in done.stderr
    doctor = setup.run("-v", "doctor")
    assert "token from the service account is valid" in doctor.stdout + doctor.stderr
    assert "the Drive Activity API answers" in doctor.stdout + doctor.stderr
    assert setup.google.state.jwt_grants, "the service account was really used"
    for proc in (done, doctor):
        assert setup.leaks(proc.stdout + proc.stderr) == []
