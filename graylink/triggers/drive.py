"""The Google Drive Activity feed as a trigger: Drive changes → dirty folders.

One poll asks ``v2/activity:query`` for everything under the mount's root
folder since the cursor (minus an overlap, because Google records some
activities late), resolves each changed item to a path under the source root
with Drive v3 ``files.get`` (folders cached in the DB), and writes the dirty
marks, the handled activity keys, the folder cache and the new cursor in one
transaction. A crash before that commit loses nothing: the next poll fetches
the same activities again. Like every trigger it never touches links.

googleapiclient and google.auth are imported only when a poll runs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from graylink.checks import Check
from graylink.config import Config, DriveConfig
from graylink.db import Mark, Store, join, subtree_bounds
from graylink.errors import ConfigError
from graylink.triggers.credentials import (
    MISSING_SCOPE_HINT,
    DriveAuthError,
    DriveCredentials,
    Remote,
    load_credentials,
    read_remote,
)

log = logging.getLogger(__name__)

FOLDER_MIME = "application/vnd.google-apps.folder"
MARK_REASON = "drive"
PAGE_SIZE = 100
HTTP_TIMEOUT = 60.0
NUM_RETRIES = 3  # googleapiclient backs off on 429, 5xx, rate-limit 403 and socket errors
MAX_DEPTH = 256  # deeper than any real tree: a longer parents chain is a cycle

META_CURSOR = "drive.cursor_ms"
META_ROOT_SPEC = "drive.root_spec"
META_ROOT_ID = "drive.root_id"
META_LAST_POLL = "drive.last_poll"
META_LAST_RESULT = "drive.last_result"
META_LAST_MARKS = "drive.last_marks"
META_LAST_ACTIVITIES = "drive.last_activities"
META_TOTAL_MARKS = "drive.total_marks"


@dataclass(frozen=True)
class DrivePollResult:
    activities: int  # activities fetched that had not been handled before
    marks: int  # dirty marks written
    error: str | None = None
    scope_missing: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


# ------------------------------------------------------------ activity parsing


@dataclass(frozen=True)
class Change:
    """One action of an activity, reduced to what decides the marks."""

    kind: str  # create | edit | move | rename | delete | restore
    item_id: str
    title: str
    is_folder: bool
    added_parents: tuple[str, ...] = ()
    removed_parents: tuple[str, ...] = ()
    old_title: str = ""
    new_title: str = ""


@dataclass(frozen=True)
class Activity:
    key: str
    time_ms: int
    changes: tuple[Change, ...]


# Actions that change what a listing shows; comments, permission, label and
# setting changes do not, and cost no files.get.
_KINDS = ("create", "edit", "move", "rename", "delete", "restore")


def rfc3339_to_ms(text: str) -> int:
    stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return round(stamp.timestamp() * 1000)


def activity_time_ms(activity: dict[str, Any]) -> int:
    if "timestamp" in activity:
        return rfc3339_to_ms(str(activity["timestamp"]))
    span = activity.get("timeRange") or {}
    return rfc3339_to_ms(str(span.get("endTime") or span.get("startTime")))


def activity_key(activity: dict[str, Any]) -> str:
    # Activities have no ID; the same activity comes back byte-identical in
    # overlapping queries, so its canonical form identifies it.
    canonical = json.dumps(activity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _item_id(name: str) -> str:
    return name.split("/", 1)[1] if name.startswith("items/") else name


def _drive_item(target: dict[str, Any]) -> dict[str, Any] | None:
    item = target.get("driveItem")
    return item if isinstance(item, dict) and item.get("name") else None


def _is_folder(item: dict[str, Any]) -> bool:
    return item.get("mimeType") == FOLDER_MIME or "driveFolder" in item or "folder" in item


def _parent_ids(refs: Iterable[dict[str, Any]]) -> tuple[str, ...]:
    out = []
    for ref in refs:
        item = ref.get("driveItem") or {}
        if item.get("name"):
            out.append(_item_id(str(item["name"])))
    return tuple(out)


def _change(detail: dict[str, Any], item: dict[str, Any]) -> Change | None:
    kind = next((k for k in _KINDS if k in detail), None)
    if kind is None:
        return None
    body = detail[kind] or {}
    return Change(
        kind=kind,
        item_id=_item_id(str(item["name"])),
        title=str(item.get("title", "")),
        is_folder=_is_folder(item),
        added_parents=_parent_ids(body.get("addedParents", ())) if kind == "move" else (),
        removed_parents=_parent_ids(body.get("removedParents", ())) if kind == "move" else (),
        old_title=str(body.get("oldTitle", "")) if kind == "rename" else "",
        new_title=str(body.get("newTitle", "")) if kind == "rename" else "",
    )


def parse_activity(activity: dict[str, Any]) -> Activity:
    """An activity of the v2 API → its key, time and the changes that matter for listings."""
    targets = [t for t in (_drive_item(t) for t in activity.get("targets", ())) if t is not None]
    changes: list[Change] = []
    actions = activity.get("actions") or [{"detail": activity.get("primaryActionDetail") or {}}]
    for action in actions:
        action_target = _drive_item(action.get("target") or {})
        for item in [action_target] if action_target else targets:
            change = _change(action.get("detail") or {}, item)
            if change is not None and change not in changes:
                changes.append(change)
    return Activity(activity_key(activity), activity_time_ms(activity), tuple(changes))


# ------------------------------------------------------------------- resolution


def encode_name(name: str) -> bytes:
    """A Drive name as the rclone mount shows it (rclone's standard encoding of ``/`` and NUL)."""
    return name.replace("/", "\uff0f").replace("\x00", "\u2400").encode("utf-8", "surrogateescape")


class UnresolvableError(Exception):
    """An item whose place under the root cannot be known (gone, forbidden, a cycle)."""


@dataclass(frozen=True)
class ItemInfo:
    id: str
    name: str
    parents: tuple[str, ...]
    is_folder: bool
    trashed: bool


OUTSIDE = None  # a path lookup's answer for an item outside the root


@dataclass
class FolderCache:
    """Folder ID → path, read from the DB, with this poll's changes held until the commit."""

    store: Store
    added: dict[str, bytes] = field(default_factory=dict)
    dropped_ids: set[str] = field(default_factory=set)
    dropped_paths: list[bytes] = field(default_factory=list)

    def _dropped(self, path: bytes) -> bool:
        return any(gone == b"" or path == gone or path.startswith(gone + b"/") for gone in self.dropped_paths)

    def get(self, folder_id: str) -> bytes | None:
        if folder_id in self.added:
            return self.added[folder_id]
        if folder_id in self.dropped_ids:
            return None
        row = self.store.execute("SELECT path FROM drive_folder WHERE id = ?", (folder_id,)).fetchone()
        if row is None:
            return None
        path = bytes(row[0])
        return None if self._dropped(path) else path

    def put(self, folder_id: str, path: bytes) -> None:
        self.added[folder_id] = path
        self.dropped_ids.discard(folder_id)

    def drop_subtree(self, folder_id: str, path: bytes | None) -> None:
        """Forget a folder and everything cached below it: it was renamed, moved or deleted."""
        self.dropped_ids.add(folder_id)
        self.added.pop(folder_id, None)
        if path is not None:
            self.dropped_paths.append(path)
            for key, value in list(self.added.items()):
                if value == path or value.startswith(path + b"/"):
                    del self.added[key]

    def commit(self) -> None:
        for folder_id in self.dropped_ids:
            self.store.execute("DELETE FROM drive_folder WHERE id = ?", (folder_id,))
        for path in self.dropped_paths:
            lo, hi = subtree_bounds(path)
            self.store.execute("DELETE FROM drive_folder WHERE path = ? OR (path >= ? AND path < ?)", (path, lo, hi))
        if self.added:
            self.store.executemany(
                "INSERT OR REPLACE INTO drive_folder (id, path) VALUES (?, ?)", list(self.added.items())
            )


class Resolver:
    """Item IDs → paths under the root, one ``files.get`` per item, folders once."""

    def __init__(self, drive: Any, root_id: str, cache: FolderCache) -> None:
        self.drive = drive
        self.root_id = root_id
        self.cache = cache
        self._items: dict[str, ItemInfo] = {}
        self.calls = 0

    def item(self, item_id: str) -> ItemInfo:
        if item_id in self._items:
            return self._items[item_id]
        from googleapiclient.errors import HttpError

        try:
            self.calls += 1
            data = (
                self.drive.files()
                .get(fileId=item_id, fields="id,name,parents,mimeType,trashed", supportsAllDrives=True)
                .execute(num_retries=NUM_RETRIES)
            )
        except HttpError as exc:
            if exc.resp.status in (403, 404):
                raise UnresolvableError(f"files.get {item_id}: HTTP {exc.resp.status}") from None
            raise
        info = ItemInfo(
            id=str(data.get("id", item_id)),
            name=str(data.get("name", "")),
            parents=tuple(str(p) for p in data.get("parents", ())),
            is_folder=data.get("mimeType") == FOLDER_MIME,
            trashed=bool(data.get("trashed", False)),
        )
        self._items[item_id] = info
        return info

    def folder_path(self, folder_id: str, depth: int = 0) -> bytes | None:
        """The folder's path under the root, or None when it lies outside the root."""
        if folder_id == self.root_id:
            return b""
        cached = self.cache.get(folder_id)
        if cached is not None:
            return cached
        if depth > MAX_DEPTH:
            raise UnresolvableError(f"parents of {folder_id} form a cycle")
        info = self.item(folder_id)
        if not info.parents:
            return OUTSIDE  # a Drive's top, not ours
        parent = self.folder_path(info.parents[0], depth + 1)
        if parent is None:
            return OUTSIDE
        path = join(parent, encode_name(info.name))
        self.cache.put(folder_id, path)
        return path

    def current_path(self, item_id: str) -> bytes | None:
        """Where the item is now (trashed items keep their parents), or None outside the root."""
        if item_id == self.root_id:
            return b""
        info = self.item(item_id)
        if info.is_folder:
            return self.folder_path(item_id)
        if not info.parents:
            return OUTSIDE
        parent = self.folder_path(info.parents[0])
        return None if parent is None else join(parent, encode_name(info.name))


def _parent(path: bytes) -> bytes:
    return path.rpartition(b"/")[0]


def marks_for_change(change: Change, resolver: Resolver) -> set[Mark]:
    """The dirty marks one change calls for; raises UnresolvableError when its place is unknown."""
    marks: set[Mark] = set()

    def file_dir(path: bytes | None) -> None:
        if path is not None:
            marks.add(Mark(path, MARK_REASON, recursive=False))

    def subtree(path: bytes | None) -> None:
        if path is not None:
            marks.add(Mark(path, MARK_REASON, recursive=True))

    cached_old = resolver.cache.get(change.item_id) if change.is_folder else None

    if change.kind == "delete" and change.is_folder and cached_old is not None:
        # A permanently deleted folder is gone from files.get; the cache knows where it was.
        resolver.cache.drop_subtree(change.item_id, cached_old)
        subtree(cached_old)
        return marks

    if change.kind == "move":
        old_parents = [resolver.folder_path(p) for p in change.removed_parents]
        if change.is_folder:
            old_paths = [join(p, encode_name(change.title)) for p in old_parents if p is not None]
            if cached_old is not None:
                old_paths.append(cached_old)
            resolver.cache.drop_subtree(change.item_id, cached_old)
            for old in old_paths:
                resolver.cache.drop_subtree(change.item_id, old)
                subtree(old)
            subtree(resolver.current_path(change.item_id))
        else:
            for old_parent in old_parents:
                file_dir(old_parent)
            for new_parent in change.added_parents:
                file_dir(resolver.folder_path(new_parent))
        return marks

    if change.kind == "rename" and change.is_folder:
        olds = {cached_old} if cached_old is not None else set()
        resolver.cache.drop_subtree(change.item_id, cached_old)  # so the lookup below is fresh
        current = resolver.current_path(change.item_id)
        if current is not None and change.old_title:
            olds.add(join(_parent(current), encode_name(change.old_title)))
        for old in olds - {current}:
            resolver.cache.drop_subtree(change.item_id, old)
            subtree(old)
        subtree(current)
        if current is not None:
            resolver.cache.put(change.item_id, current)
        return marks

    current = resolver.current_path(change.item_id)

    if change.is_folder and change.kind in ("delete", "create", "restore"):
        if change.kind == "delete" and current is not None:
            resolver.cache.drop_subtree(change.item_id, current)
        subtree(current)
        if current:
            file_dir(_parent(current))
        return marks

    if current is not None and current != b"":
        file_dir(_parent(current))
    return marks


# ------------------------------------------------------------------ the Drive


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


def fetch_activities(clients: DriveClients, root_id: str, since_ms: int) -> Iterator[dict[str, Any]]:
    body: dict[str, Any] = {
        "ancestorName": f"items/{root_id}",
        "filter": f"time > {since_ms}",
        "pageSize": PAGE_SIZE,
        "consolidationStrategy": {"none": {}},
    }
    while True:
        page = clients.activity.activity().query(body=body).execute(num_retries=NUM_RETRIES)
        yield from page.get("activities") or ()
        token = page.get("nextPageToken")
        if not token:
            return
        body = {**body, "pageToken": token}


# --------------------------------------------------------------------- the poll


@dataclass
class CredentialCache:
    """Keeps refreshed credentials between polls of a long-running loop."""

    credentials: DriveCredentials | None = None


def _now_ms() -> int:
    return int(time.time() * 1000)


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


def _http_error_message(exc: Any) -> tuple[str, bool]:
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


def poll_drive(config: Config, store: Store, cache: CredentialCache | None = None) -> DrivePollResult:
    """Poll the feed once and mark what changed. ConfigError for config problems; runtime
    failures come back as a result with ``error`` set (and the cursor kept)."""
    try:
        result = _poll(config, store, cache)
    except ConfigError:
        raise
    except DriveAuthError as exc:
        result = DrivePollResult(0, 0, error=str(exc))
    except Exception as exc:
        result = DrivePollResult(0, 0, *_runtime_error(exc))
    if result.error is not None:
        log.error("drive feed: %s", result.error)
        if cache is not None:
            cache.credentials = None  # start afresh next time: the token may have been revoked
        with store.atomic():
            _record(store, result)
    return result


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


def _runtime_error(exc: Exception, source: str | None = None) -> tuple[str, bool]:
    from google.auth.exceptions import RefreshError, TransportError
    from googleapiclient.errors import HttpError

    if isinstance(exc, HttpError):
        return _http_error_message(exc)
    if isinstance(exc, RefreshError):
        return refresh_failure(exc, source), False
    if isinstance(exc, TransportError | OSError | socket.timeout):
        return f"cannot reach Google: {exc.__class__.__name__}: {exc}", False
    import httplib2

    if isinstance(exc, httplib2.HttpLib2Error):
        return f"cannot reach Google: {exc.__class__.__name__}: {exc}", False
    raise exc


def _poll(config: Config, store: Store, cache: CredentialCache | None) -> DrivePollResult:
    from google.auth.exceptions import RefreshError

    remote, creds = _load(config, cache)
    try:
        return _poll_with(config, store, remote, creds)
    except RefreshError as exc:
        # Only here is it known where the refused credentials came from, hence which fix to name.
        raise DriveAuthError(refresh_failure(exc, creds.source)) from None


def _poll_with(config: Config, store: Store, remote: Remote, creds: DriveCredentials) -> DrivePollResult:
    clients = build_clients(config.drive, creds)
    root_id = _root_id(store, clients, remote, config.drive)
    started_ms = _now_ms()
    cursor_text = store.get_meta(META_CURSOR)
    overlap_ms = int(config.drive.overlap * 1000)
    if cursor_text is None:
        # The first poll starts now (the first full scan covers the past). What
        # the next poll's overlap will see again is recorded as handled, and the
        # query itself shows a missing scope at once.
        past = [parse_activity(a) for a in fetch_activities(clients, root_id, started_ms - overlap_ms)]
        result = DrivePollResult(0, 0)
        with store.atomic():
            store.executemany(
                "INSERT OR IGNORE INTO drive_activity (key, time_ms) VALUES (?, ?)", [(a.key, a.time_ms) for a in past]
            )
            store.set_meta(META_CURSOR, str(started_ms))
            _record(store, result)
        log.info("drive feed: started, watching changes from now on")
        return result
    cursor = int(cursor_text)
    fetched = [parse_activity(a) for a in fetch_activities(clients, root_id, cursor - overlap_ms)]
    keys = [a.key for a in fetched]
    handled = _handled_keys(store, keys)
    fresh = sorted((a for a in fetched if a.key not in handled), key=lambda a: a.time_ms)
    folder_cache = FolderCache(store)
    resolver = Resolver(clients.drive, root_id, folder_cache)
    marks: set[Mark] = set()
    for activity in fresh:
        for change in activity.changes:
            try:
                marks |= marks_for_change(change, resolver)
            except UnresolvableError as exc:
                log.warning(
                    "drive feed: cannot place %s %r (%s): marking the whole source dirty",
                    change.kind,
                    change.title,
                    exc,
                )
                marks.add(Mark(b"", MARK_REASON, recursive=True))
    if any(m.path == b"" and m.recursive for m in marks):
        marks = {Mark(b"", MARK_REASON, recursive=True)}
    new_cursor = max([cursor, *(a.time_ms for a in fresh)])
    ordered = sorted(marks, key=lambda m: (m.path, not m.recursive))
    result = DrivePollResult(len(fresh), len(ordered))
    with store.atomic():
        store.add_marks(ordered)
        folder_cache.commit()
        store.executemany(
            "INSERT OR IGNORE INTO drive_activity (key, time_ms) VALUES (?, ?)", [(a.key, a.time_ms) for a in fresh]
        )
        # Keys older than any future query's window can go.
        store.execute("DELETE FROM drive_activity WHERE time_ms < ?", (new_cursor - overlap_ms - 60_000,))
        store.set_meta(META_CURSOR, str(new_cursor))
        _record(store, result)
    if fresh:
        log.info(
            "drive feed: %d new activities, %d folders marked dirty (%d lookups)",
            len(fresh),
            len(ordered),
            resolver.calls,
        )
    return result


def _handled_keys(store: Store, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = store.execute(f"SELECT key FROM drive_activity WHERE key IN ({marks})", list(chunk))
        found.update(str(r[0]) for r in rows)
    return found


# ------------------------------------------------------------------- status


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


# ------------------------------------------------------------------- doctor


def doctor_checks(config: Config) -> list[Check]:
    """Remote, credential refresh, activity scope, root folder: each with a hint, never a secret."""
    if not config.drive.enabled:
        return []
    checks: list[Check] = []
    try:
        remote = read_remote(config.drive)
    except ConfigError as exc:
        return [Check("drive remote", False, str(exc), "fix [drive] remote / rclone_config (see 'rclone listremotes')")]
    where = f"[{remote.name}]" + (f" path {remote.path!r}" if remote.path else "")
    checks.append(Check("drive remote", True, f"rclone remote {where} in {config.drive.rclone_config}"))
    try:
        creds = load_credentials(config.drive, remote)
    except (ConfigError, DriveAuthError) as exc:
        checks.append(Check("drive credentials", False, str(exc), "run 'graylink drive auth'"))
        return checks
    hint = "see docs/google-drive.md" if creds.source == "service_account" else "run 'graylink drive auth'"
    try:
        clients = build_clients(config.drive, creds)
        _ensure_fresh(creds)
    except DriveAuthError as exc:
        checks.append(Check("drive credentials", False, str(exc), hint))
        return checks
    except Exception as exc:
        message, _ = _runtime_error(exc, creds.source)
        checks.append(Check("drive credentials", False, message, hint))
        return checks
    checks.append(Check("drive credentials", True, f"token from {_SOURCE_NAMES[creds.source]} is valid"))
    try:
        start, path = root_spec(config.drive, remote)
        root_id = resolve_root(clients, remote, start, path)
        checks.append(Check("drive root folder", True, f"the mount root is Drive folder {root_id}"))
    except DriveAuthError as exc:
        checks.append(Check("drive root folder", False, str(exc), "check [drive] folder_id and the remote's path"))
        return checks
    except Exception as exc:
        message, _ = _runtime_error(exc)
        checks.append(Check("drive root folder", False, message, "check [drive] folder_id and the remote's path"))
        return checks
    try:
        for _ in fetch_activities(clients, root_id, _now_ms()):
            pass
        checks.append(Check("drive activity scope", True, "the Drive Activity API answers"))
    except Exception as exc:
        message, scope = _runtime_error(exc)
        hint = "see docs/google-drive.md" if scope else "check the network and the Drive Activity API in the console"
        checks.append(Check("drive activity scope", False, message, hint))
    return checks


_SOURCE_NAMES = {
    "token_file": "graylink's token file",
    "rclone": "the rclone remote",
    "service_account": "the service account",
}


def _ensure_fresh(creds: DriveCredentials) -> None:
    """Refresh now when the token is expired (or absent), so a refused refresh shows up here."""
    if creds.credentials.valid or not creds.refreshable:
        return
    import google_auth_httplib2
    import httplib2

    creds.credentials.refresh(google_auth_httplib2.Request(httplib2.Http(timeout=HTTP_TIMEOUT)))
