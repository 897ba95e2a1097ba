"""Bring the index up to date with listings of the source.

Listing happens on a pool of ``[scan] workers`` threads, in tasks of whole
subtrees or batches of directories; comparing with the index and writing to
it happens on the calling thread only (SQLite has one writer).
"""

from __future__ import annotations

import errno
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from graylink import story
from graylink.source.index import DirUpdate, FileDiff, Index, compare_files
from graylink.source.listing import Listing, MountGone, Tick, list_many, list_tree, no_tick
from graylink.source.sourcecheck import Interrupted as Interrupted
from graylink.source.workers import DaemonPool, Hung, Stopped
from graylink.store.db import Mark, Store, join, parent_of
from graylink.store.scopes import ancestors

if TYPE_CHECKING:
    from graylink.source.sourcecheck import SourceGuard

log = logging.getLogger(__name__)

# A task lists directories on a worker thread. It returns whether it lists
# whole subtrees (then new subdirectories are its own business), its listings,
# and the subtrees it left for further tasks.
TaskResult = tuple[bool, list[Listing], list[bytes]]
Task = Callable[[Tick], TaskResult]
_IN_FLIGHT_PER_WORKER = 2  # tasks queued per thread: listing outpaces the single writer
ProgressFn = Callable[[int, int], None]  # (dirs listed, files seen), after each listing is processed

_FLUSH_DIRS = 2000
_FLUSH_FILES = 50000
_BATCH_DIRS = 64  # directories per listing task when listing known directories
# No folder listed by any thread for this long: the source does not answer.
# rclone answers a folder's first read only once it has fetched the whole
# listing from Drive (1,000 names a page): a cold folder of 10,000 files
# takes several seconds, and four of them are listed at once.
HANG_TIMEOUT = 20.0


@dataclass
class ScanStats:
    dirs_listed: int = 0
    files_seen: int = 0
    dirs_changed: int = 0
    errors: list[str] = field(default_factory=list)
    unlistable: list[bytes] = field(default_factory=list)  # folders reported in ``errors``


StopFn = Callable[[], bool]


class Scanner:
    """Lists source directories and writes what changed to the index."""

    def __init__(
        self,
        store: Store,
        root: bytes,
        workers: int,
        *,
        make_marks: bool,
        reason: str = "walk",
        progress: ProgressFn | None = None,
        should_stop: StopFn | None = None,
        guard: SourceGuard | None = None,
        settle_ns: int = 0,
        wants: Callable[[list[bytes]], list[bytes]] | None = None,
    ) -> None:
        """``settle_ns``: see :class:`graylink.source.index.Index`.

        ``guard``: the source can hang or be remounted under the scan (FUSE,
        network filesystems). Listing then always runs on daemon threads with a
        hang timeout, and the guard checks the mount before each write."""
        self.store = store
        self.index = Index(store, settle_ns, wants)
        self.root = root
        self.workers = max(1, workers)
        self.make_marks = make_marks
        self.reason = reason
        self.progress = progress
        self._story = story.on()  # asked once: -v logs every folder listed
        self.stats = ScanStats()
        self._ids: dict[bytes, int] = {}  # directories seen in this scan → id
        self._new_dirs: set[bytes] = set()  # directories first indexed by this scan
        self._pending: list[DirUpdate] = []
        self._pending_files = 0
        self._marks: list[Mark] = []
        self.should_stop = should_stop
        self.guard = guard
        self._known: set[bytes] = set()  # every directory the index holds, when listing them all

    # ------------------------------------------------------------ entry points

    def refresh_trees(self, rels: Iterable[bytes]) -> ScanStats:
        """List each subtree completely and make the index match it."""
        self._run([self._tree_task(rel) for rel in rels])
        return self.stats

    def refresh_dirs(self, rels: Iterable[bytes]) -> ScanStats:
        """List each directory (not its known subdirectories) and update the index."""
        self.list_known((rel, None) for rel in rels)
        return self.stats

    def list_known(self, dirs: Iterable[tuple[bytes, bytes | None]]) -> ScanStats:
        """List known directories, each with the fingerprint the index holds (or None)."""
        tasks: list[Task] = []
        batch: list[tuple[bytes, bytes | None]] = []
        for item in dirs:
            self._known.add(item[0])
            batch.append(item)
            if len(batch) >= _BATCH_DIRS:
                tasks.append(self._many_task(batch))
                batch = []
        if batch:
            tasks.append(self._many_task(batch))
        self._run(tasks)
        return self.stats

    # -------------------------------------------------------------- machinery

    def _tree_task(self, rel: bytes) -> Task:
        root, wants = self.root, self.index.wants

        def task(tick: Tick) -> TaskResult:
            listings, left = list_tree(root, rel, tick=tick, wants=wants)
            return True, listings, left

        return task

    # -- stopping at a batch boundary (SIGTERM in the service loop)

    def _stop_requested(self) -> bool:
        return self.should_stop is not None and self.should_stop()

    def _interrupt(self) -> None:
        """Drop the unwritten batch and stop. Nothing is lost: what was written
        is consistent, and the marks that asked for this scan are still stored."""
        self._drop_pending()
        raise Interrupted("scan stopped on request")

    def _drop_pending(self) -> None:
        self._pending = []
        self._pending_files = 0
        self._marks = []

    def _check_mount(self, when: str) -> None:
        """MountGone (the unwritten batch dropped) when the mount is not the one the scan began on."""
        if self.guard is None:
            return
        try:
            self.guard.check(when)
        except MountGone:
            self._drop_pending()
            raise

    def _many_task(self, batch: list[tuple[bytes, bytes | None]]) -> Task:
        root, wants = self.root, self.index.wants
        return lambda tick: (False, list_many(root, batch, tick, wants), [])

    def _run(self, tasks: list[Task]) -> None:
        if not tasks:
            return
        if self.workers == 1 and (self.guard is None or not self.guard.hang_prone):
            self._run_serial(tasks)
        else:
            self._run_pool(tasks)
        self._flush()

    def _run_serial(self, tasks: list[Task]) -> None:
        queue = list(tasks)
        while queue:
            if self._stop_requested():
                self._interrupt()
            queue.extend(self._take(queue.pop()(no_tick)))

    def _run_pool(self, tasks: list[Task]) -> None:
        backlog = deque(tasks)
        limit = self.workers * _IN_FLIGHT_PER_WORKER
        pool: DaemonPool[TaskResult] = DaemonPool(self.workers)
        try:
            while backlog or pool.in_flight:
                # Bounded: finished listings wait in memory only as long as the writer needs.
                while backlog and pool.in_flight < limit:
                    task = backlog.popleft()
                    pool.submit(lambda task=task: task(pool.alive))  # type: ignore[misc]
                try:
                    result = pool.next_result(HANG_TIMEOUT, self._stop_requested)
                except Stopped:
                    self._interrupt()
                except Hung:
                    self._drop_pending()
                    where = os.fsdecode(self.root)
                    raise MountGone(
                        errno.ETIMEDOUT, f"listing the source {where} did not answer within {HANG_TIMEOUT:g}s"
                    ) from None
                backlog.extend(self._take(result))
                if (pool.in_flight or backlog) and self._stop_requested():
                    self._interrupt()
        finally:
            pool.close()

    def _take(self, result: TaskResult) -> list[Task]:
        """Process one task's listings; return the tasks that follow from them."""
        whole_trees, listings, left = result
        follow: list[Task] = [self._tree_task(rel) for rel in left]
        progress = self.progress
        for listing in listings:
            follow.extend(self._process(listing, whole_trees))
            if progress is not None:  # after the listing's files are counted: the summary's figures
                progress(self.stats.dirs_listed, self.stats.files_seen)
        return follow

    def _process(self, listing: Listing, whole_trees: bool) -> list[Task]:
        """Compare one listing with the index; queue the writes; return follow-up tasks."""
        stats = self.stats
        rel = listing.rel
        stats.dirs_listed += 1
        if listing.error:
            shown = os.fsdecode(rel) or "(source root)"
            message = f"cannot list {shown}: {listing.error}; its index and links are kept"
            log.error(message)
            stats.errors.append(message)
            stats.unlistable.append(rel)
            return []
        if self._story:
            seen = None if listing.files is None else len(listing.files)
            story.listed(rel, seen, len(listing.dirs), missing=listing.missing)
        if listing.missing:
            if rel and self.index.dir_row(rel) is not None:
                # ENOENT is also what every folder of a mount answers while it
                # restarts (the empty folder underneath shows): only a mount
                # that is still the same one makes it a deletion.
                self._check_mount(f"while listing {os.fsdecode(rel)}")
                self._queue_removal(rel)
            return []
        new_tasks: list[Task] = []
        if listing.files is None:
            # A known directory whose names are unchanged: nothing to write, unless
            # the index lost a subfolder that the fingerprint still names.
            if self._known:
                self._to_list(sub for sub in (join(rel, name) for name in listing.dirs) if sub not in self._known)
            return new_tasks
        parent = parent_of(rel)
        parent_new = bool(rel) and parent in self._new_dirs
        row = None if parent_new else self.index.dir_row(rel)
        if row is None:
            dir_id = self.index.allocate_dir_id()
            parent_id = self._ids.get(parent) if rel else None
            if rel and parent_id is None:
                parent_row = self.index.dir_row(parent)
                parent_id = parent_row.id if parent_row else None
            self._ids[rel] = dir_id
            self._new_dirs.add(rel)
            files = listing.files
            diff = FileDiff(added=files)  # the listing is not used again: no copy
            update = DirUpdate(
                rel, dir_id, parent_id, True, listing.mtime_ns, listing.fingerprint, listing.listed_ns, diff
            )
            if self.make_marks and not parent_new and rel:
                self._marks.append(Mark(rel, self.reason, recursive=True, indexed=True))
            self._queue(update, len(files))
            stats.files_seen += len(files)
            stats.dirs_changed += 1
            if not whole_trees:
                self._to_list(join(rel, name) for name in listing.dirs)
            return new_tasks
        self._ids[rel] = row.id
        parent_id = self._ids.get(parent) if rel else None
        if rel and parent_id is None:
            parent_row = self.index.dir_row(parent)
            parent_id = parent_row.id if parent_row else None
        stats.files_seen += len(listing.files)
        indexed = self.index.files_of(row.id)
        known_children = self.index.child_dirs(row.id)
        if not listing.files and not listing.dirs and (indexed or known_children):
            self._check_mount(f"while listing {os.fsdecode(rel) or '(source root)'}, which looked empty")
        diff = compare_files(indexed, listing.files)
        listed_children = set(listing.dirs)
        removed = [join(rel, name) for name in known_children if name not in listed_children]
        added = [join(rel, name) for name in listing.dirs if name not in known_children]
        update = DirUpdate(
            rel, row.id, parent_id, False, listing.mtime_ns, listing.fingerprint, listing.listed_ns, diff, removed
        )
        self._queue(update, len(diff.added) + len(diff.changed) + len(diff.removed))
        if diff or removed or added:
            stats.dirs_changed += 1
            if self.make_marks and (diff or removed):
                self._marks.append(Mark(rel, self.reason, recursive=False, indexed=True))
        # A subfolder gone is a subtree to plan, even when the caller plans only
        # this folder (a folder listed alone): its links would otherwise wait
        # for the next full verification. Marked in the transaction that drops it.
        self._marks.extend(Mark(sub, self.reason, recursive=True, indexed=True) for sub in removed)
        if not whole_trees:
            self._to_list(added)
        return new_tasks

    def _to_list(self, subtrees: Iterable[bytes]) -> None:
        """New folders found under a listed one: marked to be listed whole by the
        reconciler, in the same transaction that writes their parent. Were the
        parent written alone, its new fingerprint would hide them from later
        walks after a crash."""
        self._marks.extend(Mark(sub, self.reason, recursive=True, indexed=False) for sub in subtrees)

    def _queue_removal(self, rel: bytes) -> None:
        update = DirUpdate(rel, 0, None, False, 0, b"", 0, FileDiff(), [rel])
        self._pending.append(update)
        # The whole subtree, whatever scope the caller plans (see _process).
        self._marks.append(Mark(rel, self.reason, recursive=True, indexed=True))
        self.stats.dirs_changed += 1

    def _queue(self, update: DirUpdate, weight: int) -> None:
        if update.dir_id == 0:
            return
        self._pending.append(update)
        self._pending_files += weight
        if len(self._pending) >= _FLUSH_DIRS or self._pending_files >= _FLUSH_FILES:
            self._flush()

    def _outside(self, updates: list[DirUpdate], gone: set[bytes]) -> list[DirUpdate]:
        """The updates outside the subtrees this batch drops. A folder inside one
        was listed as present while its parent's listing showed it gone (it went
        and came back between the two): its rows would outlive their folder's.
        It is marked to be listed again, whole, as the new folder it now is."""
        kept: list[DirUpdate] = []
        for update in updates:
            if any(a in gone for a in ancestors(update.rel)):
                self._marks.append(Mark(update.rel, self.reason, recursive=True, indexed=False))
            else:
                kept.append(update)
        return kept

    def _flush(self) -> None:
        if not self._pending and not self._marks:
            return
        # Whatever was listed since the last check is written only if the
        # mount is still the one the scan began on.
        self._check_mount("during the walk")
        updates = [u for u in self._pending if u.dir_id != 0]
        removals = [u for u in self._pending if u.dir_id == 0]
        gone = {u.rel for u in removals}.union(*(u.removed_subdirs for u in updates))
        if gone:
            updates = self._outside(updates, gone)
        with self.store.atomic():
            for removal in removals:
                self.index.delete_subtree(removal.rel)
            self.index.update_database(updates)
            self.store.add_marks(self._marks)
        self._pending = []
        self._pending_files = 0
        self._marks = []
