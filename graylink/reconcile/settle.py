"""Announcing a file once it holds still: new files still being written, files replaced in place.

A video written through an rclone mount with ``--vfs-cache-mode writes`` (or
uploaded slowly) shows in a listing long before it is complete. Its link is
made at once, but the media servers hear of it only once its size and mtime
held still for ``[scan] settle``: announced during the write, a server probes
a partial file and is never asked again. A file whose size or mtime changed
under its name (an upgrade that keeps the name) is announced again, as
``Modified``, once it holds still likewise.

The scanner puts such files on the ``settling`` book
(:meth:`graylink.source.index.Index._settling`); each cycle, after applying,
this module looks at each (one ``lstat``, under a deadline: they are few) and
queues the ones that held still. DB work and one look per file; it never
touches a link.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass

from graylink.config import Config
from graylink.links.planner import Op
from graylink.reconcile.announce import queue_changes
from graylink.reconcile.veto import real_folder
from graylink.source.index import SETTLE_NEW
from graylink.source.rules import Rules
from graylink.source.sourcecheck import CHECK_TIMEOUT
from graylink.store.db import Store
from graylink.system import deadline

log = logging.getLogger(__name__)

Stat = tuple[int, int]  # (size, mtime_ns)
_LOOK_CHUNK = 2000  # files looked at under one deadline: a whole library just written can be waiting


@dataclass(frozen=True, slots=True)
class Settling:
    path: bytes  # relative to the source, and so the link's path in the link tree
    size: int
    mtime_ns: int
    seen_ns: int  # when this size and mtime were first seen
    kind: str  # "new" (no Created yet) | "changed" (a Modified is owed)


def stable(row: Settling, now_ns: int, settle_ns: int) -> bool:
    """Whether a file whose size and mtime are still the row's has held still long enough:
    seen unchanged for ``settle_ns``, or already that old when first seen."""
    return now_ns - row.seen_ns >= settle_ns or row.seen_ns - row.mtime_ns >= settle_ns


def _look(root: bytes, rows: list[Settling]) -> list[Stat | None]:
    """Each file's size and mtime now; None when it is no longer a regular file reached through real folders."""
    folders: dict[bytes, bool | None] = {}
    out: list[Stat | None] = []
    for row in rows:
        if real_folder(root, row.path.rpartition(b"/")[0], folders) is not False:
            out.append(None)
            continue
        try:
            st = os.lstat(root + b"/" + row.path)
        except OSError:
            out.append(None)
            continue
        out.append((st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None)
    return out


def settle(config: Config, store: Store, rules: Rules, should_stop: Callable[[], bool] | None = None) -> int:
    """Queue the announcements of the files that held still; returns how many were queued."""
    rows = [
        Settling(bytes(p), size, mtime, seen, kind)
        for p, size, mtime, seen, kind in store.execute("SELECT path, size, mtime_ns, seen_ns, kind FROM settling")
    ]
    if not rows:
        return 0
    if not config.servers:  # no one to tell
        with store.atomic():
            store.execute("DELETE FROM settling")
        return 0
    wanted = [r for r in rows if rules.wants_dir(r.path.rpartition(b"/")[0]) and rules.wants_file(_name(r.path))]
    root = os.fsencode(config.paths.source).rstrip(b"/")
    looks: list[Stat | None] = []
    for start in range(0, len(wanted), _LOOK_CHUNK):
        chunk = wanted[start : start + _LOOK_CHUNK]

        def look(chunk: list[Settling] = chunk) -> list[Stat | None]:
            return _look(root, chunk)

        try:
            looks += deadline.call(look, CHECK_TIMEOUT, "looking at new files", should_stop)
        except deadline.NoAnswer as exc:
            log.warning("cannot look at %d file(s) waiting to be announced: %s; asked again next run", len(wanted), exc)
            return 0
    now_ns = time.time_ns()
    settle_ns = int(config.scan.settle * 1e9)
    kept = {r.path for r in wanted}
    drop: list[bytes] = [r.path for r in rows if r.path not in kept]
    moved: list[tuple[int, int, int, bytes]] = []
    ready: list[Settling] = []
    for row, now in zip(wanted, looks, strict=True):
        if now is None:
            drop.append(row.path)  # gone, or no video any more: its link's own plan says so
        elif now != (row.size, row.mtime_ns):
            moved.append((now[0], now[1], now_ns, row.path))  # still being written: seen anew
        elif stable(row, now_ns, settle_ns):
            ready.append(row)
    changes = _changes(config, store, ready)
    with store.atomic():
        store.executemany("DELETE FROM settling WHERE path = ?", ((p,) for p in drop + [r.path for r in ready]))
        store.executemany("UPDATE settling SET size = ?, mtime_ns = ?, seen_ns = ? WHERE path = ?", moved)
        _update_index(store, moved)
        if changes:
            queue_changes(config, store, changes)
    if changes:
        log.info("%d file(s) held still: announced to the media servers", len(changes))
    return len(changes)


def _name(path: bytes) -> bytes:
    return path.rpartition(b"/")[2]


def _changes(config: Config, store: Store, ready: list[Settling]) -> list[tuple[Op, bytes]]:
    """The announcements of files that held still and have a link of graylink's."""
    target = os.fsencode(config.paths.target).rstrip(b"/")
    out: list[tuple[Op, bytes]] = []
    for row in ready:
        folder, _, name = row.path.rpartition(b"/")
        if store.execute("SELECT 1 FROM link WHERE dir = ? AND name = ?", (folder, name)).fetchone() is None:
            continue  # no link (a conflict, or not made yet): its create is announced when made
        out.append((Op.CREATE if row.kind == SETTLE_NEW else Op.REPAIR, target + b"/" + row.path))
    return out


def _update_index(store: Store, moved: list[tuple[int, int, int, bytes]]) -> None:
    """What the look saw goes into the index too: on a local filesystem a file
    written in place does not move its folder's mtime, so no walk would."""
    store.executemany(
        "UPDATE file SET size = ?, mtime_ns = ? WHERE name = ? AND dir_id = (SELECT id FROM directory WHERE path = ?)",
        ((size, mtime, _name(path), path.rpartition(b"/")[0]) for size, mtime, _now, path in moved),
    )
