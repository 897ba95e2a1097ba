"""The link-tree trigger: folders of the link tree that someone else changed.

A link deleted by hand (or by a media server's "delete item") used to stay
missing until the daily full verification. The link tree is a local
filesystem, whose folder mtimes move whenever an entry is added or removed:
graylink records each of its folders' mtime as it left it
(:func:`graylink.links.recording.record_tree_dirs`), and each cycle one
``lstat`` per folder finds those that moved. Each is marked (its index is
current: only the plan is redone), so the next plan repairs what went. A
trigger: it reads the link tree, writes marks, and never touches a link.
"""

from __future__ import annotations

import logging
import os

from graylink.links.tree import racy
from graylink.store.db import Mark, Store

log = logging.getLogger(__name__)

REASON = "link-tree"


def drifted(store: Store, target: bytes) -> tuple[list[bytes], list[bytes]]:
    """The recorded link-tree folders whose mtime moved (or that are gone), and
    those too recently changed to trust: both are planned again."""
    rows = store.execute("SELECT path, mtime_ns, checked_ns FROM link_tree_dir").fetchall()
    if not rows:
        return [], []
    try:
        root_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return [], []  # no link tree (yet): the planner makes what is missing
    moved: list[bytes] = []
    recent: list[bytes] = []
    lstat = os.lstat
    try:
        for raw, mtime_ns, checked_ns in rows:
            path = bytes(raw)
            try:
                now = lstat(path or b".", dir_fd=root_fd).st_mtime_ns
            except OSError:
                moved.append(path)  # gone (or unreadable): planned again, which says what is wrong
                continue
            if now != mtime_ns:
                moved.append(path)
            elif racy(mtime_ns, checked_ns):
                recent.append(path)
    finally:
        os.close(root_fd)
    return moved, recent


def mark_drift(store: Store, target: bytes) -> int:
    """Mark the link-tree folders someone else changed (and the too recent ones); returns
    how many changed."""
    moved, recent = drifted(store, target)
    if moved or recent:
        with store.atomic():
            store.add_marks([Mark(folder, REASON, recursive=False, indexed=True) for folder in moved + recent])
    if moved:
        log.info("link tree: %d folder(s) changed outside graylink, planned again", len(moved))
    return len(moved)
