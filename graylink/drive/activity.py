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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from graylink.drive.batch import MARK_REASON, Polled, Unplaced, Writer, collapse_root
from graylink.drive.google import FOLDER_MIME, DriveClients, FeedError
from graylink.drive.items import Fetch, ItemRecord, Known, Resolver, UnresolvableError, fetcher, settle
from graylink.drive.names import DEFAULT_NAMES, Names
from graylink.store.clock import in_future, tell_jump
from graylink.store.db import Mark, Store, parent_of

log = logging.getLogger(__name__)

PAGE_SIZE = 100
MAX_PAGES = 100  # 10k activities in one poll: more is a page loop, or a poll that cannot end in time
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
    permanent: bool = False  # a delete for good, not to the trash


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
    """The folder IDs of a move's TargetReferences: a Drive item (``items/ID``), or a shared drive,
    whose root folder has the drive's ID. A shared drive's ``DriveReference.name`` is
    ``COLLECTION_ID/DRIVE_ID`` and "clients should not assume a specific collection ID" (the
    driveactivity v2 discovery document): ``drives/ID`` today, ``teamDrives/ID`` before it."""
    out = []
    for ref in refs:
        for kind in ("driveItem", "drive", "teamDrive"):
            name = str((ref.get(kind) or {}).get("name") or "")
            collection, _, item_id = name.rpartition("/")
            if kind == "driveItem" and collection != "items":
                continue
            if collection and item_id:
                out.append(item_id)
                break
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
        permanent=kind == "delete" and body.get("type") == "PERMANENT_DELETE",
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


def _prefetch(change: Change, resolver: Resolver) -> None:
    """Ask Google what is needed to place the change (network; nothing is written)."""
    if change.kind == "delete" and resolver.record.get(change.item_id) is not None:
        return  # the record knows where it was, and it is not shown any more
    info = resolver.info(change.item_id)
    if info is not None and info.parents:
        resolver.prefetch(info.parents[0])
    for parent in change.removed_parents:
        resolver.prefetch(parent)


def _old_place(change: Change, now: Known | None, resolver: Resolver) -> Known | None:
    """Where an item the record did not know was before this change, from the activity itself."""
    if change.kind == "create":
        return None
    if change.kind == "move":
        for parent in change.removed_parents:
            path = resolver.folder_path(parent)
            if path is not None:
                return Known(resolver.shown(path, change.title), change.is_folder)
        return Known(None, change.is_folder)
    if now is None:
        raise UnresolvableError(f"files.get {change.item_id}: gone, and not in the item record")
    if change.kind == "rename" and now.path and change.old_title:
        return replace(now, path=resolver.shown(parent_of(now.path), change.old_title))
    if change.kind in ("delete", "restore"):
        return replace(now, trashed=change.kind == "restore")
    return now


def marks_for_change(change: Change, resolver: Resolver) -> set[Mark]:
    """Record where the item went and return the marks; UnresolvableError when its place is unknown."""
    was = resolver.record.get(change.item_id)
    now: Known | None
    if change.kind == "delete" and was is not None:
        now = None if change.permanent else replace(was, trashed=True)
    else:
        info = resolver.info(change.item_id)
        now = resolver.place(info) if info is not None else None
        if info is None and was is None:
            raise UnresolvableError(f"files.get {change.item_id}: gone, and not in the item record")
    if was is None:
        was = _old_place(change, now, resolver)
    return settle(resolver.record, change.item_id, was, now)


def _pages(clients: DriveClients, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        page = clients.call(clients.activity.activity().query(body=body), "activity:query")
        yield page
        token = page.get("nextPageToken")
        if not token:
            return
        if not isinstance(token, str) or token in seen:
            raise FeedError("Google's activity pages loop (the same page token came back); the cursor stays")
        seen.add(token)
        body = {**body, "pageToken": token}
    raise FeedError(f"more than {MAX_PAGES} pages of activities in one poll; the cursor stays")


def fetch_activities(clients: DriveClients, root_id: str, since_ms: int, until_ms: int = 0) -> Iterator[Activity]:
    """The activities under ``root_id`` after ``since_ms`` (up to ``until_ms`` when given)."""
    body: dict[str, Any] = {
        "ancestorName": f"items/{root_id}",
        "filter": f"time > {since_ms}" + (f" AND time <= {until_ms}" if until_ms else ""),
        "pageSize": PAGE_SIZE,
        "consolidationStrategy": {"none": {}},
    }
    for page in _pages(clients, body):
        activities = page.get("activities") or []
        if not isinstance(activities, list):
            raise FeedError("the answer to activity:query is malformed (activities is not a list)")
        for raw in activities:
            try:
                yield parse_activity(raw)
            except (AttributeError, TypeError, ValueError, KeyError) as exc:
                raise FeedError(f"an activity in Google's answer is malformed ({exc.__class__.__name__})") from None


@dataclass(frozen=True)
class Source:
    """Where a library's activities come from: its own query, or the one it shares with the other
    libraries on its Drive (graylink.drive.shared_activity), whose answer also holds theirs."""

    activities: Callable[[int], list[Activity]]  # since_ms -> the activities after it
    lookup: Fetch  # files.get
    # Shared only: the library's own query over a time span, asked for what no folder is found for.
    confirm: Callable[[int, int], list[Activity]] | None = field(default=None)


def own_source(clients: DriveClients, root_id: str) -> Source:
    return Source(lambda since_ms: list(fetch_activities(clients, root_id, since_ms)), fetcher(clients))


class _DryRun(Exception):
    pass


def _unplaceable(store: Store, fresh: list[Activity], resolver: Resolver) -> set[str]:
    """Keys of the activities with a change no folder is found for: a dry run, rolled back."""
    doubtful: set[str] = set()
    try:
        with store.atomic():
            for activity in fresh:
                for change in activity.changes:
                    try:
                        marks_for_change(change, resolver)
                    except UnresolvableError:
                        doubtful.add(activity.key)
            raise _DryRun
    except _DryRun:
        pass
    return doubtful


def _own(fresh: list[Activity], source: Source, store: Store, resolver: Resolver) -> list[Activity]:
    """From a shared answer, the activities of this library: an item deleted for good that no record
    knows names no folder, so it is this library's only when the library's own query returns it."""
    doubtful = _unplaceable(store, fresh, resolver) if source.confirm is not None else set()
    if not doubtful or source.confirm is None:
        return fresh
    times = [a.time_ms for a in fresh if a.key in doubtful]
    mine = {(a.time_ms, a.changes) for a in source.confirm(min(times) - 1, max(times))}
    return [a for a in fresh if a.key not in doubtful or (a.time_ms, a.changes) in mine]


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


def _start(store: Store, source: Source, overlap_ms: int, write: Writer, *, look_at_all: bool = False) -> Polled:
    # The first poll starts now (the first full scan covers the past). What
    # the next poll's overlap will see again is recorded as handled, and the
    # query itself shows a missing scope at once. ``look_at_all``: no full
    # scan covers the past (a restart after a clock jump): the whole source is
    # marked, in the same transaction as the new cursor.
    started_ms = int(time.time() * 1000)
    past = source.activities(started_ms - overlap_ms)

    def commit() -> list[Mark]:
        _remember(store, past)
        store.set_meta(META_CURSOR, str(started_ms))
        return [Mark(b"", MARK_REASON, recursive=True)] if look_at_all else []

    marks = write(commit)
    log.info("drive feed: started, watching changes from now on")
    return Polled(marks=marks, note="started")


def poll_activities(
    store: Store,
    clients: DriveClients,
    root_id: str,
    overlap_ms: int,
    write: Writer,
    names: Names = DEFAULT_NAMES,
    source: Source | None = None,
) -> Polled:
    """One poll of the Activity feed from the saved cursor; ``source``: where the activities come from
    (default: the library's own query)."""
    source = source or own_source(clients, root_id)
    cursor_text = store.get_meta(META_CURSOR)
    if cursor_text is None:
        return _start(store, source, overlap_ms, write)
    cursor = int(cursor_text)
    if in_future(cursor / 1000):
        # A cursor in the future would hide every activity until that date comes.
        # What happened meanwhile is unknown: start afresh and look at everything.
        tell_jump("the Drive feed's cursor", cursor / 1000, "starting the feed afresh and verifying every folder")
        return _start(store, source, overlap_ms, write, look_at_all=True)
    fetched = source.activities(cursor - overlap_ms)
    handled = _handled_keys(store, [a.key for a in fetched])
    fresh = sorted((a for a in fetched if a.key not in handled), key=lambda a: a.time_ms)
    resolver = Resolver(ItemRecord(store), root_id, source.lookup, names)
    for activity in fresh:
        for change in activity.changes:
            _prefetch(change, resolver)
    resolver.names_ready(t for a in fresh for c in a.changes for t in (c.title, c.old_title) if t)
    new_cursor = max([cursor, *(a.time_ms for a in fresh)])
    mine = _own(fresh, source, store, resolver)

    # A shared answer holds the other libraries' activities too: count those that mark this one.
    counted: list[Activity] = []

    def commit() -> list[Mark]:
        marks: set[Mark] = set()
        unplaced = Unplaced()
        counted.clear()
        for activity in mine:
            own = source.confirm is None
            for change in activity.changes:
                try:
                    got = marks_for_change(change, resolver)
                except UnresolvableError as exc:
                    got = {Mark(b"", MARK_REASON, recursive=True)}
                    unplaced.add(f"{change.kind} {change.title!r} ({exc})")
                own, marks = own or bool(got), marks | got
            counted.extend([activity] if own else [])
        unplaced.tell()
        marks |= unplaced.marks()
        _remember(store, fresh)
        # Keys older than any future query's window can go.
        store.execute("DELETE FROM drive_activity WHERE time_ms < ?", (new_cursor - overlap_ms - 60_000,))
        store.set_meta(META_CURSOR, str(new_cursor))
        return collapse_root(marks)

    marks = write(commit)
    return Polled(len(counted), marks, resolver.calls)
