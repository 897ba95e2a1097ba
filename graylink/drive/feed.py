"""The Drive feed's poll: credentials, the root folder, one feed's batch, committed with its marks.

A poll loads credentials (re-reading rclone.conf: a running rclone rewrites
its token), finds the mount's root folder (cached in the DB), asks the feed
for what changed since its cursor, and writes the marks, the feed's cursor
and the item record in one transaction, with the poll's outcome for status.
Failures come back as a result with ``error`` set and the cursor kept.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from graylink.config import Config, DriveConfig
from graylink.db import Store
from graylink.drive.activity import META_CURSOR, poll_activities
from graylink.drive.credentials import DriveAuthError, DriveCredentials, Remote, load_credentials, read_remote
from graylink.drive.google import DriveClients, build_clients, refresh_failure, resolve_root, root_spec, runtime_error
from graylink.errors import ConfigError

log = logging.getLogger(__name__)

META_ROOT_SPEC = "drive.root_spec"
META_ROOT_ID = "drive.root_id"
META_LAST_POLL = "drive.last_poll"
META_LAST_RESULT = "drive.last_result"
META_LAST_MARKS = "drive.last_marks"
META_LAST_ACTIVITIES = "drive.last_activities"
META_TOTAL_MARKS = "drive.total_marks"
META_TOKEN_WAITS = "drive.token_waits"  # noqa: S105 - consecutive polls that found rclone's token expired
TOKEN_RETRY = 60.0  # rclone refreshes on its next Drive call: with --poll-interval 1m, within a minute
TOKEN_PATIENCE = 3  # polls that may find it expired before that is an error


@dataclass(frozen=True)
class DrivePollResult:
    activities: int  # activities fetched that had not been handled before
    marks: int  # dirty marks written
    error: str | None = None
    scope_missing: bool = False
    retry_in: float | None = None  # poll again this soon (seconds), not at the next interval
    skipped: str = ""  # why nothing was asked of Google this time (not a failure)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class CredentialCache:
    """Keeps refreshed credentials between polls of a long-running loop."""

    credentials: DriveCredentials | None = None


def _load(config: Config, cache: CredentialCache | None) -> tuple[Remote, DriveCredentials]:
    remote = read_remote(config.drive)  # re-read each poll: a running rclone rewrites its token
    cached = cache.credentials if cache is not None else None
    if cached is not None and cached.refreshable:
        return remote, cached
    creds = load_credentials(config.drive, remote)
    if cache is not None:
        cache.credentials = creds
    return remote, creds


def _root_id(store: Store, clients: DriveClients, remote: Remote, config: DriveConfig) -> str:
    start, path = root_spec(config, remote)
    spec = f"{start}:{path}"
    if store.get_meta(META_ROOT_SPEC) == spec and store.get_meta(META_ROOT_ID):
        return str(store.get_meta(META_ROOT_ID))
    root_id = resolve_root(clients, remote, start, path)
    with store.atomic():
        # Another root means other paths: the old cache and cursor mean nothing now.
        store.execute("DELETE FROM drive_folder")
        store.execute("DELETE FROM drive_activity")
        store.execute("DELETE FROM meta_value WHERE key = ?", (META_CURSOR,))
        store.set_meta(META_ROOT_SPEC, spec)
        store.set_meta(META_ROOT_ID, root_id)
    return root_id


def _record(store: Store, result: DrivePollResult) -> None:
    store.set_meta(META_LAST_POLL, repr(time.time()))
    store.set_meta(META_LAST_RESULT, "ok" if result.error is None else result.error)
    store.set_meta(META_LAST_ACTIVITIES, str(result.activities))
    store.set_meta(META_LAST_MARKS, str(result.marks))
    total = int(store.get_meta(META_TOTAL_MARKS, "0") or 0)
    store.set_meta(META_TOTAL_MARKS, str(total + result.marks))


def poll_drive(config: Config, store: Store, cache: CredentialCache | None = None) -> DrivePollResult:
    """Poll the feed once and mark what changed. ConfigError for config problems; runtime
    failures come back as a result with ``error`` set (and the cursor kept)."""
    from graylink.rclone.token import BorrowedTokenExpired

    try:
        result = _poll(config, store, cache)
    except ConfigError:
        raise
    except BorrowedTokenExpired as exc:
        result = _token_wait(store, exc)
        if result.error is None:
            return result
    except DriveAuthError as exc:
        result = DrivePollResult(0, 0, error=str(exc))
    except Exception as exc:
        result = DrivePollResult(0, 0, *runtime_error(exc))
    if result.error is not None:
        log.error("drive feed: %s", result.error)
        if cache is not None:
            cache.credentials = None  # start afresh next time: the token may have been revoked
        with store.atomic():
            _record(store, result)
    return result


def _token_wait(store: Store, exc: Exception) -> DrivePollResult:
    """rclone's token expired and rclone.conf has no newer one: wait quietly, then say what is wrong."""
    waits = int(store.get_meta(META_TOKEN_WAITS, "0") or 0) + 1
    with store.atomic():
        store.set_meta(META_TOKEN_WAITS, str(waits))
    if waits < TOKEN_PATIENCE:
        log.info("drive feed: %s and rclone has not refreshed it yet; trying again in %.0f s", exc, TOKEN_RETRY)
        return DrivePollResult(0, 0, retry_in=TOKEN_RETRY, skipped="waiting for rclone to refresh its token")
    return DrivePollResult(
        0,
        0,
        error=(
            f"{exc}, and rclone has not refreshed it in {waits} polls; graylink cannot refresh tokens of rclone's "
            "built-in client itself: keep the rclone mount running with --poll-interval (rclone refreshes the "
            "token when it uses the Drive and rewrites rclone.conf), check that [drive] rclone_config is the file "
            "that mount uses, or give the remote your own client_id/client_secret and run 'graylink drive auth'"
        ),
        retry_in=TOKEN_RETRY,
    )


def _poll(config: Config, store: Store, cache: CredentialCache | None) -> DrivePollResult:
    from google.auth.exceptions import RefreshError

    from graylink.rclone.token import BorrowedTokenExpired

    remote, creds = _load(config, cache)
    try:
        result = _poll_with(config, store, remote, creds)
    except BorrowedTokenExpired:
        raise
    except RefreshError as exc:
        # Only here is it known where the refused credentials came from, hence which fix to name.
        raise DriveAuthError(refresh_failure(exc, creds.source)) from None
    if store.get_meta(META_TOKEN_WAITS):
        with store.atomic():
            store.execute("DELETE FROM meta_value WHERE key = ?", (META_TOKEN_WAITS,))
    return result


def _poll_with(config: Config, store: Store, remote: Remote, creds: DriveCredentials) -> DrivePollResult:
    clients = build_clients(config.drive, creds)
    root_id = _root_id(store, clients, remote, config.drive)
    batch = poll_activities(store, clients, root_id, int(config.drive.overlap * 1000))
    result = DrivePollResult(batch.events, len(batch.marks))
    with store.atomic():
        store.add_marks(batch.marks)
        batch.commit()
        _record(store, result)
    if batch.events:
        log.info(
            "drive feed: %d new activities, %d folders marked dirty (%d lookups)",
            batch.events,
            len(batch.marks),
            batch.lookups,
        )
    return result


def drive_status(store: Store) -> dict[str, Any]:
    """The feed's state for ``graylink status``: last poll, its result, cursor age, marks made."""
    last_poll = store.get_meta(META_LAST_POLL)
    cursor = store.get_meta(META_CURSOR)
    now = time.time()
    return {
        "last_poll": float(last_poll) if last_poll else None,
        "last_poll_age_s": round(now - float(last_poll), 1) if last_poll else None,
        "last_result": store.get_meta(META_LAST_RESULT),
        "last_activities": int(store.get_meta(META_LAST_ACTIVITIES, "0") or 0),
        "last_marks": int(store.get_meta(META_LAST_MARKS, "0") or 0),
        "total_marks": int(store.get_meta(META_TOTAL_MARKS, "0") or 0),
        "cursor": int(cursor) / 1000 if cursor else None,
        "cursor_age_s": round(now - int(cursor) / 1000, 1) if cursor else None,
        "root_id": store.get_meta(META_ROOT_ID),
        "cached_folders": int(store.execute("SELECT count(*) FROM drive_folder").fetchone()[0]),
    }
