"""Recording what a cycle did to the link tree, in the cycle's closing transaction."""

from __future__ import annotations

import time
from collections.abc import Collection

from graylink.links.apply import ApplyResult
from graylink.links.planner import Op
from graylink.links.tree import folder_mtimes, racy
from graylink.store.db import Store, subtree_bounds
from graylink.store.scopes import Scope

VideoCounts = list[tuple[Scope, dict[bytes, int]]]


def record_links(store: Store, applied: ApplyResult, recorded_dirs: Collection[bytes] = ()) -> None:
    """The link table and graylink's own folders, as the applier left them.

    ``recorded_dirs``: folders already recorded before they were made (a
    first run makes thousands: writing each row twice is measurable)."""
    upserts: list[tuple[bytes, bytes, bytes]] = []
    deletes: list[tuple[bytes, bytes]] = []
    for action in applied.done:
        folder, _, name = action.link.rpartition(b"/")
        op = action.op
        if op is Op.CREATE or op is Op.REPAIR or op is Op.ADOPT:
            upserts.append((folder, name, action.target))
        elif op is Op.PRUNE or op is Op.FORGET:
            deletes.append((folder, name))
    store.executemany("DELETE FROM link WHERE dir = ? AND name = ?", deletes)
    store.insert_many("INSERT OR REPLACE INTO link (dir, name, target)", 3, upserts)
    store.insert_many(
        "INSERT OR IGNORE INTO link_dir (path)", 1, [(d,) for d in applied.made_dirs if d not in recorded_dirs]
    )
    store.executemany("DELETE FROM link_dir WHERE path = ?", ((d,) for d in applied.removed_dirs))


def record_tree_dirs(store: Store, target: bytes, video_counts: VideoCounts) -> None:
    """Each planned folder of the link tree that holds links, with its mtime as
    this run left it (graylink.triggers.linktree compares them each cycle).

    Only what differs is written: a cycle that changed nothing writes nothing."""
    now = time.time_ns()
    deletes: list[tuple[bytes]] = []
    rows: list[tuple[bytes, int, int]] = []
    for scope, videos in video_counts:
        if scope.recursive:
            lo, hi = subtree_bounds(scope.path)
            cursor = store.execute(
                "SELECT path, mtime_ns, checked_ns FROM link_tree_dir WHERE path = ? OR (path >= ? AND path < ?)",
                (scope.path, lo, hi),
            )
        else:
            cursor = store.execute("SELECT path, mtime_ns, checked_ns FROM link_tree_dir WHERE path = ?", (scope.path,))
        known = {bytes(path): (mtime, checked) for path, mtime, checked in cursor}
        fresh = folder_mtimes(target, videos)
        deletes.extend((path,) for path in known if path not in fresh)
        for folder, mtime in fresh.items():
            old = known.get(folder)
            # A row read too close to its folder's last change is written again once it is not.
            if old is None or old[0] != mtime or racy(old[0], old[1]):
                rows.append((folder, mtime, now))
    store.executemany("DELETE FROM link_tree_dir WHERE path = ?", deletes)
    store.insert_many("INSERT OR REPLACE INTO link_tree_dir (path, mtime_ns, checked_ns)", 3, rows)


def record_video_counts(store: Store, video_counts: VideoCounts) -> None:
    """Each planned folder's number of wanted files (``status`` reads them)."""
    for scope, videos in video_counts:
        if scope.recursive:
            lo, hi = subtree_bounds(scope.path)
            store.execute(
                "UPDATE directory SET videos = 0 WHERE videos != 0 AND (path = ? OR (path >= ? AND path < ?))",
                (scope.path, lo, hi),
            )
        else:
            store.execute("UPDATE directory SET videos = 0 WHERE path = ?", (scope.path,))
        store.executemany("UPDATE directory SET videos = ? WHERE path = ?", ((n, d) for d, n in videos.items()))
