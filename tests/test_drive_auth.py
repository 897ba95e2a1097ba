"""``graylink drive auth`` against the loopback Google, run as a real process; and ``doctor_checks``."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from graylink.drive.checks import doctor_checks
from graylink.drive.feed import poll_drive
from graylink.store.db import Store
from tests.google_server import FakeGoogle
from tests.test_drive import CLIENT_ID, CLIENT_SECRET, REFRESH, Drive, make_config, write_rclone_conf

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle() as server:
        server.add_client(CLIENT_ID, CLIENT_SECRET)
        yield server


def write_ini(tmp_path: Path, google: FakeGoogle, root_id: str) -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    ini = tmp_path / "graylink.ini"
    ini.write_text(
        f"[paths]\nsource = {tmp_path / 'src'}\ntarget = {tmp_path / 'links'}\ndatabase = {tmp_path / 'g.db'}\n"
        f"[drive]\nenabled = yes\nrclone_config = {tmp_path / 'rclone.conf'}\nremote = gdrive:\n"
        f"folder_id = {root_id}\napi_endpoint = {google.url}\ntoken_uri = {google.url}/token\n"
        f"auth_uri = {google.url}/auth\ntoken_file = {tmp_path / 'tokens' / 'drive.json'}\n"
    )
    return ini


def start_auth(ini: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "graylink", "-c", str(ini), "drive", "auth", "--timeout", "60s"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("http"):
            return proc, line.strip()
    proc.kill()
    raise AssertionError("no consent URL printed: " + (proc.stderr.read() if proc.stderr else ""))


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out + err


@pytest.mark.parametrize("answer", ["browser", "pasted"])
def test_drive_auth_stores_a_private_token_that_the_feed_uses(tmp_path, google, answer):
    drive = Drive(google)
    # rclone's own token has only the plain drive scope: the feed needs graylink's token.
    write_rclone_conf(tmp_path / "rclone.conf", google, scopes="drive")
    ini = write_ini(tmp_path, google, drive.root)
    proc, url = start_auth(ini)
    assert "code_challenge=" in url and "drive.activity.readonly" in url and CLIENT_SECRET not in url
    if answer == "browser":
        page = requests.get(url, timeout=30)  # Google redirects the browser to graylink's loopback port
        assert page.status_code == 200 and "graylink" in page.text
    else:
        redirect = requests.get(url, allow_redirects=False, timeout=30).headers["Location"]
        assert proc.stdin is not None
        proc.stdin.write(redirect + "\n")  # the address bar of a browser on another machine
        proc.stdin.flush()
    code, output = finish(proc)
    assert code == 0, output
    token = tmp_path / "tokens" / "drive.json"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert not any(s in output for s in (CLIENT_SECRET, REFRESH, "fake-refresh", "fake-access"))
    config = make_config(tmp_path, google, folder_id=drive.root, token_file=str(token))
    with Store(str(tmp_path / "g.db")) as store:
        assert poll_drive(config, store).error is None


def test_drive_auth_refuses_rclones_builtin_client(tmp_path, google):
    drive = Drive(google)
    write_rclone_conf(tmp_path / "rclone.conf", google, client_id="")
    ini = write_ini(tmp_path, google, drive.root)
    proc = subprocess.run(
        [sys.executable, "-m", "graylink", "-c", str(ini), "drive", "auth"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    assert "built-in OAuth client" in proc.stderr and "Traceback" not in proc.stderr


def test_drive_auth_with_a_forged_state_stores_nothing(tmp_path, google):
    drive = Drive(google)
    write_rclone_conf(tmp_path / "rclone.conf", google)
    ini = write_ini(tmp_path, google, drive.root)
    proc, url = start_auth(ini)
    redirect = requests.get(url, allow_redirects=False, timeout=30).headers["Location"]
    forged = redirect.replace("state=", "state=forged")
    assert proc.stdin is not None
    proc.stdin.write(forged + "\n")
    proc.stdin.flush()
    code, output = finish(proc)
    assert code == 1 and "state mismatch" in output
    assert not (tmp_path / "tokens" / "drive.json").exists()


def test_doctor_checks_pass_with_the_activity_scope(tmp_path, google):
    drive = Drive(google)
    write_rclone_conf(tmp_path / "rclone.conf", google, root_folder_id=drive.root, expires_in=-60)
    checks = doctor_checks(make_config(tmp_path, google))
    assert [(c.name, c.ok) for c in checks] == [
        ("drive remote", True),
        ("drive credentials", True),
        ("drive root folder", True),
        ("drive feed", True),
    ]
    assert "Drive Activity API" in checks[-1].message and "drive.activity scope" in checks[-1].message
    assert google.calls("token") == 1  # the refresh was really tried


def test_doctor_checks_name_the_missing_scope_and_hide_secrets(tmp_path, google):
    drive = Drive(google)
    write_rclone_conf(tmp_path / "rclone.conf", google, scopes="drive", root_folder_id=drive.root)
    checks = doctor_checks(make_config(tmp_path, google, feed="activity"))
    scope = checks[-1]
    assert scope.name == "drive feed" and not scope.ok
    assert "drive.activity" in scope.message and scope.hint
    text = repr(checks)
    assert CLIENT_SECRET not in text and REFRESH not in text and "fake-access" not in text


def test_doctor_checks_report_a_revoked_token(tmp_path, google):
    drive = Drive(google)
    write_rclone_conf(tmp_path / "rclone.conf", google, root_folder_id=drive.root, expires_in=-60)
    google.state.refresh_tokens.clear()
    checks = doctor_checks(make_config(tmp_path, google))
    assert [(c.name, c.ok) for c in checks] == [("drive remote", True), ("drive credentials", False)]
    assert "invalid_grant" in checks[-1].message


def _paste(proc: subprocess.Popen[str], answer: str) -> tuple[int, str]:
    assert proc.stdin is not None
    proc.stdin.write(answer + "\n")
    proc.stdin.flush()
    return finish(proc)


def test_drive_auth_with_the_activity_scope_unticked_stores_nothing(tmp_path, google):
    drive = Drive(google)
    write_rclone_conf(tmp_path / "rclone.conf", google)
    proc, url = start_auth(write_ini(tmp_path, google, drive.root))
    redirect = requests.get(url, allow_redirects=False, timeout=30).headers["Location"]
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(redirect).query))["code"]
    # What Google's granular consent does when the user unticks a box: the grant has fewer scopes.
    google.state.codes[code]["scopes"] = {"https://www.googleapis.com/auth/drive.metadata.readonly"}
    status, output = _paste(proc, redirect)
    assert status == 1 and "activity permission was not granted" in output, output
    assert not (tmp_path / "tokens" / "drive.json").exists()


def test_drive_auth_refused_on_the_consent_page_says_so(tmp_path, google):
    drive = Drive(google)
    write_rclone_conf(tmp_path / "rclone.conf", google)
    proc, url = start_auth(write_ini(tmp_path, google, drive.root))
    state = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))["state"]
    status, output = _paste(proc, f"http://127.0.0.1:1/?error=access_denied&state={state}")
    assert status == 1 and "access_denied" in output and "Traceback" not in output, output
    assert not (tmp_path / "tokens" / "drive.json").exists()
