"""What the feed knows of the Drive items it met, and the one path resolver.

The item record (table ``drive_item``) maps an item ID to its path under the
source root as the mount shows it (NULL: outside the root), for folders and
for files. Both feeds read it to know where an item *was* (a change only
tells where it is now), and update it in the transaction that writes their
marks. The resolver places items: from the record, else from what this poll
learned (the changes themselves, ``files.get`` answers fetched beforehand).

Resolving runs in two steps so that no network call happens inside a
transaction: ``prefetch`` (network, no writes) learns every unknown ancestor,
then ``folder_path`` (inside the transaction) computes and records paths.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from graylink.drive.batch import MARK_REASON
from graylink.drive.google import FOLDER_MIME, SHORTCUT_MIME, DriveClients, FeedError
from graylink.drive.names import DEFAULT_NAMES, Names
from graylink.store.db import Mark, Store, join, parent_of, subtree_bounds

META_SEED_STARTED = "drive.seed_started"  # the record began listing the root's tree (graylink.drive.seed)
META_SEED_DONE = "drive.seed_done_ms"  # when it last listed a folder of that first listing
MAX_DEPTH = 256  # deeper than any real tree: a longer parents chain is a cycle


class UnresolvableError(Exception):
    """An item whose place under the root cannot be known (gone, forbidden, a cycle)."""


@dataclass(frozen=True)
class ItemInfo:
    """An item as Google describes it now."""

    id: str
    name: str
    parents: tuple[str, ...]
    is_folder: bool
    trashed: bool
    target: str = ""  # a folder shortcut's target folder: the mount shows its content at the shortcut
    shortcut: bool = False  # a shortcut (to a file or a folder): hidden on a mount with skip_shortcuts


@dataclass(frozen=True)
class Known:
    """An item as the record knows it."""

    path: bytes | None  # None: outside the root
    folder: bool
    trashed: bool = False

    @property
    def visible(self) -> bytes | None:
        """Where the mount shows it (rclone hides trashed items), None when it does not."""
        return None if self.trashed else self.path


class ItemRecord:
    """The ``drive_item`` rows. Writes belong inside the caller's transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, item_id: str) -> Known | None:
        row = self.store.execute("SELECT path, folder, trashed FROM drive_item WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            return None
        return Known(None if row[0] is None else bytes(row[0]), bool(row[1]), bool(row[2]))

    def put(self, item_id: str, known: Known) -> None:
        # A folder that stays under the root keeps "listed" (its children moved with it, move_below);
        # one that comes in from outside has children the record never met.
        self.store.execute(
            "INSERT INTO drive_item (id, path, folder, trashed) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET path = excluded.path, folder = excluded.folder, "
            "trashed = excluded.trashed, listed = CASE WHEN excluded.path IS NULL OR drive_item.path IS NULL "
            "THEN 0 ELSE drive_item.listed END",
            (item_id, known.path, int(known.folder), int(known.trashed)),
        )

    def forget(self, item_id: str) -> None:
        self.store.execute("DELETE FROM drive_item WHERE id = ?", (item_id,))

    def move_below(self, old: bytes, new: bytes | None) -> None:
        """Everything recorded below folder ``old`` now lies below ``new``; None: it left the root."""
        lo, hi = subtree_bounds(old)
        if new is None:
            self.store.execute("DELETE FROM drive_item WHERE path >= ? AND path < ?", (lo, hi))
            return
        # In Python: SQLite's || turns BLOBs into TEXT, which no longer compares with BLOB paths.
        rows = self.store.execute("SELECT id, path FROM drive_item WHERE path >= ? AND path < ?", (lo, hi)).fetchall()
        cut = len(old)
        self.store.executemany(
            "UPDATE drive_item SET path = ? WHERE id = ?",
            [(new + bytes(path)[cut:], item_id) for item_id, path in rows],
        )

    def forget_outside(self) -> None:
        """A folder came into the root: items recorded as outside may lie below it now."""
        self.store.execute("DELETE FROM drive_item WHERE path IS NULL")

    def clear(self) -> None:
        self.store.execute("DELETE FROM drive_item")
        self.store.execute("DELETE FROM meta_value WHERE key IN (?, ?)", (META_SEED_STARTED, META_SEED_DONE))

    def count(self) -> int:
        return int(self.store.execute("SELECT count(*) FROM drive_item").fetchone()[0])


Fetch = Callable[[str], "ItemInfo | None"]  # files.get; None when Google says the item is gone

ITEM_FIELDS = "id,name,parents,mimeType,trashed,shortcutDetails"


def item_info(data: Any, what: str) -> ItemInfo:
    """A Drive v3 ``File`` resource → ItemInfo; FeedError when it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise FeedError(f"the answer to {what} is malformed (an item without an id)")
    parents = data.get("parents") or []
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise FeedError(f"the answer to {what} is malformed (parents of {data['id']} is not a list of IDs)")
    mime = data.get("mimeType")
    shortcut = data.get("shortcutDetails")
    target = ""
    if mime == SHORTCUT_MIME and isinstance(shortcut, dict):
        mime = shortcut.get("targetMimeType")  # rclone shows a folder shortcut as a folder
        target = str(shortcut.get("targetId") or "") if mime == FOLDER_MIME else ""
    return ItemInfo(
        id=data["id"],
        name=str(data.get("name", "")),
        parents=tuple(parents),
        is_folder=mime == FOLDER_MIME,
        trashed=data.get("trashed") is True,
        target=target,
        shortcut=data.get("mimeType") == SHORTCUT_MIME,
    )


def fetcher(clients: DriveClients) -> Fetch:
    """files.get of one item; None for 404 (gone) and 403 (not visible to this token)."""

    def fetch(item_id: str) -> ItemInfo | None:
        from googleapiclient.errors import HttpError

        request = clients.drive.files().get(fileId=item_id, fields=ITEM_FIELDS, supportsAllDrives=True)
        try:
            return item_info(clients.call(request, "files.get"), "files.get")
        except HttpError as exc:
            if exc.resp.status in (403, 404) and not _rate_limited(exc):
                return None
            raise

    return fetch


def _rate_limited(exc: Any) -> bool:
    from graylink.drive.google import retry_wait

    return retry_wait(exc, 1) is not None


class Resolver:
    """Item IDs → paths under the root: the record first, then this poll's knowledge."""

    def __init__(self, record: ItemRecord, root_id: str, fetch: Fetch, names: Names = DEFAULT_NAMES) -> None:
        self.record = record
        self.names = names  # stored names → the mount's (rclone's encoding, a crypt layer)
        self.root_id = root_id
        self.fetch = fetch
        self.infos: dict[str, ItemInfo] = {}
        self.gone: set[str] = set()
        self.calls = 0

    def learn(self, info: ItemInfo) -> None:
        self.infos[info.id] = info
        self.gone.discard(info.id)

    def info(self, item_id: str) -> ItemInfo | None:
        """What Google says of the item now (fetched once per poll); None when it is gone."""
        if item_id in self.infos:
            return self.infos[item_id]
        if item_id in self.gone:
            return None
        self.calls += 1
        info = self.fetch(item_id)
        if info is None:
            self.gone.add(item_id)
        else:
            self.infos[item_id] = info
        return info

    def prefetch(self, folder_id: str) -> None:
        """Learn every ancestor of ``folder_id`` that the record does not place (network, no writes)."""
        current: str | None = folder_id
        for _ in range(MAX_DEPTH):
            if current is None or current == self.root_id or self.record.get(current) is not None:
                return
            info = self.info(current)
            if info is None:
                return
            current = info.parents[0] if info.parents else None

    def names_ready(self, extra: Iterable[str] = ()) -> None:
        """Decrypt every name this poll met (a crypt remote: one rclone call), before the transaction."""
        self.names.prefetch([*(info.name for info in self.infos.values()), *extra])

    def shown(self, parent: bytes | None, name: str) -> bytes | None:
        """The path the mount shows for ``name`` in ``parent``; None outside the root or when it is hidden."""
        mount_name = self.names.mount_name(name)
        return None if parent is None or mount_name is None else join(parent, mount_name)

    def _shown_item(self, parent: bytes | None, info: ItemInfo) -> bytes | None:
        if info.shortcut and self.names.skip_shortcuts:
            return None  # rclone's skip_shortcuts: the mount never shows it
        return self.shown(parent, info.name)

    def folder_path(self, folder_id: str, depth: int = 0) -> bytes | None:
        """The folder's path under the root, None when it lies outside. Records what it works out."""
        if folder_id == self.root_id:
            return b""
        known = self.record.get(folder_id)
        if known is not None:
            return known.path
        if depth > MAX_DEPTH:
            raise UnresolvableError(f"parents of {folder_id} form a cycle")
        info = self.infos.get(folder_id)
        if info is None:
            raise UnresolvableError(f"folder {folder_id} is not visible (deleted or not shared)")
        parent = self.folder_path(info.parents[0], depth + 1) if info.parents else None
        path = self._shown_item(parent, info)
        self.record.put(folder_id, Known(path, True, info.trashed))
        return path

    def place(self, info: ItemInfo) -> Known:
        """Where an item is now, from its parents."""
        if info.id == self.root_id:
            return Known(b"", True)
        parent = self.folder_path(info.parents[0]) if info.parents else None
        path = self._shown_item(parent, info)
        if info.target and path is not None:
            # Changes inside the target (usually outside the root) show at the shortcut: the
            # record places the target there, so they mark the shortcut's path.
            self.record.put(info.target, Known(path, True, info.trashed))
        return Known(path, info.is_folder, info.trashed)


def _marks_at(path: bytes, folder: bool) -> set[Mark]:
    """A file's folder; a folder's subtree and the folder holding it."""
    marks = {Mark(parent_of(path), MARK_REASON, recursive=False)} if path else set()
    if folder:
        marks.add(Mark(path, MARK_REASON, recursive=True))
    return marks


def settle(record: ItemRecord, item_id: str, was: Known | None, now: Known | None) -> set[Mark]:
    """Record that an item went from ``was`` to ``now`` (None: gone for good); the marks it calls for.

    The folder it left and the folder it is in are marked (a folder's old and
    new subtrees); an item that stayed in place marks its folder when it is a
    file (its content changed) and nothing when it is a folder. An item the
    record never met (``was`` None) marks where it is placed now, visible or
    trashed: it may have been shown there."""
    folder = (now or was or Known(None, False)).folder
    old, new = (was.visible if was else None), (now.visible if now else None)
    if now is None:
        record.forget(item_id)
    else:
        record.put(item_id, now)
    if folder and was is not None and was.path is not None and (now is None or now.path != was.path):
        record.move_below(was.path, now.path if now is not None else None)
    if folder and was is not None and was.path is None and now is not None and now.path is not None:
        record.forget_outside()
    marks: set[Mark] = set()
    if was is None and now is not None and now.path is not None:
        # Never met (there before the feed began): it may have been shown where it is placed now,
        # so a trash marks its folder as a move or a rename would.
        marks |= _marks_at(now.path, folder)
    if old is not None and old != new:
        marks |= _marks_at(old, folder)
    if new is not None and (new != old or not folder):
        marks |= _marks_at(new, folder) if new != old else {Mark(parent_of(new), MARK_REASON, recursive=False)}
    return marks
