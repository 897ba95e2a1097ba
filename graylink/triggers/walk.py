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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from graylink.source.index import Index
from graylink.source.listing import MOUNT_ERRNOS, MountGone
from graylink.source.scanner import HANG_TIMEOUT, Interrupted, ProgressFn, Scanner, ScanStats, StopFn
from graylink.source.sourcecheck import SourceGuard
from graylink.source.workers import DaemonPool, Hung, Stopped
from graylink.store.db import Store

log = logging.getLogger(__name__)

# A directory modified this close to (or after) the moment it was listed may
# have changed again within the same timestamp tick: list it again next time.
RACY_NS = 1_000_000_000
_IN_FLIGHT_PER_WORKER = 2  # chunks queued per stat thread


@dataclass
class WalkStats:
    dirs_statted: int = 0
    scan: ScanStats | None = None
    errors: list[str] = field(default_factory=list)  # folders that could not be looked at, reported
    unlistable: list[bytes] = field(default_factory=list)  # ... and retried next run


Found = tuple[list[bytes], list[tuple[bytes, str]]]  # stale folders, and folders that could not be looked at


def _stale_in_chunk(root_fd: int, rows: list[tuple[bytes, int]], alive: Callable[[], None] | None = None) -> Found:
    """Stat each directory of a chunk (relative to the open source root, no symlinks followed).

    ``alive``: told after each stat that the source still answers."""
    stale: list[bytes] = []
    errors: list[tuple[bytes, str]] = []
    lstat = os.lstat
    for path, expected_mtime in rows:
        try:
            if lstat(path or b".", dir_fd=root_fd).st_mtime_ns != expected_mtime:
                stale.append(path)
            if alive is not None:
                alive()
        except FileNotFoundError:
            continue  # its parent's mtime moved too; the parent's listing records the removal
        except OSError as exc:
            if exc.errno in MOUNT_ERRNOS:
                raise MountGone(exc.errno or errno.EIO, f"cannot stat {os.fsdecode(path)}: {exc.strerror}") from None
            errors.append((path, f"cannot stat {os.fsdecode(path)}: {exc.strerror}; its index and links are kept"))
    return stale, errors


def stale_dirs(
    store: Store,
    root: bytes,
    stats: WalkStats,
    workers: int = 1,
    *,
    hang_prone: bool = False,
    should_stop: StopFn | None = None,
    hang_timeout: float = HANG_TIMEOUT,
) -> list[bytes]:
    """Known directories whose mtime moved (or is too recent to trust).

    One stat(2) per directory, relative to the open source root. On a local
    filesystem that is the calling thread's work alone. Where the source can
    hang (FUSE, network: ``trust_dir_mtime = yes`` forced there), the stats
    run in chunks on daemon threads, and a pass in which no stat answers for
    ``hang_timeout`` seconds ends in MountGone: nothing is marked or pruned.
    """
    stale: list[bytes] = []
    chunks = _counted(Index(store).iter_dir_chunks(RACY_NS), stats)
    if hang_prone or workers > 1:
        _collect(_stat_on_daemons(root, chunks, workers, should_stop, hang_timeout), stale, stats)
        return stale
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _collect((_stale_in_chunk(root_fd, chunk) for chunk in chunks), stale, stats)
    finally:
        os.close(root_fd)
    return stale


def _stat_on_daemons(
    root: bytes,
    chunks: Iterator[list[tuple[bytes, int]]],
    workers: int,
    should_stop: StopFn | None,
    hang_timeout: float,
) -> Iterator[Found]:
    """Each chunk stat'ed on a daemon thread, waited for only while the source shows life.

    Each task opens the source root itself, so a thread left blocked on a
    frozen mount holds nothing the caller will close."""
    pool: DaemonPool[Found] = DaemonPool(workers, name="graylink-stat")
    limit = max(1, workers) * _IN_FLIGHT_PER_WORKER
    stop: StopFn = should_stop or (lambda: False)

    def task(chunk: list[tuple[bytes, int]]) -> Found:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return _stale_in_chunk(root_fd, chunk, pool.alive)
        finally:
            os.close(root_fd)

    try:
        more = True
        while more or pool.in_flight:
            while more and pool.in_flight < limit:
                chunk = next(chunks, None)
                if chunk is None:
                    more = False
                else:
                    pool.submit(lambda chunk=chunk: task(chunk))  # type: ignore[misc]
            if not pool.in_flight:
                break
            try:
                yield pool.next_result(hang_timeout, stop)
            except Stopped:
                raise Interrupted("walk stopped on request while looking at folder times") from None
            except Hung:
                raise MountGone(
                    errno.ETIMEDOUT,
                    f"the source {os.fsdecode(root)} does not answer: looking at its folders' times "
                    f"got no answer within {hang_timeout:g}s",
                ) from None
            except OSError as exc:
                if exc.errno in MOUNT_ERRNOS and not isinstance(exc, MountGone):
                    raise MountGone(exc.errno, f"cannot open the source {os.fsdecode(root)}: {exc.strerror}") from None
                raise
    finally:
        pool.close()


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
    hang_timeout: float = HANG_TIMEOUT,
    settle_ns: int = 0,
    wants: Callable[[list[bytes]], list[bytes]] | None = None,
) -> WalkStats:
    """Mark what changed. ``hang_timeout``: how long a source that can hang (``guard.hang_prone``)
    may give no answer before the walk ends in MountGone."""
    stats = WalkStats()
    scanner = Scanner(
        store,
        root,
        workers,
        make_marks=True,
        reason="walk",
        progress=progress,
        should_stop=should_stop,
        guard=guard,
        settle_ns=settle_ns,
        wants=wants,
    )
    if trusted:
        hang_prone = guard is not None and guard.hang_prone
        stale = stale_dirs(
            store, root, stats, workers, hang_prone=hang_prone, should_stop=should_stop, hang_timeout=hang_timeout
        )
        stats.scan = scanner.list_known((path, None) for path in stale)
    else:
        stats.scan = scanner.list_known(Index(store).dir_fingerprints())
    if stats.scan.dirs_changed:
        log.info("walk: %d folder(s) changed", stats.scan.dirs_changed)
    return stats
