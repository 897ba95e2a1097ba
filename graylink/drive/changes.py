"""The Drive Changes API feed (v3 ``changes``): what rclone itself polls, with rclone's own token.

The feed starts with ``changes.getStartPageToken`` (saved with the index),
then each poll follows ``changes.list`` from the saved token, page by page,
until ``newStartPageToken``. Each page is written in one transaction: its
marks, the item record's updates and the token to resume from, so a kill
between pages re-reads at most the page it was on. A change tells only where
an item is now; where it was comes from the item record (``items``).

Page tokens do not expire (Drive v3: "The page token doesn't expire"); a
token Google refuses all the same (400 / 404: another account's, or a
damaged database) starts over from a fresh token and marks the whole source
(a full verification), with one WARNING.

``restrictToMyDrive`` is sent as rclone sends it (``backend/drive/drive.go``
``changeNotifyRunner``: ``RestrictToMyDrive(!SharedWithMe)``): changes of
files shared with the user but not in My Drive are none of the mount's, and
Google leaves them out instead of graylink fetching their parents.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from graylink.drive.activity import rfc3339_to_ms
from graylink.drive.batch import MARK_REASON, Polled, Unplaced, Writer, collapse_root
from graylink.drive.google import DriveClients, FeedError
from graylink.drive.items import (
    ITEM_FIELDS,
    ItemInfo,
    ItemRecord,
    Known,
    Resolver,
    UnresolvableError,
    fetcher,
    item_info,
)
from graylink.drive.items import settle as settle_item
from graylink.drive.names import DEFAULT_NAMES, Names
from graylink.drive.seed import knows_absence, record_listed, seed_step
from graylink.drive.shared_changes import SharedFeed
from graylink.store.db import Mark, Store

log = logging.getLogger(__name__)

META_PAGE_TOKEN = "drive.page_token"  # noqa: S105 - a meta key, not a secret
META_NEWEST = "drive.newest_change_ms"
PAGE_SIZE = 1000
MAX_PAGES = 50  # one poll handles up to 50k changes; past that it says so and the next poll goes on
CHANGE_FIELDS = f"nextPageToken,newStartPageToken,changes(changeType,fileId,removed,time,file({ITEM_FIELDS}))"


@dataclass(frozen=True)
class DriveChange:
    file_id: str
    removed: bool  # deleted for good, or no longer visible to this token
    time_ms: int | None
    info: ItemInfo | None


def parse_change(raw: Any) -> DriveChange | None:
    """A v3 ``Change`` → DriveChange; None for what does not concern files (a shared drive's own change)."""
    if not isinstance(raw, dict):
        raise FeedError("the answer to changes.list is malformed (a change is not an object)")
    if raw.get("changeType", "file") != "file":
        return None
    file_id = raw.get("fileId")
    if not isinstance(file_id, str) or not file_id:
        raise FeedError("the answer to changes.list is malformed (a change without a fileId)")
    when = raw.get("time")
    try:
        time_ms = rfc3339_to_ms(when) if isinstance(when, str) else None
    except ValueError:
        time_ms = None
    removed = raw.get("removed") is True
    data = raw.get("file")
    info = item_info(data, "changes.list") if data is not None and not removed else None
    return DriveChange(file_id, removed or info is None, time_ms, info)


@dataclass(frozen=True)
class Page:
    changes: list[DriveChange]
    next_token: str | None
    new_start: str | None


def _drive_id(drive_id: str) -> dict[str, Any]:
    return {"driveId": drive_id} if drive_id else {}


def start_token(clients: DriveClients, drive_id: str) -> str:
    request = clients.drive.changes().getStartPageToken(supportsAllDrives=True, **_drive_id(drive_id))
    token = clients.call(request, "changes.getStartPageToken").get("startPageToken")
    if not isinstance(token, str) or not token:
        raise FeedError("the answer to changes.getStartPageToken is malformed (no startPageToken)")
    return token


def list_page(clients: DriveClients, token: str, drive_id: str, restrict: bool = True) -> Page:
    request = clients.drive.changes().list(
        restrictToMyDrive=restrict,
        pageToken=token,
        pageSize=PAGE_SIZE,
        includeRemoved=True,
        supportsAllDrives=True,
        includeItemsFromAllDrives=True,
        fields=CHANGE_FIELDS,
        **_drive_id(drive_id),
    )
    answer = clients.call(request, "changes.list")
    raw = answer.get("changes") or []
    if not isinstance(raw, list):
        raise FeedError("the answer to changes.list is malformed (changes is not a list)")
    next_token, new_start = answer.get("nextPageToken"), answer.get("newStartPageToken")
    for value in (next_token, new_start):
        if value is not None and (not isinstance(value, str) or not value):
            raise FeedError("the answer to changes.list is malformed (a page token is not a string)")
    if next_token is None and new_start is None:
        raise FeedError("the answer to changes.list is malformed (neither nextPageToken nor newStartPageToken)")
    changes = [c for c in (parse_change(r) for r in raw) if c is not None]
    return Page(changes, next_token, new_start)


def marks_for(change: DriveChange, resolver: Resolver) -> set[Mark]:
    """Record where the item is now and return the marks; UnresolvableError when that cannot be known."""
    record = resolver.record
    was = record.get(change.file_id)
    if change.file_id == resolver.root_id:
        # The root's own name and place mean nothing on the mount; gone, it takes everything with it.
        gone = change.info is None or change.info.trashed
        return {Mark(b"", MARK_REASON, recursive=True)} if gone else set()
    if change.info is None:
        if was is None and knows_absence(record.store, change.time_ms):
            return set()  # the record lists every item under the root: this one never was
        if was is None:
            raise UnresolvableError(f"item {change.file_id} was deleted for good, and the item record never met it")
        return settle_item(record, change.file_id, was, None)
    now: Known = resolver.place(change.info)
    return settle_item(record, change.file_id, was, now)


def _prefetch(page: Page, resolver: Resolver) -> None:
    for change in page.changes:
        if change.info is not None:
            resolver.learn(change.info)
    for change in page.changes:
        if change.info is not None and change.info.parents:
            resolver.prefetch(change.info.parents[0])


def _page_step(store: Store, page: Page, resolver: Resolver, resume: str) -> Callable[[], list[Mark]]:
    def step() -> list[Mark]:
        marks: set[Mark] = set()
        unplaced = Unplaced()
        for change in page.changes:
            try:
                marks |= marks_for(change, resolver)
            except UnresolvableError as exc:
                unplaced.add(f"a change ({exc})")
        unplaced.tell()
        marks |= unplaced.marks()
        times = [c.time_ms for c in page.changes if c.time_ms is not None]
        if times:
            newest = max([*times, int(store.get_meta(META_NEWEST, "0") or 0)])
            store.set_meta(META_NEWEST, str(newest))
        store.set_meta(META_PAGE_TOKEN, resume)
        return collapse_root(marks)

    return step


def _reset(store: Store, token: str, why: str) -> Callable[[], list[Mark]]:
    def step() -> list[Mark]:
        ItemRecord(store).clear()  # changes were missed: what it says may be stale
        store.set_meta(META_PAGE_TOKEN, token)
        return [Mark(b"", MARK_REASON, recursive=True)]

    log.warning("drive feed: %s; starting over from a fresh page token and verifying the whole source", why)
    return step


def _invalid_token(exc: Exception) -> bool:
    from googleapiclient.errors import HttpError

    return isinstance(exc, HttpError) and exc.resp.status in (400, 404)


def _seed(
    store: Store, clients: DriveClients, root_id: str, drive_id: str, write: Writer, names: Names, polled: Polled
) -> None:
    listed, _ = seed_step(store, clients, root_id, drive_id, names)
    polled.seed_calls = listed.calls
    if listed.folders:
        write(lambda: record_listed(store, listed, root_id))


def poll_changes(
    store: Store,
    clients: DriveClients,
    root_id: str,
    drive_id: str,
    write: Writer,
    names: Names = DEFAULT_NAMES,
    shared: SharedFeed | None = None,
) -> Polled:
    """One poll of the Changes feed from the saved page token; with ``shared``, the pages
    another library on the same Drive listed in this interval are read, not listed again."""
    token = store.get_meta(META_PAGE_TOKEN)
    if not token:
        fresh = start_token(clients, drive_id)

        def begin() -> list[Mark]:
            store.set_meta(META_PAGE_TOKEN, fresh)
            return []

        write(begin)
        log.info("drive feed: started, watching changes from now on")
        polled = Polled(note="started")
        _seed(store, clients, root_id, drive_id, write, names, polled)
        return polled
    polled = Polled()
    if shared is not None:
        token = shared.start(token)  # another library's older token: its pages serve both
    seen = {token}
    resolver = Resolver(ItemRecord(store), root_id, fetcher(clients), names)

    def listed(from_token: str) -> Page:
        return list_page(clients, from_token, drive_id)

    for number in range(MAX_PAGES):
        try:
            page = listed(token) if shared is None else cast(Page, shared.page(token, listed))
        except Exception as exc:
            if number > 0 or not _invalid_token(exc):
                raise
            fresh = start_token(clients, drive_id)
            why = "Google refused the saved page token (they do not expire: another account's, or a damaged database)"
            polled.marks += write(_reset(store, fresh, why))
            polled.note = "token reset"
            return polled
        if page.next_token is not None and page.next_token in seen:
            raise FeedError("Google's change pages loop (the same page token came back); the saved token stays")
        _prefetch(page, resolver)
        resolver.names_ready()
        resume = page.new_start or page.next_token or token
        polled.marks += write(_page_step(store, page, resolver, resume))
        polled.events += len(page.changes)
        polled.lookups = resolver.calls
        if page.next_token is None:
            _seed(store, clients, root_id, drive_id, write, names, polled)  # caught up: list a few folders
            return polled
        seen.add(page.next_token)
        token = page.next_token
    raise FeedError(
        f"more than {MAX_PAGES} pages of changes in one poll; what was read is saved, the rest waits for the next poll"
    )
