"""The item record's listing of the root's tree, so that a removal it does not know marks nothing.

``changes.list`` tells a removal (deleted for good, or no longer visible) by
its file ID alone. The record places it when it met the item; files that were
there before the feed began it never met, so each such removal would have to
mark the whole source. Instead, once the feed is caught up, each poll lists
the children of a few folders under the root that the record has not listed
yet (``files.list`` with up to 50 parents per query, as rclone's ``ListR``
groups them, ``backend/drive/drive.go`` ``listRGrouping``; 1000 items a page),
within a budget of calls. New folders the feed places join that list. Once
every folder under the root is listed, the record knows every item the mount
can show, and a removal it does not know was never under the root.

A folder listed at time L does not hold what was removed just before L, while
that removal's change may still wait in the feed: a removal the record does
not know, dated before the first complete listing (plus a margin), still marks
the whole source.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from graylink.drive.google import REQUEST_TIMEOUT, DriveClients, FeedError, PollStopped
from graylink.drive.items import (
    ITEM_FIELDS,
    META_SEED_DONE,
    META_SEED_STARTED,
    ItemInfo,
    ItemRecord,
    Known,
    item_info,
)
from graylink.drive.names import DEFAULT_NAMES, Names
from graylink.store.db import Mark, Store, join

log = logging.getLogger(__name__)

GROUPING = 50  # parents per files.list query (rclone's listRGrouping)
PAGE_SIZE = 1000  # files.list's maximum
CALLS_PER_POLL = 20  # files.list calls one poll may spend on the listing
MARGIN_MS = 120_000  # removals dated this close to the first complete listing stay ambiguous
LIST_FIELDS = f"nextPageToken,files({ITEM_FIELDS})"


@dataclass(frozen=True)
class Child:
    id: str
    path: bytes | None  # None: a name the mount does not show
    folder: bool
    target: str = ""  # a folder shortcut's target: the mount shows its content at ``path``


@dataclass(frozen=True)
class Listed:
    """What one poll's listing found: folders whose every child is now known, and those children."""

    folders: list[str]
    children: list[Child]
    calls: int


def complete(store: Store) -> bool:
    """Every folder under the root has its children recorded."""
    if not store.get_meta(META_SEED_STARTED):
        return False
    row = store.execute(
        "SELECT 1 FROM drive_item WHERE folder = 1 AND listed = 0 AND trashed = 0 AND path IS NOT NULL LIMIT 1"
    ).fetchone()
    return row is None


def knows_absence(store: Store, time_ms: int | None) -> bool:
    """A removal of an item the record does not know, at ``time_ms``: was it surely never under the root?

    After the first complete listing, folders that join the list are new or moved in; their
    children are listed within the poll that places them."""
    done = store.get_meta(META_SEED_DONE)
    return time_ms is not None and bool(done) and time_ms > int(str(done)) + MARGIN_MS


def _pending(store: Store, root_id: str, limit: int) -> dict[str, bytes]:
    if not store.get_meta(META_SEED_STARTED):
        return {root_id: b""}
    rows = store.execute(
        "SELECT id, path FROM drive_item WHERE folder = 1 AND listed = 0 AND trashed = 0 AND path IS NOT NULL "
        "ORDER BY length(path), id LIMIT ?",
        (limit,),
    ).fetchall()
    return {str(item_id): bytes(path) for item_id, path in rows}


def _query(parents: list[str]) -> str:
    either = " or ".join("'{}' in parents".format(p.replace("\\", "\\\\").replace("'", "\\'")) for p in parents)
    return f"({either}) and trashed = false"


def list_some(
    store: Store, clients: DriveClients, root_id: str, drive_id: str, budget: int, names: Names = DEFAULT_NAMES
) -> Listed:
    """List the children of folders not listed yet, breadth first, within ``budget`` calls (network;
    no writes). Folders found on the way join the queue, so a poll goes as deep as its budget."""
    queue = _pending(store, root_id, GROUPING * budget)
    done: list[str] = []
    children: list[Child] = []
    calls = 0
    extra: dict[str, Any] = {"supportsAllDrives": True, "includeItemsFromAllDrives": True}
    if drive_id:
        extra.update(corpora="drive", driveId=drive_id)
    while queue:
        group = list(queue)[:GROUPING]
        found: list[tuple[str, ItemInfo]] = []
        token: str | None = None
        while True:
            # The first group of a poll runs to its end whatever its pages, so a big folder cannot
            # stall the listing; later groups wait for the next poll once the budget is spent.
            over = bool(done) and calls >= budget
            if over or clients.caller.deadline - time.monotonic() < 2 * REQUEST_TIMEOUT:
                return Listed(done, children, calls)
            request = clients.drive.files().list(
                q=_query(group), fields=LIST_FIELDS, pageSize=PAGE_SIZE, pageToken=token, **extra
            )
            answer = clients.call(request, "files.list")
            calls += 1
            files = answer.get("files") or []
            if not isinstance(files, list):
                raise FeedError("the answer to files.list is malformed (files is not a list)")
            for raw in files:
                info = item_info(raw, "files.list")
                parent = next((p for p in info.parents if p in group), None)
                if parent is not None and info.id != root_id:
                    found.append((parent, info))
            next_token = answer.get("nextPageToken")
            if not isinstance(next_token, str) or not next_token:
                break
            token = next_token
        names.prefetch(info.name for _, info in found)  # a crypt remote: one rclone call per group
        for parent, info in found:
            shown = names.mount_name(info.name)
            path = None if shown is None else join(queue[parent], shown)
            children.append(Child(info.id, path, info.is_folder, info.target))
            if path is not None and (info.is_folder or info.target):
                queue[info.target or info.id] = path
        for folder in group:
            del queue[folder]
            done.append(folder)
    return Listed(done, children, calls)


def record_listed(store: Store, listed: Listed, root_id: str) -> list[Mark]:
    """Write what ``list_some`` found (inside the poll's transaction): children the record does not
    know are placed; the folders are marked listed. The feed's own knowledge of an item wins: it
    is kept, and the feed's later changes correct it."""
    record = ItemRecord(store)
    store.set_meta(META_SEED_STARTED, "1")
    if root_id in listed.folders:
        record.put(root_id, Known(b"", True))
    rows: list[tuple[object, ...]] = []
    for child in listed.children:
        rows.append((child.id, child.path, int(child.folder or bool(child.target)), 0))
        if child.target:
            rows.append((child.target, child.path, 1, 0))
    store.executemany("INSERT OR IGNORE INTO drive_item (id, path, folder, trashed) VALUES (?, ?, ?, ?)", rows)
    store.executemany("UPDATE drive_item SET listed = 1 WHERE id = ?", [(f,) for f in listed.folders])
    if listed.folders and not store.get_meta(META_SEED_DONE) and complete(store):
        store.set_meta(META_SEED_DONE, str(int(time.time() * 1000)))
        log.info("drive feed: the item record now knows every item under the root (%d)", record.count())
    return []


def seed_step(
    store: Store, clients: DriveClients, root_id: str, drive_id: str, names: Names = DEFAULT_NAMES
) -> tuple[Listed, bool]:
    """One poll's share of the listing (network), or nothing when it is done; (what was found, failed)."""
    if complete(store):
        return Listed([], [], 0), False
    try:
        listed = list_some(store, clients, root_id, drive_id, CALLS_PER_POLL, names)
    except PollStopped:
        raise
    except Exception as exc:  # the feed itself went well: its marks stand, the listing waits
        log.warning("drive feed: listing folders for the item record failed (%s); trying again next poll", exc)
        return Listed([], [], 0), True
    return listed, False
