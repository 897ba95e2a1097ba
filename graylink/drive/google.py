"""The Google side of the feed: API clients, bounded calls, the mount's root folder, Google's errors.

Every request goes through :class:`Caller`: it counts the call, bounds the
whole request (token refresh included; a socket timeout alone restarts at
each byte) and the whole poll, backs off on Google's rate limits (honouring
``Retry-After``) within that deadline, answers a stop request at once, and
turns a malformed answer into a :class:`FeedError` of one line.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graylink import story
from graylink.config import DriveConfig
from graylink.drive.credentials import MISSING_SCOPE_HINT, DriveAuthError, DriveCredentials
from graylink.drive.names import DEFAULT_NAMES, Names
from graylink.drive.remote import Remote

FOLDER_MIME = "application/vnd.google-apps.folder"
SHORTCUT_MIME = "application/vnd.google-apps.shortcut"
REQUEST_TIMEOUT = 20.0  # one whole request, seconds
POLL_DEADLINE = 45.0  # one whole poll, seconds: well under a minute, so no job waits long on the feed
BACKOFF_BASE = 1.0  # first wait after a rate limit or a 5xx without Retry-After, doubled each time
BACKOFF_MAX = 30.0
MAX_TRIES = 5
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"})
_TICK = 0.2  # how often a wait looks at the stop request

StopFn = Callable[[], bool]


class FeedError(Exception):
    """The feed failed in a way Google's errors do not describe (malformed answer, page loop, deadline)."""


class PollStopped(Exception):
    """The stop request came during a poll: what is committed stays, the rest waits for the next poll."""


@dataclass
class Caller:
    """Runs requests with a deadline each, one for the poll, rate-limit backoff, and a count."""

    deadline: float  # time.monotonic() by which the whole poll ends
    should_stop: StopFn | None = None
    calls: int = 0
    waited_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def for_poll(cls, should_stop: StopFn | None = None) -> Caller:
        return cls(time.monotonic() + POLL_DEADLINE, should_stop)

    def execute(self, request: Any, what: str) -> dict[str, Any]:
        """The JSON object Google answered, after backing off where Google asks for it."""
        from googleapiclient.errors import HttpError

        tries = 0
        while True:
            tries += 1
            if story.on():
                story.request(str(getattr(request, "method", "GET")), _without_query(request), what)
            try:
                answer = self.bounded(lambda: request.execute(num_retries=0), what)
            except HttpError as exc:
                wait = retry_wait(exc, tries)
                if wait is None:
                    raise
                if time.monotonic() + wait > self.deadline:
                    raise FeedError(
                        f"Google is limiting or failing requests ({_status_line(exc)} to {what}) beyond this poll's "
                        f"{POLL_DEADLINE:g}s; the next poll resumes from the saved position"
                    ) from None
                self._sleep(wait)
                continue
            if not isinstance(answer, dict):
                raise FeedError(f"the answer to {what} is malformed (not a JSON object)")
            return answer

    def bounded(self, run: Callable[[], Any], what: str) -> Any:
        """``run()`` on a worker thread, given up on after REQUEST_TIMEOUT or at the poll's deadline."""
        self._check_stop()
        budget = min(REQUEST_TIMEOUT, self.deadline - time.monotonic())
        if budget <= 0:
            raise FeedError(f"the poll ran out of its {POLL_DEADLINE:g}s before {what}")
        with self._lock:
            self.calls += 1
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["answer"] = run()
            except BaseException as exc:  # handed to the caller's thread
                box["error"] = exc

        worker = threading.Thread(target=work, name="graylink-google", daemon=True)
        worker.start()
        end = time.monotonic() + budget
        while worker.is_alive():
            left = end - time.monotonic()
            if left <= 0:
                # The worker is abandoned (a daemon thread); the poll's clients are not used again.
                raise FeedError(f"Google did not answer {what} within {budget:.0f}s")
            worker.join(min(_TICK, left))
            self._check_stop()
        if "error" in box:
            raise _malformed(box["error"], what)
        return box["answer"]

    def _check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise PollStopped()

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self._check_stop()
            time.sleep(min(_TICK, left))
        self.waited_s += seconds


def _without_query(request: Any) -> str:
    """The address a Google request goes to, without its query (page tokens, fields: noise in a log line)."""
    return str(getattr(request, "uri", "")).split("?", 1)[0]


def _malformed(exc: BaseException, what: str) -> BaseException:
    """A decoding failure (ValueError / TypeError / …) of an answer → FeedError; the rest unchanged."""
    from google.auth.exceptions import GoogleAuthError
    from googleapiclient.errors import Error as ApiError

    if isinstance(exc, ApiError | GoogleAuthError | OSError) or not isinstance(
        exc, ValueError | TypeError | KeyError | AttributeError | IndexError
    ):
        return exc
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(str(tb.tb_frame.f_globals.get("__name__", "")))
        tb = tb.tb_next
    whose = (
        "the token endpoint's answer" if any(f.startswith("google.oauth2") for f in frames) else f"the answer to {what}"
    )
    return FeedError(f"{whose} is malformed ({exc.__class__.__name__}: {str(exc)[:120]})")


def _reasons(exc: Any) -> tuple[set[str], str]:
    try:
        payload = json.loads(exc.content.decode("utf-8"))
        error = payload.get("error", {})
        message = str(error.get("message", ""))
        reasons = {str(e.get("reason", "")) for e in error.get("errors", ())}
        reasons |= {str(d.get("reason", "")) for d in error.get("details", ()) if isinstance(d, dict)}
    except (ValueError, AttributeError, TypeError):
        return set(), ""
    return reasons, message


def _status_line(exc: Any) -> str:
    reasons, _ = _reasons(exc)
    named = sorted(reasons & _RATE_REASONS)
    return f"HTTP {exc.resp.status}" + (f" {named[0]}" if named else "")


def retry_wait(exc: Any, tries: int) -> float | None:
    """Seconds to wait before trying again, or None when this error is not worth another try."""
    status = int(exc.resp.status)
    reasons, _ = _reasons(exc)
    if not (status in _RETRY_STATUSES or (status == 403 and reasons & _RATE_REASONS)) or tries >= MAX_TRIES:
        return None
    header = exc.resp.get("retry-after") if hasattr(exc.resp, "get") else None
    if header:
        try:
            return max(0.0, float(str(header).strip()))
        except ValueError:
            pass  # an HTTP date: rare from Google; the backoff below is as good
    return float(min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (tries - 1)))


@dataclass
class DriveClients:
    activity: Any
    drive: Any
    credentials: DriveCredentials
    caller: Caller

    def call(self, request: Any, what: str) -> dict[str, Any]:
        return self.caller.execute(request, what)


def build_clients(config: DriveConfig, creds: DriveCredentials, caller: Caller | None = None) -> DriveClients:
    import google_auth_httplib2
    import httplib2
    from googleapiclient.discovery import build

    # googleapiclient warns of every refused request itself; the feed reports it once, in its own words.
    logging.getLogger("googleapiclient.http").setLevel(logging.ERROR)

    def authorized() -> Any:
        # The per-read socket timeout only lets an abandoned worker end: the whole
        # request's deadline (Caller.bounded) is shorter and answers first.
        http = httplib2.Http(timeout=2 * REQUEST_TIMEOUT)
        return google_auth_httplib2.AuthorizedHttp(creds.credentials, http=http)

    root = config.api_endpoint.rstrip("/") + "/" if config.api_endpoint else ""
    activity = build(
        "driveactivity",
        "v2",
        http=authorized(),
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": root} if root else None,
    )
    drive = build(
        "drive",
        "v3",
        http=authorized(),
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": root + "drive/v3/"} if root else None,
    )
    return DriveClients(activity, drive, creds, caller or Caller.for_poll())


def ensure_fresh(clients: DriveClients) -> None:
    """Refresh now when the token is expired (or absent), so a refused refresh shows up here."""
    creds = clients.credentials
    if creds.credentials.valid:
        return
    if not creds.refreshable:
        check = getattr(creds.credentials, "check", None)  # a token borrowed from rclone: re-read it
        if check is not None:
            check()
        return
    import google_auth_httplib2
    import httplib2

    request = google_auth_httplib2.Request(httplib2.Http(timeout=REQUEST_TIMEOUT))
    clients.caller.bounded(lambda: creds.credentials.refresh(request), "the token refresh")


# ---------------------------------------------------------------- the root


def _query_quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def root_spec(config: DriveConfig, remote: Remote) -> tuple[str, str]:
    """(folder to start from, path below it) for the mount's root folder."""
    if config.folder_id:
        return config.folder_id, ""
    return remote.root_folder_id or remote.team_drive or "root", remote.path


def resolve_root(clients: DriveClients, remote: Remote, start: str, path: str, names: Names = DEFAULT_NAMES) -> str:
    """The real ID of the mount's root folder ("root" and paths resolved by name)."""
    from googleapiclient.errors import HttpError

    drive = clients.drive
    try:
        answer = clients.call(drive.files().get(fileId=start, fields="id", supportsAllDrives=True), "files.get")
    except HttpError as exc:
        if exc.resp.status == 404:
            raise DriveAuthError(f"the Drive root folder {start!r} does not exist or is not visible") from None
        raise
    current = _text(answer, "id", "files.get")
    for shown in (p for p in path.split("/") if p):
        name = names.stored(shown)  # the path is written as the mount shows it; rclone searches this
        # As rclone's FindLeaf (backend/drive/drive.go list, directoriesOnly): folders and shortcuts,
        # a folder shortcut followed to its target unless skip_shortcuts; "=" ignores case, rclone does not.
        query = (
            f"'{_query_quote(current)}' in parents and name = '{_query_quote(name)}' "
            f"and (mimeType = '{FOLDER_MIME}' or mimeType = '{SHORTCUT_MIME}') and trashed = false"
        )
        extra: dict[str, Any] = {"supportsAllDrives": True, "includeItemsFromAllDrives": True}
        if remote.team_drive:
            extra.update(corpora="drive", driveId=remote.team_drive)
        fields = "files(id,name,mimeType,shortcutDetails)"
        request = drive.files().list(q=query, fields=fields, pageSize=100, **extra)
        files = clients.call(request, "files.list").get("files") or []
        if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
            raise FeedError("the answer to files.list is malformed (files is not a list of objects)")
        leads = (_folder_of(f, remote.skip_shortcuts) for f in files if f.get("name") == name)
        found = next((f for f in leads if f), "")
        if not found:
            raise DriveAuthError(f"folder {shown!r} of the remote path {path!r} was not found on the Drive")
        current = found
    return current


def _folder_of(item: dict[str, Any], skip_shortcuts: bool) -> str:
    """The folder ID a listed folder or folder shortcut leads to; "" for what rclone would not follow."""
    if item.get("mimeType") != SHORTCUT_MIME:
        return _text(item, "id", "files.list")
    details = item.get("shortcutDetails")
    if skip_shortcuts or not isinstance(details, dict) or details.get("targetMimeType") != FOLDER_MIME:
        return ""
    return str(details.get("targetId") or "")


def _text(answer: dict[str, Any], key: str, what: str) -> str:
    value = answer.get(key)
    if not isinstance(value, str) or not value:
        raise FeedError(f"the answer to {what} is malformed ({key} is missing or not a string)")
    return value


# ---------------------------------------------------------------- errors


def http_error_message(exc: Any) -> tuple[str, bool]:
    """An HttpError → (one line, whether it is a missing scope)."""
    status = exc.resp.status
    reasons, message = _reasons(exc)
    scope = status == 403 and (
        "insufficientPermissions" in reasons
        or "ACCESS_TOKEN_SCOPE_INSUFFICIENT" in reasons
        or "insufficient authentication scopes" in message.lower()
    )
    if scope:
        return MISSING_SCOPE_HINT, True
    if status == 403 and "accessNotConfigured" in reasons | {"SERVICE_DISABLED"}:
        return (
            "the Drive Activity API is not enabled for the OAuth client's Google Cloud project; "
            "enable 'Google Drive Activity API' in the Cloud console",
            False,
        )
    return f"Google answered HTTP {status}{': ' + message if message else ''}", False


_REFRESH_FIXES = {
    "token_file": "run 'graylink drive auth' again",
    "rclone": "run 'rclone config reconnect REMOTE:' or 'graylink drive auth'",
    "service_account": (
        "check that the service account and its key still exist and are enabled in the Google Cloud console "
        "(a deleted key is refused), or download a new JSON key"
    ),
}


def refresh_failure(exc: Exception, source: str | None) -> str:
    """One line for a refused token refresh, with the fix that fits where the credentials came from."""
    # google-auth's message starts with the server's error code; the rest may quote its reply.
    reason = str(exc.args[0]) if exc.args else "refused"
    what = "the service account's token request" if source == "service_account" else "refreshing the Drive token"
    fix = _REFRESH_FIXES.get(source or "", "run 'graylink drive auth' or 'rclone config reconnect REMOTE:'")
    return f"{what} failed ({reason.split(':')[0]}); {fix}"


def runtime_error(exc: Exception, source: str | None = None) -> tuple[str, bool]:
    """A failure talking to Google → (one line, missing scope); anything else is re-raised."""
    from google.auth.exceptions import RefreshError, TransportError
    from googleapiclient.errors import HttpError

    if isinstance(exc, FeedError):
        return str(exc), False
    if isinstance(exc, HttpError):
        return http_error_message(exc)
    if isinstance(exc, RefreshError):
        return refresh_failure(exc, source), False
    if isinstance(exc, TransportError | OSError | socket.timeout):
        return f"cannot reach Google: {exc.__class__.__name__}: {exc}", False
    import httplib2

    if isinstance(exc, httplib2.HttpLib2Error):
        return f"cannot reach Google: {exc.__class__.__name__}: {exc}", False
    raise exc
