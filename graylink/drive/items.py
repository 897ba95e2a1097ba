"""What the feed knows of the Drive items under the root, and the one path resolver.

Folder ID → path under the source root is kept in the DB (``drive_folder``);
a poll reads it, adds and drops entries, and commits them with its marks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graylink.db import Store, join, subtree_bounds
from graylink.drive.google import FOLDER_MIME, NUM_RETRIES
from graylink.drive.names import encode_name

MAX_DEPTH = 256  # deeper than any real tree: a longer parents chain is a cycle


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
