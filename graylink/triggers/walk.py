"""The walk trigger: find what changed in the source and mark it dirty.

On a filesystem whose directory mtimes can be trusted, a directory whose
mtime is unchanged is not listed at all: a no-change walk is one stat per
directory. Elsewhere (FUSE, network filesystems) every known directory is
listed, but the index is only touched where the listing's names changed.
The walk updates the index and marks what changed; it never touches links.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass

from graylink.db import Store
from graylink.index import Index
from graylink.listing import MOUNT_ERRNOS, MountGone
from graylink.scanner import ProgressFn, Scanner, ScanStats, StopFn

log = logging.getLogger(__name__)

# A directory modified this close to (or after) the moment it was listed may
# have changed again within the same timestamp tick: list it again next time.
RACY_NS = 1_000_000_000


@dataclass
class WalkStats:
    dirs_statted: int = 0
    scan: ScanStats | None = None


def stale_dirs(store: Store, root: bytes, stats: WalkStats) -> list[bytes]:
    """Known directories whose mtime moved (or is too recent to trust)."""
    stale: list[bytes] = []
    lstat = os.lstat
    for path, mtime_ns, listed_ns in Index(store).iter_dirs():
        stats.dirs_statted += 1
        try:
            st = lstat(root + b"/" + path) if path else os.stat(root)
        except FileNotFoundError:
            continue  # its parent's mtime moved too; the parent's listing records the removal
        except OSError as exc:
            if exc.errno in MOUNT_ERRNOS:
                raise MountGone(exc.errno or errno.EIO, f"cannot stat {os.fsdecode(path)}: {exc.strerror}") from None
            log.error("cannot stat %s: %s", os.fsdecode(path), exc.strerror)
            continue
        if st.st_mtime_ns != mtime_ns or mtime_ns >= listed_ns - RACY_NS:
            stale.append(path)
    return stale


def walk(
    store: Store,
    root: bytes,
    *,
    trusted: bool,
    workers: int,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> WalkStats:
    stats = WalkStats()
    scanner = Scanner(store, root, workers, make_marks=True, reason="walk", progress=progress, should_stop=should_stop)
    if trusted:
        stale = stale_dirs(store, root, stats)
        stats.scan = scanner.list_known((path, None) for path in stale)
    else:
        stats.scan = scanner.list_known(Index(store).dir_fingerprints())
    if stats.scan.dirs_changed:
        log.info("walk: %d folder(s) changed", stats.scan.dirs_changed)
    return stats
