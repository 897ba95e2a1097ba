"""The library a loopback media server keeps: items made by scans of real files, as upstream does.

Followed for Emby / Jellyfin: ``Emby.Server.Implementations/IO/LibraryMonitor.cs``
(a path reported through ``POST /Library/Media/Updated`` is refreshed after
``LibraryMonitorDelay``; paths under no library folder are dropped),
``Emby.Server.Implementations/Library/LibraryManager.cs`` (a new item gets
``DateCreated`` from the FILE's creation time and ``DateLastSaved`` = now when
saved; a file that is gone, a dangling symlink included, removes its item on
the next scan of its folder), and ``RefreshMediaLibraryTask.cs`` (the whole
library scan, the ``RefreshLibrary`` task). For Plex: a partial scan
(``…/refresh?path=``) adds the files below that folder and removes the items
whose files are gone, or puts them in the trash (``deletedAt``) when the
``autoEmptyTrash`` preference is off (python-plexapi ``docs/settingslist.rst``).

A scan is due ``delay`` seconds after it was asked for (``None``: never, a
server that takes the update and drops it); due scans run when the server is
next asked anything, so tests need no timers. ``fs_map`` turns the server's
paths into this machine's (the container's view of the link tree).
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import threading
import time
from dataclasses import dataclass, field

VIDEO = (".mkv", ".mp4", ".avi", ".m4v", ".ts", ".mov")


@dataclass
class Item:
    id: str
    path: str  # as the server sees it
    kind: str  # Movie | Episode
    saved_at: float
    created_at: float
    deleted_at: float | None = None  # Plex: in the trash


@dataclass
class Pending:
    due: float
    path: str | None  # None: every location
    locations: tuple[str, ...]


@dataclass
class MediaLibrary:
    locations: list[str]
    fs_map: dict[str, str] = field(default_factory=dict)  # server prefix -> local folder
    delay: float | None = 0.0
    empty_trash: bool = True  # Plex autoEmptyTrash; Emby/Jellyfin always remove
    items: dict[str, Item] = field(default_factory=dict)
    pending: list[Pending] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))
    lock: threading.RLock = field(default_factory=threading.RLock)

    # -- the server's view of files

    def local(self, path: str) -> str | None:
        for prefix, folder in sorted(self.fs_map.items(), key=lambda kv: -len(kv[0])):
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return folder + path[len(prefix.rstrip("/")) :]
        return None

    def under_library(self, path: str, locations: tuple[str, ...] | None = None) -> bool:
        return any(path == loc or path.startswith(loc.rstrip("/") + "/") for loc in locations or self.locations)

    # -- scans

    def ask(self, path: str | None, locations: tuple[str, ...] | None = None) -> bool:
        """A refresh of ``path`` (None: the whole library) was asked for; False if no library holds it."""
        where = tuple(locations or self.locations)
        if path is not None and not self.under_library(path, where):
            return False
        if self.delay is None:
            return True
        with self.lock:
            self.pending.append(Pending(time.time() + self.delay, path, where))
        return True

    def tick(self) -> None:
        """Run the scans that are due."""
        now = time.time()
        with self.lock:
            due = [p for p in self.pending if p.due <= now]
            self.pending = [p for p in self.pending if p.due > now]
            for scan in due:
                for root in [scan.path] if scan.path is not None else list(scan.locations):
                    self.scan(root, scan.locations)

    def scan(self, root: str, locations: tuple[str, ...] | None = None) -> None:
        """Add the video files at or below ``root``; remove (or trash) items whose files are gone."""
        local = self.local(root)
        now = time.time()
        with self.lock:
            seen: set[str] = set()
            if local is not None and os.path.isdir(local):
                for folder, _dirs, files in os.walk(local, followlinks=True):
                    for name in files:
                        if name.lower().endswith(VIDEO) and os.path.exists(os.path.join(folder, name)):
                            rel = os.path.relpath(os.path.join(folder, name), local)
                            seen.add(root.rstrip("/") + "/" + rel)
            elif local is not None and os.path.exists(local) and root.lower().endswith(VIDEO):
                seen.add(root)
            for path in seen:
                if path not in self.items and self.under_library(path, locations):
                    self.add(path, now)
                elif path in self.items:
                    self.items[path].deleted_at = None
            for path in [p for p in self.items if p == root or p.startswith(root.rstrip("/") + "/")]:
                if path not in seen:
                    if self.empty_trash:
                        del self.items[path]
                    elif self.items[path].deleted_at is None:
                        self.items[path].deleted_at = now

    def add(self, path: str, now: float | None = None) -> Item:
        now = time.time() if now is None else now
        kind = "Episode" if "/tv" in path.lower() else "Movie"
        item = Item(str(next(self.ids)), path, kind, now, now - 86400 * 30)
        self.items[path] = item
        return item

    def fill(self, count: int, under: str) -> None:
        """``count`` old items (a large library), saved long ago."""
        old = time.time() - 86400 * 365
        with self.lock:
            for n in range(count):
                item = self.add(f"{under.rstrip('/')}/Old {n // 10}/Old {n}.mkv", old)
                item.saved_at = old

    def newest_saved(self, since: float | None, kinds: set[str] | None) -> list[Item]:
        with self.lock:
            items = [
                i
                for i in self.items.values()
                if (since is None or i.saved_at >= since) and (not kinds or i.kind in kinds)
            ]
        return sorted(items, key=lambda i: (i.saved_at, i.id), reverse=True)


def iso(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def parse_iso(text: str) -> float:
    text = text.strip().replace("Z", "+00:00")
    if "." in text:
        head, _, tail = text.partition(".")
        digits = "".join(itertools.takewhile(str.isdigit, tail))
        text = head + "." + digits[:6].ljust(6, "0") + tail[len(digits) :]
    return dt.datetime.fromisoformat(text).timestamp()
