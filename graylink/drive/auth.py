"""``graylink drive auth``: OAuth consent for the Drive Activity scope, headless-friendly.

It uses the OAuth client of the user's rclone remote (or ``[drive] client_id`` /
``client_secret``), asks for ``drive.activity.readonly`` + ``drive.metadata.readonly``
with PKCE (google-auth-oauthlib's ``Flow``: the verifier, the state and the code
exchange are the library's), and takes the answer either on a loopback port (a browser on this
machine, or one reached through ``ssh -L``) or as the redirected URL pasted at
the prompt (a browser anywhere else: the page fails to load, the address bar
still holds the code). The token is stored as google-auth's authorized-user
JSON, mode 0600, in ``[drive] token_file``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import queue
import secrets
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import IO, Any

import requests

from graylink.config import Config
from graylink.drive.credentials import GOOGLE_AUTH_URI, GRAYLINK_SCOPES, token_uri
from graylink.drive.remote import ACTIVITY_SCOPES, read_remote
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


def parse_answer(text: str) -> str | None:
    """A redirected URL (or its bare query) pasted by the user, as a URL; None if it is not one."""
    text = text.strip()
    if not text:
        return None
    query = urllib.parse.urlsplit(text).query if "://" in text else text.lstrip("?")
    params = dict(urllib.parse.parse_qsl(query))
    return f"{_ANSWER_BASE}?{query}" if ("code" in params or "error" in params) else None


# oauthlib insists on https for the answer; where it arrived does not matter, only its query.
_ANSWER_BASE = "https://127.0.0.1/"


class _Answers:
    """The first answer from either the loopback port or the prompt."""

    def __init__(self) -> None:
        self.queue: queue.Queue[str] = queue.Queue()


def _handler(answers: _Answers) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # the URL holds the code: never log it
            pass

        def do_GET(self) -> None:
            answer = parse_answer(urllib.parse.urlsplit(self.path).query)
            if answer is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(_PAGE)))
            self.end_headers()
            self.wfile.write(_PAGE)
            answers.queue.put(answer)

    return Handler


def _read_prompt(stream: IO[str], answers: _Answers) -> None:
    for line in stream:
        answer = parse_answer(line)
        if answer is not None:
            answers.queue.put(answer)
            return


def _flow(config: Config, client: OAuthClient, redirect_uri: str) -> Any:
    """google-auth-oauthlib's Flow for graylink's scopes, with PKCE (S256) and a random state."""
    from google_auth_oauthlib.flow import Flow

    client_config = {
        "installed": {
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "auth_uri": config.drive.auth_uri or GOOGLE_AUTH_URI,
            "token_uri": token_uri(config.drive),
            "redirect_uris": [redirect_uri],
        }
    }
    return Flow.from_client_config(client_config, scopes=list(GRAYLINK_SCOPES), redirect_uri=redirect_uri)


@contextlib.contextmanager
def _loopback_transport(url: str) -> Iterator[None]:
    """oauthlib refuses plain http; a token endpoint on this machine (tests, a local proxy) is allowed it."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if not url.startswith("http://") or host not in ("127.0.0.1", "localhost", "::1"):
        yield
        return
    before = os.environ.get("OAUTHLIB_INSECURE_TRANSPORT")
    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("OAUTHLIB_INSECURE_TRANSPORT", None)
        else:
            os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = before


def exchange(config: Config, flow: Any, answer: str) -> dict[str, Any]:
    """The answer URL → Google's token reply (state checked, code and PKCE verifier sent by the Flow)."""
    from oauthlib.oauth2.rfc6749.errors import MismatchingStateError, OAuth2Error

    try:
        with _loopback_transport(token_uri(config.drive)):
            reply = flow.fetch_token(authorization_response=answer)
    except MismatchingStateError:
        raise GraylinkError(
            "the answer does not belong to this request (state mismatch); run 'graylink drive auth'"
        ) from None
    except Warning as changed:  # oauthlib's way of saying Google granted other scopes than asked
        reply = dict(getattr(changed, "token", {}) or {})
    except OAuth2Error as exc:
        where = "Google did not grant access" if "error=" in answer else "Google refused the authorization code"
        raise GraylinkError(f"{where} ({exc.error}); run 'graylink drive auth' again") from None
    except requests.RequestException as exc:
        raise GraylinkError(f"cannot reach Google's token endpoint: {exc.__class__.__name__}") from None
    if not isinstance(reply, dict) or "access_token" not in reply:
        raise GraylinkError("Google's token endpoint sent no access token; run 'graylink drive auth' again")
    return dict(reply)


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
    answers = _Answers()
    try:
        server = HTTPServer(("127.0.0.1", port), _handler(answers))
    except OSError as exc:
        raise ConfigError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/"
    flow = _flow(config, client, redirect_uri)
    # offline: a refresh token, so graylink keeps working; consent: Google sends it again on a re-run.
    with _loopback_transport(config.drive.auth_uri or GOOGLE_AUTH_URI):
        url, _state = flow.authorization_url(access_type="offline", prompt="consent")
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
        answer = answers.queue.get(timeout=timeout)
    except queue.Empty:
        raise GraylinkError("no answer from the browser in time; run 'graylink drive auth' again") from None
    finally:
        server.shutdown()
        server.server_close()
    payload = exchange(config, flow, answer)
    scope = payload.get("scope", list(GRAYLINK_SCOPES))
    granted = set(scope.split() if isinstance(scope, str) else (str(s) for s in scope))
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
