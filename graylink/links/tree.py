"""Reading the link tree on disk (the target): what sits at each link path."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable

from graylink.links.planner import Entry
from graylink.store.db import join

# The folder at the top of the link tree where graylink databases record their
# claims on it (graylink.ownership): never planned, never holds links.
MARKER_DIR = b".graylink"


def reserved(rel_dir: bytes) -> bool:
    """Whether a folder of the link tree is graylink's marker folder (or below it)."""
    return rel_dir == MARKER_DIR or rel_dir.startswith(MARKER_DIR + b"/")


def _path(root: bytes, rel: bytes) -> bytes:
    return root + b"/" + rel if rel else root


def read_dir(root: bytes, rel: bytes) -> dict[bytes, Entry]:
    """The entries of one link-tree directory; empty when it is not a real directory."""
    entries: dict[bytes, Entry] = {}
    try:
        with os.scandir(_path(root, rel)) as it:
            for entry in it:
                try:
                    if entry.is_symlink():
                        entries[entry.name] = Entry("link", os.readlink(entry.path))
                    elif entry.is_dir(follow_symlinks=False):
                        entries[entry.name] = Entry("dir")
                    elif entry.is_file(follow_symlinks=False):
                        entries[entry.name] = Entry("file")
                    else:
                        entries[entry.name] = Entry("other")
                except OSError:
                    entries[entry.name] = Entry("other")
    except (FileNotFoundError, NotADirectoryError):
        pass
    return entries


def walk_dirs(root: bytes, rel: bytes) -> list[bytes]:
    """Every real directory at or below ``rel`` (symlinked directories are not entered), sorted."""
    top = _path(root, rel)
    if not os.path.isdir(top) or os.path.islink(top):
        return []
    found = [rel]
    stack = [rel]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(_path(root, current)) as it:
                subs = [
                    join(current, e.name)
                    for e in it
                    if e.is_dir(follow_symlinks=False) and (current or e.name != MARKER_DIR)
                ]
        except OSError:
            continue
        found.extend(subs)
        stack.extend(subs)
    found.sort()
    return found


# A link-tree folder whose mtime was read within one timestamp tick of its
# last change may change again in that tick unseen: it is looked at once more.
# Linux stamps a local filesystem's changes with its coarse clock, one tick of
# 1-10 ms (HZ 1000-100); a filesystem that keeps whole seconds (ext3's small
# inodes; FAT: two) shows its times as whole seconds. A window of a whole
# second for every folder made the cycle after a first run plan the whole
# library again (2.6 s at 80k files), every folder having changed within it.
TREE_TICK_NS = 20_000_000
TREE_COARSE_TICK_NS = 2_000_000_000


def racy(mtime_ns: int, read_ns: int) -> bool:
    """Whether a folder of this mtime, read at ``read_ns`` (wall clock, taken
    before the read), may still change within the same tick."""
    tick = TREE_COARSE_TICK_NS if mtime_ns % 1_000_000_000 == 0 else TREE_TICK_NS
    return mtime_ns >= read_ns - tick


def folder_mtimes(root: bytes, folders: Iterable[bytes]) -> dict[bytes, int]:
    """The mtime of each folder of the link tree that is a real directory (one lstat each)."""
    out: dict[bytes, int] = {}
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return out
    lstat = os.lstat
    try:
        for rel in folders:
            try:
                st = lstat(rel or b".", dir_fd=root_fd)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                out[rel] = st.st_mtime_ns
    finally:
        os.close(root_fd)
    return out
