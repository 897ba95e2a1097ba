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
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from graylink.db import Store
from graylink.index import Index
from graylink.listing import MOUNT_ERRNOS, MountGone
from graylink.scanner import ProgressFn, Scanner, ScanStats, StopFn
from graylink.sourcecheck import SourceGuard

log = logging.getLogger(__name__)

# A directory modified this close to (or after) the moment it was listed may
# have changed again within the same timestamp tick: list it again next time.
RACY_NS = 1_000_000_000


@dataclass
class WalkStats:
    dirs_statted: int = 0
    scan: ScanStats | None = None
    errors: list[str] = field(default_factory=list)  # folders that could not be looked at, reported
    unlistable: list[bytes] = field(default_factory=list)  # ... and retried next run


Found = tuple[list[bytes], list[tuple[bytes, str]]]  # stale folders, and folders that could not be looked at


def _stale_in_chunk(root_fd: int, rows: list[tuple[bytes, int]]) -> Found:
    """Stat each directory of a chunk (relative to the open source root, no symlinks followed)."""
    stale: list[bytes] = []
    errors: list[tuple[bytes, str]] = []
    lstat = os.lstat
    for path, expected_mtime in rows:
        try:
            if lstat(path or b".", dir_fd=root_fd).st_mtime_ns != expected_mtime:
                stale.append(path)
        except FileNotFoundError:
            continue  # its parent's mtime moved too; the parent's listing records the removal
        except OSError as exc:
            if exc.errno in MOUNT_ERRNOS:
                raise MountGone(exc.errno or errno.EIO, f"cannot stat {os.fsdecode(path)}: {exc.strerror}") from None
            errors.append((path, f"cannot stat {os.fsdecode(path)}: {exc.strerror}; its index and links are kept"))
    return stale, errors


def stale_dirs(store: Store, root: bytes, stats: WalkStats, workers: int = 1) -> list[bytes]:
    """Known directories whose mtime moved (or is too recent to trust).

    One stat(2) per directory, relative to the open source root, on
    ``workers`` threads (which only help where a stat waits on I/O).
    """
    stale: list[bytes] = []
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        chunks = Index(store).iter_dir_chunks(RACY_NS)
        if workers <= 1:
            results: Iterator[Found] = (
                _stale_in_chunk(root_fd, chunk) for chunk in _counted(chunks, stats)
            )
            _collect(results, stale, stats)
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="graylink-stat") as pool:
                futures = [pool.submit(_stale_in_chunk, root_fd, chunk) for chunk in _counted(chunks, stats)]
                _collect((f.result() for f in futures), stale, stats)
    finally:
        os.close(root_fd)
    return stale


def _counted(chunks: Iterator[list[tuple[bytes, int]]], stats: WalkStats) -> Iterator[list[tuple[bytes, int]]]:
    for chunk in chunks:
        stats.dirs_statted += len(chunk)
        yield chunk


def _collect(results: Iterable[Found], stale: list[bytes], stats: WalkStats) -> None:
    for found, errors in results:
        stale.extend(found)
        for path, message in errors:
            # Not a quiet skip: the run reports it (exit 1) and the folder is looked at again next run.
            log.error("%s", message)
            stats.errors.append(message)
            stats.unlistable.append(path)


def walk(
    store: Store,
    root: bytes,
    *,
    trusted: bool,
    workers: int,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    guard: SourceGuard | None = None,
) -> WalkStats:
    stats = WalkStats()
    scanner = Scanner(
        store, root, workers, make_marks=True, reason="walk", progress=progress, should_stop=should_stop, guard=guard
    )
    if trusted:
        stale = stale_dirs(store, root, stats, workers)
        stats.scan = scanner.list_known((path, None) for path in stale)
    else:
        stats.scan = scanner.list_known(Index(store).dir_fingerprints())
    if stats.scan.dirs_changed:
        log.info("walk: %d folder(s) changed", stats.scan.dirs_changed)
    return stats
