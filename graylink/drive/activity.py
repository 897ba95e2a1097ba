"""The Drive Activity API feed: activities under the root → dirty marks.

One poll asks ``v2/activity:query`` for everything under the mount's root
folder since the cursor (minus an overlap, because Google records some
activities late), resolves each changed item to a path under the source root
(``items``), and hands back the marks, the handled activity keys and the new
cursor for the feed to commit in one transaction. A crash before that commit
loses nothing: the next poll fetches the same activities again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from graylink.db import Mark, Store, join
from graylink.drive.batch import MARK_REASON, Batch, collapse_root
from graylink.drive.google import FOLDER_MIME, NUM_RETRIES, DriveClients
from graylink.drive.items import FolderCache, Resolver, UnresolvableError
from graylink.drive.names import encode_name

log = logging.getLogger(__name__)

PAGE_SIZE = 100
META_CURSOR = "drive.cursor_ms"


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


def _handled_keys(store: Store, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = store.execute(f"SELECT key FROM drive_activity WHERE key IN ({marks})", list(chunk))
        found.update(str(r[0]) for r in rows)
    return found


def _remember(store: Store, activities: list[Activity]) -> None:
    store.executemany(
        "INSERT OR IGNORE INTO drive_activity (key, time_ms) VALUES (?, ?)", [(a.key, a.time_ms) for a in activities]
    )


def _start(store: Store, clients: DriveClients, root_id: str, overlap_ms: int) -> Batch:
    # The first poll starts now (the first full scan covers the past). What
    # the next poll's overlap will see again is recorded as handled, and the
    # query itself shows a missing scope at once.
    started_ms = int(time.time() * 1000)
    past = [parse_activity(a) for a in fetch_activities(clients, root_id, started_ms - overlap_ms)]

    def commit() -> None:
        _remember(store, past)
        store.set_meta(META_CURSOR, str(started_ms))

    log.info("drive feed: started, watching changes from now on")
    return Batch(0, [], commit)


def poll_activities(store: Store, clients: DriveClients, root_id: str, overlap_ms: int) -> Batch:
    """One poll of the Activity feed from the saved cursor."""
    cursor_text = store.get_meta(META_CURSOR)
    if cursor_text is None:
        return _start(store, clients, root_id, overlap_ms)
    cursor = int(cursor_text)
    fetched = [parse_activity(a) for a in fetch_activities(clients, root_id, cursor - overlap_ms)]
    handled = _handled_keys(store, [a.key for a in fetched])
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
    new_cursor = max([cursor, *(a.time_ms for a in fresh)])

    def commit() -> None:
        folder_cache.commit()
        _remember(store, fresh)
        # Keys older than any future query's window can go.
        store.execute("DELETE FROM drive_activity WHERE time_ms < ?", (new_cursor - overlap_ms - 60_000,))
        store.set_meta(META_CURSOR, str(new_cursor))

    return Batch(len(fresh), collapse_root(marks), commit, lookups=resolver.calls)
