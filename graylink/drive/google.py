"""The Google side of the feed: API clients, the mount's root folder, and Google's errors in one line."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any

from graylink.config import DriveConfig
from graylink.drive.credentials import MISSING_SCOPE_HINT, DriveAuthError, DriveCredentials, Remote

FOLDER_MIME = "application/vnd.google-apps.folder"
HTTP_TIMEOUT = 60.0
NUM_RETRIES = 3  # googleapiclient backs off on 429, 5xx, rate-limit 403 and socket errors


@dataclass
class DriveClients:
    activity: Any
    drive: Any
    credentials: DriveCredentials


def build_clients(config: DriveConfig, creds: DriveCredentials) -> DriveClients:
    import google_auth_httplib2
    import httplib2
    from googleapiclient.discovery import build

    def authorized() -> Any:
        return google_auth_httplib2.AuthorizedHttp(creds.credentials, http=httplib2.Http(timeout=HTTP_TIMEOUT))

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
    return DriveClients(activity, drive, creds)


def ensure_fresh(creds: DriveCredentials) -> None:
    """Refresh now when the token is expired (or absent), so a refused refresh shows up here."""
    if creds.credentials.valid or not creds.refreshable:
        return
    import google_auth_httplib2
    import httplib2

    creds.credentials.refresh(google_auth_httplib2.Request(httplib2.Http(timeout=HTTP_TIMEOUT)))


# ---------------------------------------------------------------- the root


def _query_quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def root_spec(config: DriveConfig, remote: Remote) -> tuple[str, str]:
    """(folder to start from, path below it) for the mount's root folder."""
    if config.folder_id:
        return config.folder_id, ""
    return remote.root_folder_id or remote.team_drive or "root", remote.path


def resolve_root(clients: DriveClients, remote: Remote, start: str, path: str) -> str:
    """The real ID of the mount's root folder ("root" and paths resolved by name)."""
    from googleapiclient.errors import HttpError

    drive = clients.drive
    try:
        current = str(
            drive.files().get(fileId=start, fields="id", supportsAllDrives=True).execute(num_retries=NUM_RETRIES)["id"]
        )
    except HttpError as exc:
        if exc.resp.status == 404:
            raise DriveAuthError(f"the Drive root folder {start!r} does not exist or is not visible") from None
        raise
    for name in (p for p in path.split("/") if p):
        query = (
            f"'{_query_quote(current)}' in parents and name = '{_query_quote(name)}' "
            f"and mimeType = '{FOLDER_MIME}' and trashed = false"
        )
        extra: dict[str, Any] = {"supportsAllDrives": True, "includeItemsFromAllDrives": True}
        if remote.team_drive:
            extra.update(corpora="drive", driveId=remote.team_drive)
        found = (
            drive.files().list(q=query, fields="files(id,name)", pageSize=10, **extra).execute(num_retries=NUM_RETRIES)
        )
        files = found.get("files") or []
        if not files:
            raise DriveAuthError(f"folder {name!r} of the remote path {path!r} was not found on the Drive")
        current = str(files[0]["id"])
    return current


# ---------------------------------------------------------------- errors


def http_error_message(exc: Any) -> tuple[str, bool]:
    """An HttpError → (one line, whether it is a missing scope)."""
    status = exc.resp.status
    try:
        payload = json.loads(exc.content.decode("utf-8"))
        error = payload.get("error", {})
        message = str(error.get("message", ""))
        reasons = {str(e.get("reason", "")) for e in error.get("errors", ())}
        reasons |= {str(d.get("reason", "")) for d in error.get("details", ()) if isinstance(d, dict)}
    except (ValueError, AttributeError):
        message, reasons = "", set()
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
