"""``graylink drive auth``: OAuth consent for the Drive Activity scope, headless-friendly.

It uses the OAuth client of the user's rclone remote (or ``[drive] client_id`` /
``client_secret``), asks for ``drive.activity.readonly`` + ``drive.metadata.readonly``
with PKCE, and takes the answer either on a loopback port (a browser on this
machine, or one reached through ``ssh -L``) or as the redirected URL pasted at
the prompt (a browser anywhere else: the page fails to load, the address bar
still holds the code). The token is stored as google-auth's authorized-user
JSON, mode 0600, in ``[drive] token_file``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import os
import queue
import secrets
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import IO, Any

import requests

from graylink.config import Config
from graylink.drive.credentials import (
    ACTIVITY_SCOPES,
    GOOGLE_AUTH_URI,
    GRAYLINK_SCOPES,
    read_remote,
    token_uri,
)
from graylink.errors import ConfigError, GraylinkError

log = logging.getLogger(__name__)

HTTP_TIMEOUT = 30.0
_PAGE = (
    b"<!doctype html><meta charset=utf-8><title>graylink</title>"
    b"<p>graylink received the answer from Google. You can close this tab.</p>"
)


@dataclass(frozen=True)
class OAuthClient:
    client_id: str
    client_secret: str

    def __repr__(self) -> str:
        return f"OAuthClient(client_id={self.client_id!r})"


def oauth_client(config: Config) -> OAuthClient:
    """``[drive] client_id``/``client_secret``, else the rclone remote's own client."""
    drive = config.drive
    if drive.client_id:
        if not drive.client_secret:
            raise ConfigError("[drive] client_secret is not set (it belongs with [drive] client_id)")
        return OAuthClient(drive.client_id, drive.client_secret)
    if not drive.remote:
        raise ConfigError("set [drive] remote (the rclone remote) or [drive] client_id and client_secret")
    remote = read_remote(drive)
    if not remote.client_id or not remote.client_secret:
        raise ConfigError(
            f"rclone remote [{remote.name}] uses rclone's built-in OAuth client, which graylink cannot use; "
            "create your own OAuth client (see docs/google-drive.md) and set client_id/client_secret on the "
            "remote or in [drive]"
        )
    return OAuthClient(remote.client_id, remote.client_secret)


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    return verifier, challenge


def consent_url(auth_uri: str, client: OAuthClient, redirect_uri: str, state: str, challenge: str) -> str:
    params = {
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": " ".join(GRAYLINK_SCOPES),
        "access_type": "offline",  # a refresh token, so graylink keeps working
        "prompt": "consent",
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{auth_uri}?{urllib.parse.urlencode(params)}"


def parse_answer(text: str) -> dict[str, str] | None:
    """The query of a redirected URL (or the bare query) pasted by the user; None if it is not one."""
    text = text.strip()
    if not text:
        return None
    query = urllib.parse.urlsplit(text).query if "://" in text else text.lstrip("?")
    params = dict(urllib.parse.parse_qsl(query))
    return params if ("code" in params or "error" in params) else None


class _Answers:
    """The first answer from either the loopback port or the prompt."""

    def __init__(self) -> None:
        self.queue: queue.Queue[dict[str, str]] = queue.Queue()


def _handler(answers: _Answers) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # the URL holds the code: never log it
            pass

        def do_GET(self) -> None:
            params = parse_answer(urllib.parse.urlsplit(self.path).query)
            if params is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(_PAGE)))
            self.end_headers()
            self.wfile.write(_PAGE)
            answers.queue.put(params)

    return Handler


def _read_prompt(stream: IO[str], answers: _Answers) -> None:
    for line in stream:
        params = parse_answer(line)
        if params is not None:
            answers.queue.put(params)
            return


def exchange_code(config: Config, client: OAuthClient, code: str, redirect_uri: str, verifier: str) -> dict[str, Any]:
    try:
        response = requests.post(
            token_uri(config.drive),
            data={
                "grant_type": "authorization_code",
                "code": code,
                "client_id": client.client_id,
                "client_secret": client.client_secret,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            },
            timeout=HTTP_TIMEOUT,
        )
    except requests.RequestException as exc:
        raise GraylinkError(f"cannot reach Google's token endpoint: {exc.__class__.__name__}") from None
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    if response.status_code != 200 or not isinstance(payload, dict) or "access_token" not in payload:
        error = payload.get("error", f"HTTP {response.status_code}") if isinstance(payload, dict) else "bad answer"
        raise GraylinkError(f"Google refused the authorization code ({error}); run 'graylink drive auth' again")
    return payload


def write_token(path: str, info: dict[str, Any]) -> None:
    """Write the token atomically, readable by the owner only."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, mode=0o700, exist_ok=True)
    temp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(info, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def run_auth(
    config: Config,
    *,
    port: int = 0,
    timeout: float = 600.0,
    echo: Callable[[str], None] = print,
    prompt: IO[str] | None = None,
) -> str:
    """Run the consent flow; returns the path of the stored token."""
    client = oauth_client(config)
    if not config.drive.token_file:
        raise ConfigError("[drive] token_file is empty: name the file where graylink keeps its Drive token")
    verifier, challenge = _pkce()
    state = secrets.token_urlsafe(24)
    answers = _Answers()
    try:
        server = HTTPServer(("127.0.0.1", port), _handler(answers))
    except OSError as exc:
        raise ConfigError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/"
    url = consent_url(config.drive.auth_uri or GOOGLE_AUTH_URI, client, redirect_uri, state, challenge)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    if prompt is not None:
        threading.Thread(target=_read_prompt, args=(prompt, answers), daemon=True).start()
    echo("Open this URL in a browser and allow graylink to read the Drive activity:")
    echo("")
    echo(url)
    echo("")
    echo(f"Waiting for Google's answer on {redirect_uri} ...")
    echo("If the browser runs on another machine, its page will not load: paste the address it shows here.")
    try:
        params = answers.queue.get(timeout=timeout)
    except queue.Empty:
        raise GraylinkError("no answer from the browser in time; run 'graylink drive auth' again") from None
    finally:
        server.shutdown()
        server.server_close()
    if params.get("error"):
        raise GraylinkError(f"Google did not grant access ({params['error']})")
    if not secrets.compare_digest(params.get("state", ""), state):
        raise GraylinkError("the answer does not belong to this request (state mismatch); run 'graylink drive auth'")
    payload = exchange_code(config, client, params.get("code", ""), redirect_uri, verifier)
    granted = set(str(payload.get("scope", " ".join(GRAYLINK_SCOPES))).split())
    if not granted & ACTIVITY_SCOPES:
        raise GraylinkError(
            "the Drive activity permission was not granted (it was unticked on the consent page); "
            "run 'graylink drive auth' again and allow it"
        )
    if not payload.get("refresh_token"):
        raise GraylinkError("Google sent no refresh token; remove graylink's access in your Google account and retry")
    expiry = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=int(payload.get("expires_in", 3600)))
    info = {
        "type": "authorized_user",
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "refresh_token": payload["refresh_token"],
        "token": payload["access_token"],
        "token_uri": token_uri(config.drive),
        "scopes": sorted(granted),
        "expiry": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    write_token(config.drive.token_file, info)
    log.info("drive token stored in %s", config.drive.token_file)
    return config.drive.token_file
