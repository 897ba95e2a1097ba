"""The Drive feed's poll: which feed, credentials, the root folder, and the feed's writes with its marks.

A poll loads credentials (re-reading rclone.conf: a running rclone rewrites
its token), picks the feed (``[drive] feed``; ``auto`` takes the Activity API
when the token carries a drive.activity scope, else the Changes API, which
rclone's default ``drive`` scope serves), finds the mount's root folder
(cached in the DB) and lets the feed write its marks together with its
cursor. Every failure of the feed — Google's errors, a malformed answer, a
page loop, the poll's deadline — comes back as a result with ``error`` set,
the cursor where the last commit left it; it never ends the cycle.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from graylink.config import Config, DriveConfig
from graylink.drive.activity import META_CURSOR, poll_activities
from graylink.drive.batch import Polled, Step
from graylink.drive.changes import META_NEWEST, META_PAGE_TOKEN, poll_changes
from graylink.drive.credentials import GRAYLINK_SCOPES, DriveAuthError, DriveCredentials, load_credentials
from graylink.drive.google import (
    Caller,
    DriveClients,
    PollStopped,
    StopFn,
    build_clients,
    refresh_failure,
    resolve_root,
    root_spec,
    runtime_error,
)
from graylink.drive.items import META_SEED_DONE, ItemRecord
from graylink.drive.names import CryptError, Names, names_for, root_key, root_path
from graylink.drive.remote import ACTIVITY_SCOPES, Remote, read_remote
from graylink.drive.shared_activity import shared_source
from graylink.drive.shared_changes import ChangePages, drive_key
from graylink.errors import ConfigError
from graylink.store.db import Store

log = logging.getLogger(__name__)

META_ROOT_SPEC = "drive.root_spec"
META_ROOT_ID = "drive.root_id"
META_LAST_POLL = "drive.last_poll"
META_LAST_OK = "drive.last_ok"
META_LAST_RESULT = "drive.last_result"
META_LAST_MARKS = "drive.last_marks"
META_LAST_ACTIVITIES = "drive.last_activities"
META_LAST_CALLS = "drive.last_calls"
META_CALLS_HOURLY = "drive.calls_hourly"
META_TOTAL_MARKS = "drive.total_marks"
META_TOTAL_CALLS = "drive.total_calls"  # every request sent to Google, ever: a Prometheus counter
META_TOKEN_WAITS = "drive.token_waits"  # noqa: S105 - consecutive polls that found rclone's token expired
TOKEN_RETRY = 60.0  # rclone refreshes on its next Drive call: with --poll-interval 1m, within a minute
TOKEN_PATIENCE = 3  # polls that may find it expired before that is an error
META_FEED = "drive.feed"
META_CADENCE = "drive.cadence"  # how the service walks: "all:<why>" or "marked:<why>" (drive.cadence)

DEFAULT_INTERVALS = {"changes": 60.0, "activity": 3600.0}


@dataclass(frozen=True)
class DrivePollResult:
    activities: int  # changes or activities handled for the first time
    marks: int  # dirty marks written
    error: str | None = None
    scope_missing: bool = False
    retry_in: float | None = None  # poll again this soon (seconds), not at the next interval
    skipped: str = ""  # why nothing was asked of Google this time (not a failure)
    feed: str = ""  # changes | activity
    calls: int = 0  # requests sent to Google
    stopped: bool = False  # the stop request came first: nothing failed, the rest waits

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class FeedChoice:
    kind: str  # changes | activity
    reason: str


@dataclass
class CredentialCache:
    """Keeps refreshed credentials between polls of a long-running loop."""

    credentials: DriveCredentials | None = None


# ------------------------------------------------------------ which feed


def _scopes(creds: DriveCredentials, remote: Remote) -> set[str]:
    if creds.source == "rclone":
        return set(remote.scopes)
    if creds.source == "service_account":
        return set(GRAYLINK_SCOPES)
    return set(getattr(creds.credentials, "scopes", None) or ())


_SOURCES = {
    "token_file": "graylink's token file",
    "rclone": "the rclone remote",
    "service_account": "the service account",
}


def choose_feed(config: DriveConfig, creds: DriveCredentials, remote: Remote) -> FeedChoice:
    if config.feed != "auto":
        return FeedChoice(config.feed, f"[drive] feed = {config.feed}")
    where = _SOURCES.get(creds.source, creds.source)
    if _scopes(creds, remote) & ACTIVITY_SCOPES:
        return FeedChoice("activity", f"auto: the token from {where} carries a drive.activity scope")
    return FeedChoice("changes", f"auto: the token from {where} has no drive.activity scope")


def feed_interval(config: Config) -> float:
    """``[drive] interval``, else the chosen feed's default (1m Changes, 1h Activity)."""
    if config.drive.interval is not None:
        return config.drive.interval
    kind = config.drive.feed
    if kind == "auto":
        try:
            remote = read_remote(config.drive)
            kind = choose_feed(config.drive, load_credentials(config.drive, remote), remote).kind
        except Exception:  # unreadable credentials: the poll reports them; poll often until then
            kind = "changes"
    return DEFAULT_INTERVALS[kind]


# ------------------------------------------------------------ the poll


def _load(config: Config, cache: CredentialCache | None) -> tuple[Remote, DriveCredentials]:
    remote = read_remote(config.drive)  # re-read each poll: a running rclone rewrites its token
    cached = cache.credentials if cache is not None else None
    if cached is not None and cached.refreshable:
        return remote, cached
    creds = load_credentials(config.drive, remote)
    if cache is not None:
        cache.credentials = creds
    return remote, creds


def _root_id(store: Store, clients: DriveClients, remote: Remote, config: DriveConfig, feed: str, names: Names) -> str:
    start, path = root_spec(config, remote)
    spec = f"{feed}:{start}:{path}{root_key(remote, config.folder_id)}"
    if store.get_meta(META_ROOT_SPEC) == spec and store.get_meta(META_ROOT_ID):
        return str(store.get_meta(META_ROOT_ID))
    path = root_path(remote, names, path, config.folder_id)
    root_id = resolve_root(clients, remote, start, path, names)
    with store.atomic():
        # Another root (or feed) means other paths and another cursor: start afresh.
        ItemRecord(store).clear()
        store.execute("DELETE FROM drive_activity")
        store.execute("DELETE FROM meta_value WHERE key IN (?, ?)", (META_CURSOR, META_PAGE_TOKEN))
        store.set_meta(META_ROOT_SPEC, spec)
        store.set_meta(META_ROOT_ID, root_id)
    return root_id


def _hourly(store: Store, calls: int, now: float) -> dict[str, int]:
    try:
        hours = {str(k): int(v) for k, v in json.loads(store.get_meta(META_CALLS_HOURLY, "{}") or "{}").items()}
    except (ValueError, AttributeError, TypeError):
        hours = {}
    hour = int(now // 3600)
    hours[str(hour)] = hours.get(str(hour), 0) + calls
    # Hours in the future (a clock that jumped back) would count for ever.
    return {k: v for k, v in hours.items() if hour - 24 < int(k) <= hour}


def _record(store: Store, result: DrivePollResult) -> None:
    now = time.time()
    store.set_meta(META_LAST_POLL, repr(now))
    store.set_meta(META_LAST_RESULT, "ok" if result.error is None else result.error)
    if result.error is None:
        store.set_meta(META_LAST_OK, repr(now))
    store.set_meta(META_LAST_ACTIVITIES, str(result.activities))
    store.set_meta(META_LAST_MARKS, str(result.marks))
    store.set_meta(META_LAST_CALLS, str(result.calls))
    store.set_meta(META_CALLS_HOURLY, json.dumps(_hourly(store, result.calls, now), sort_keys=True))
    total = int(store.get_meta(META_TOTAL_MARKS, "0") or 0)
    store.set_meta(META_TOTAL_MARKS, str(total + result.marks))
    calls = int(store.get_meta(META_TOTAL_CALLS, "0") or 0)
    store.set_meta(META_TOTAL_CALLS, str(calls + result.calls))


def poll_drive(
    config: Config,
    store: Store,
    cache: CredentialCache | None = None,
    should_stop: StopFn | None = None,
    shared: ChangePages | None = None,
) -> DrivePollResult:
    """Poll the feed once and mark what changed. ConfigError for config problems; every runtime
    failure comes back as a result with ``error`` set (and the cursor kept). ``shared``: the
    Changes pages and Activity answers shared by the libraries of one service (graylink.drive.shared_changes)."""
    from graylink.rclone.token import BorrowedTokenExpired

    caller = Caller.for_poll(should_stop)
    try:
        result = _poll(config, store, cache, caller, shared)
    except ConfigError:
        raise
    except BorrowedTokenExpired as exc:
        result = _token_wait(store, exc)
        if result.error is None:
            return result
    except PollStopped:
        feed = (store.get_meta(META_FEED) or "").partition(":")[0]
        return DrivePollResult(0, 0, feed=feed, calls=caller.calls, stopped=True)
    except DriveAuthError as exc:
        result = DrivePollResult(0, 0, error=str(exc), calls=caller.calls)
    except Exception as exc:
        result = _failure(exc, caller)
    if result.error is not None:
        feed = (store.get_meta(META_FEED) or "").partition(":")[0]
        result = replace(result, feed=feed, calls=caller.calls)
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


def _failure(exc: Exception, caller: Caller) -> DrivePollResult:
    try:
        message, scope = runtime_error(exc)
    except Exception:
        # Not a failure Google's errors describe: still the feed's failure, never the cycle's.
        log.debug("drive feed: unexpected failure", exc_info=True)
        message, scope = f"unexpected failure: {exc.__class__.__name__}: {exc}", False
    return DrivePollResult(0, 0, error=message, scope_missing=scope, calls=caller.calls)


def _poll(
    config: Config, store: Store, cache: CredentialCache | None, caller: Caller, shared: ChangePages | None
) -> DrivePollResult:
    from google.auth.exceptions import RefreshError

    from graylink.rclone.token import BorrowedTokenExpired

    remote, creds = _load(config, cache)
    try:
        result = _poll_with(config, store, remote, creds, caller, shared)
    except BorrowedTokenExpired:
        raise
    except RefreshError as exc:
        # Only here is it known where the refused credentials came from, hence which fix to name.
        raise DriveAuthError(refresh_failure(exc, creds.source)) from None
    if store.get_meta(META_TOKEN_WAITS):
        with store.atomic():
            store.execute("DELETE FROM meta_value WHERE key = ?", (META_TOKEN_WAITS,))
    return result


def _poll_with(
    config: Config,
    store: Store,
    remote: Remote,
    creds: DriveCredentials,
    caller: Caller,
    shared: ChangePages | None = None,
) -> DrivePollResult:
    choice = choose_feed(config.drive, creds, remote)
    if (store.get_meta(META_FEED) or "").partition(":")[0] != choice.kind:
        log.info(
            "drive feed: the %s feed (%s)", "Changes API" if choice.kind == "changes" else "Activity API", choice.reason
        )
    names = names_for(remote)
    clients = build_clients(config.drive, creds, caller)
    root_id = _root_id(store, clients, remote, config.drive, choice.kind, names)

    def write(step: Step) -> int:
        with store.atomic():
            marks = step()
            store.add_marks(marks)
            store.set_meta(META_FEED, f"{choice.kind}:{choice.reason}")
            return len(marks)

    # Within 0.9 of the interval: the next poll (one interval later) asks afresh.
    key = drive_key(remote.conf_path, remote.name, remote.team_drive, config.drive.api_endpoint, creds.source)
    ttl = 0.9 * feed_interval(config)
    polled: Polled
    try:
        if choice.kind == "changes":
            view = shared.view(key, ttl) if shared is not None else None
            polled = poll_changes(store, clients, root_id, remote.team_drive, write, names, view)
        else:
            overlap = int(config.drive.overlap * 1000)
            answers = shared.activity.view(key, ttl) if shared is not None else None
            source = shared_source(answers, clients, root_id, overlap) if answers is not None else None
            polled = poll_activities(store, clients, root_id, overlap, write, names, source)
    except CryptError as exc:
        raise DriveAuthError(str(exc)) from None
    result = DrivePollResult(polled.events, polled.marks, feed=choice.kind, calls=caller.calls)
    with store.atomic():
        _record(store, result)
    if polled.events:
        log.info(
            "drive feed: %d new %s, %d folders marked dirty (%d lookups, %d calls)",
            polled.events,
            "changes" if choice.kind == "changes" else "activities",
            polled.marks,
            polled.lookups,
            caller.calls,
        )
    return result


# ------------------------------------------------------------ status


def feed_healthy(config: Config, store: Store, now: float | None = None) -> bool:
    """The last poll succeeded, within twice the feed's interval: the feed can name what changed."""
    if not config.drive.enabled or store.get_meta(META_LAST_RESULT) != "ok":
        return False
    last_ok = store.get_meta(META_LAST_OK)
    if not last_ok:
        return False
    return (time.time() if now is None else now) - float(last_ok) <= 2 * feed_interval(config)


def drive_status(store: Store) -> dict[str, Any]:
    """The feed's state for ``graylink status``: which feed and why, last poll, calls, lag, marks."""
    last_poll = store.get_meta(META_LAST_POLL)
    cursor = store.get_meta(META_CURSOR)
    newest = store.get_meta(META_NEWEST)
    feed, _, reason = (store.get_meta(META_FEED, "") or "").partition(":")
    now = time.time()
    hours = _hourly(store, 0, now)
    return {
        "feed": feed or None,
        "feed_reason": reason or None,
        "last_poll": float(last_poll) if last_poll else None,
        "last_poll_age_s": round(now - float(last_poll), 1) if last_poll else None,
        "last_result": store.get_meta(META_LAST_RESULT),
        "last_activities": int(store.get_meta(META_LAST_ACTIVITIES, "0") or 0),
        "last_marks": int(store.get_meta(META_LAST_MARKS, "0") or 0),
        "total_marks": int(store.get_meta(META_TOTAL_MARKS, "0") or 0),
        "calls_last_poll": int(store.get_meta(META_LAST_CALLS, "0") or 0),
        "calls_24h": sum(hours.values()),
        "calls_total": int(store.get_meta(META_TOTAL_CALLS, "0") or 0),
        "newest_change": int(newest) / 1000 if newest else None,
        "cursor": int(cursor) / 1000 if cursor else None,
        "cursor_age_s": round(now - int(cursor) / 1000, 1) if cursor else None,
        "walk": (store.get_meta(META_CADENCE) or "").partition(":")[2] or None,
        "root_id": store.get_meta(META_ROOT_ID),
        "known_items": ItemRecord(store).count(),
        "record_complete": bool(store.get_meta(META_SEED_DONE)),
    }
