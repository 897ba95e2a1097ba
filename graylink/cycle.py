"""One reconcile cycle: triggers → index → plan → apply → record.

The walk (a trigger) marks dirty subtrees; the reconciler refreshes the index
where a mark says it is stale, plans every marked subtree, applies the plan
and records what it did in the same transaction that clears the marks. A
cycle killed at any point leaves its marks, so the next one redoes the work.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import logging
import os
import sqlite3
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from graylink.config import Config
from graylink.db import META_LAST_FULL, Mark, Store, StoredMark, join, parent_of, subtree_bounds
from graylink.errors import ConfigError
from graylink.fsinfo import io_workers, mtime_trusted
from graylink.index import Index
from graylink.links import STOPPED_ON_REQUEST, Applier, ApplyResult
from graylink.linktree import read_dir, walk_dirs
from graylink.listing import MountGone
from graylink.reconciler import (
    TEMP_RE,
    Action,
    Desired,
    LinkSpace,
    Op,
    Plan,
    apply_prune_brake,
    plan_dir,
    withhold_prunes,
)
from graylink.rules import Rules
from graylink.scanner import Interrupted, ProgressFn, Scanner
from graylink.triggers.mount import Health, check_health, ensure_healthy, record_health, refresh_marked
from graylink.triggers.walk import walk

if TYPE_CHECKING:  # the notifier (requests) and the Drive feed load only when configured
    from graylink.drive.feed import DrivePollResult
    from graylink.notify.emby import DeliveryResult

log = logging.getLogger(__name__)

_MAX_REFRESH_ROUNDS = 16
META_SETTINGS = "plan_settings"


@dataclass(frozen=True)
class CycleOptions:
    paths: tuple[bytes, ...] = ()  # subtrees relative to the source; empty = walk and everything dirty
    dry_run: bool = False
    force: bool = False
    full: bool = False  # verify everything now
    progress: ProgressFn | None = None
    remount: bool = True  # run [mount] remount_command when the mount is down (the loop paces it itself)
    # Asked between directories and between actions (the service's SIGTERM):
    # true stops the cycle there, with what is done committed and the marks kept.
    should_stop: Callable[[], bool] | None = None
    # False: reconcile only what is already marked (the service, after the Drive
    # feed or the mount check marked something), without walking the source.
    walk: bool = True
    # False: do not poll the Drive feed first (the service polls it on its own schedule).
    drive: bool = True


@dataclass
class CycleStats:
    dirs_statted: int = 0
    dirs_listed: int = 0
    files_indexed: int = 0
    duration_s: float = 0.0


@dataclass
class CycleResult:
    plan: Plan
    stats: CycleStats
    dry_run: bool
    full: bool = False
    failures: list[str] = field(default_factory=list)
    stopped: str = ""
    applied: ApplyResult | None = None
    health: Health | None = None  # the mount's health when the cycle ended
    emby: DeliveryResult | None = None  # None when no [emby] url is set (or a dry run)
    drive: DrivePollResult | None = None  # the Drive feed's poll, when it ran

    @property
    def mount_healthy(self) -> bool:
        return self.health is None or self.health.ok

    @property
    def exit_code(self) -> int:
        counts = self.plan.counts()
        undelivered = self.emby is not None and not self.emby.ok
        return 1 if counts["conflict"] or counts["braked"] or self.failures or self.stopped or undelivered else 0


@dataclass(frozen=True)
class Scope:
    path: bytes
    recursive: bool


# ----------------------------------------------------------------- helpers


def link_space(config: Config) -> LinkSpace:
    return LinkSpace(
        source=os.fsencode(config.paths.source),
        target=os.fsencode(config.paths.target),
        link_root=os.fsencode(config.link_root),
        relative=config.paths.relative_links,
    )


def rules_of(config: Config) -> Rules:
    return Rules.build(config.rules.extensions, config.rules.exclude_dirs)


def settings_fingerprint(config: Config) -> str:
    return f"{rules_of(config).fingerprint()}|{config.link_root}|{config.paths.relative_links}"


def covers(scope: Scope, path: bytes, recursive: bool) -> bool:
    """Whether ``scope`` includes everything a mark at ``path`` asks for."""
    if scope.recursive:
        return not scope.path or path == scope.path or path.startswith(scope.path + b"/")
    return not recursive and path == scope.path


def collapse(items: list[tuple[bytes, bool]]) -> list[Scope]:
    """The fewest scopes that cover every (path, recursive) pair."""
    ordered = sorted(set(items), key=lambda item: (item[0].count(b"/") if item[0] else -1, not item[1], item[0]))
    scopes: list[Scope] = []
    for path, recursive in ordered:
        if not any(covers(s, path, recursive) for s in scopes):
            scopes.append(Scope(path, recursive))
    return scopes


def _grouped(rows: Iterator[tuple[Any, ...]], tag: int) -> Iterator[tuple[bytes, int, list[tuple[Any, ...]]]]:
    """Rows sorted by their first column, as (that column, tag, rows) per value."""
    for key, group in itertools.groupby(rows, key=itemgetter(0)):
        yield key, tag, list(group)


def owned_rows(store: Store, scope: Scope) -> Iterator[tuple[bytes, bytes, bytes]]:
    if scope.recursive:
        lo, hi = subtree_bounds(scope.path)
        cursor = store.execute(
            "SELECT dir, name, target FROM link WHERE dir = ? OR (dir >= ? AND dir < ?) ORDER BY dir",
            (scope.path, lo, hi),
        )
    else:
        cursor = store.execute("SELECT dir, name, target FROM link WHERE dir = ?", (scope.path,))
    for d, name, target in cursor:
        yield bytes(d), bytes(name), bytes(target)


def plan_scope(
    store: Store, space: LinkSpace, rules: Rules, scope: Scope, videos: dict[bytes, int] | None = None
) -> list[Action]:
    """Plan one scope, directory by directory, streaming the index and the link table.

    ``videos`` (when given) receives the number of wanted files of each folder
    that has any: planning counts them anyway, and the index keeps the counts
    so that ``status`` need not apply the rules to every file."""
    index = Index(store)
    target_dirs = walk_dirs(space.target, scope.path) if scope.recursive else [scope.path]
    wants_file = rules.wants_file
    wanted = (
        (d, 0, [n for n in names if wants_file(n)]) for d, names in index.names_by_dir(scope.path, scope.recursive)
    )
    streams: list[Iterator[tuple[bytes, int, list[Any]]]] = [
        wanted,
        _grouped(owned_rows(store, scope), 1),
        ((d, 2, []) for d in target_dirs),
    ]
    actions: list[Action] = []
    merged = heapq.merge(*streams, key=itemgetter(0))
    for rel_dir, items in itertools.groupby(merged, key=itemgetter(0)):
        desired: dict[bytes, Desired] = {}
        owned: dict[bytes, bytes] = {}
        on_disk = False
        for _, tag, rows in items:
            if tag == 0:
                if rows and rules.wants_dir(rel_dir):
                    for name in rows:
                        rel = join(rel_dir, name)
                        desired[name] = Desired(space.link_target(rel), rel)
            elif tag == 1:
                owned.update((row[1], row[2]) for row in rows)
            else:
                on_disk = True
        if videos is not None and desired:
            videos[rel_dir] = len(desired)
        if not on_disk and not owned and scope.recursive:
            # Nothing on disk and nothing recorded: every wanted link is a create.
            actions.extend(Action(Op.CREATE, d.source, d.target, d.source) for d in desired.values())
            continue
        actual = read_dir(space.target, rel_dir) if on_disk or not scope.recursive else {}
        actions.extend(plan_dir(space, rel_dir, desired, actual, owned))
    return actions


@contextmanager
def scratch_copy(store: Store | None) -> Iterator[Store]:
    """A throw-away copy of the database for a dry run (the real one is never written)."""
    with tempfile.TemporaryDirectory(prefix="graylink-dry-run-") as tmp:
        path = os.path.join(tmp, "dry-run.db")
        if store is not None:
            dst = sqlite3.connect(path)
            try:
                store.db.connection().backup(dst)
            finally:
                dst.close()
        copy = Store(path)
        try:
            yield copy
        finally:
            copy.close()


# ------------------------------------------------------------------ cycle


class Cycle:
    def __init__(self, config: Config, store: Store, options: CycleOptions) -> None:
        self.config = config
        self.store = store
        self.options = options
        self.space = link_space(config)
        self.rules = rules_of(config)
        self.root = os.fsencode(config.paths.source)
        self.stats = CycleStats()
        self.failures: list[str] = []
        self.full = False
        self.mount_ok = True
        self._path_marks: list[StoredMark] = []
        self.workers = io_workers(config.paths.source, config.scan.workers)
        self.video_counts: list[tuple[Scope, dict[bytes, int]]] = []

    def run(self) -> CycleResult:
        started = time.monotonic()
        if not self._index_has_files():
            # Nothing indexed yet, so nothing to protect: a missing source is a
            # bad config. Once indexed, a missing source is a dropped mount
            # (e.g. the source lies below an unmounted mount point).
            self._check_source()
        # A dry run may not remount: it changes nothing, the mount included.
        health = ensure_healthy(
            self.config, self.store, allow_remount=self.options.remount and not self.options.dry_run
        )
        if not health.ok:
            # Walking a dropped mount would read "everything deleted" into the
            # index: touch nothing, keep every mark, report.
            self.failures.append(f"mount check {health.failed_check} failed: {health.message}")
            self.stats.duration_s = round(time.monotonic() - started, 6)
            return CycleResult(Plan(), self.stats, self.options.dry_run, False, self.failures, health=health)
        self._check_target()
        drive = self._poll_drive()
        try:
            marks = self._collect_marks()
            refresh_marked(self.config, marks)
            marks = self._refresh(marks)
            scopes = collapse([(m.path, m.recursive) for m in marks])
        except MountGone as exc:
            record_health(self.store, Health(False, "source-listable", str(exc), dead=True))
            raise
        except Interrupted:
            return self._stopped(started)
        plan = Plan()
        for scope in scopes:
            if self._stop_requested():
                return self._stopped(started)
            videos: dict[bytes, int] = {}
            plan.actions.extend(plan_scope(self.store, self.space, self.rules, scope, videos))
            self.video_counts.append((scope, videos))
        # The mount can drop while we walk; a clean unmount then reads as
        # deletions, so health is checked again right before any prune.
        health = check_health(self.config, self.store)
        if not health.ok:
            record_health(self.store, health)
            message = f"mount check {health.failed_check} failed: {health.message}"
            log.error("%s; nothing was pruned and dirty marks are kept", message)
            withhold_prunes(plan, message)
            self.failures.append(message)
            self.mount_ok = False
        owned_total = self.store.count("link")
        if not self.options.force:
            apply_prune_brake(plan, owned_total, self.config.reconcile.max_prune_fraction)
        result = CycleResult(
            plan, self.stats, self.options.dry_run, self.full, self.failures, health=health, drive=drive
        )
        if plan.brake_reason and health.ok:
            log.error("prune brake: %s", plan.brake_reason)
        if not self.options.dry_run:
            self._apply_and_record(plan, marks, result)
            # On a stop request the queue waits for the next run: no retries with backoff now.
            if self.config.emby.url and not self._stop_requested():
                result.emby = self._notify()
        self.stats.duration_s = round(time.monotonic() - started, 6)
        return result

    def _stop_requested(self) -> bool:
        return self.options.should_stop is not None and self.options.should_stop()

    def _stopped(self, started: float) -> CycleResult:
        self.stats.duration_s = round(time.monotonic() - started, 6)
        return CycleResult(Plan(), self.stats, self.options.dry_run, self.full, self.failures, STOPPED_ON_REQUEST)

    # -- steps

    def _index_has_files(self) -> bool:
        return self.store.execute("SELECT 1 FROM file LIMIT 1").fetchone() is not None

    def _check_target(self) -> None:
        """The link tree's root must be a directory, or be creatable (not in a dry run)."""
        target = self.config.paths.target
        if os.path.isdir(target):
            return
        if os.path.lexists(target):
            raise ConfigError(f"[paths] target {target} exists and is not a directory")
        if self.options.dry_run:
            parent = os.path.dirname(target)
            while not os.path.lexists(parent):
                parent = os.path.dirname(parent)
            if not os.path.isdir(parent):
                raise ConfigError(f"[paths] target {target} cannot be created: {parent} is not a directory")
            return
        try:
            os.makedirs(target)
        except OSError as exc:
            raise ConfigError(f"[paths] target {target} cannot be created: {exc.strerror}") from None

    def _check_source(self) -> None:
        source = self.config.paths.source
        try:
            is_dir = stat.S_ISDIR(os.stat(source).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            is_dir = False
        except OSError:
            return  # a dead or hung mount: the health gate reports it
        if not is_dir:
            raise ConfigError(f"[paths] source {source} is not a directory (or does not exist)")

    def _poll_drive(self) -> DrivePollResult | None:
        """One poll of the Drive feed, before the walk: its marks (indexed=False) make
        the refresh re-list exactly the folders it names, even where the walk skips.
        A failed poll is reported and the cycle goes on with the walk."""
        if not self.config.drive.enabled or self.options.paths or not self.options.drive:
            return None
        from graylink.drive.feed import poll_drive

        result = poll_drive(self.config, self.store)
        if result.error is not None:
            self.failures.append(f"drive feed: {result.error}")
        return result

    def _collect_marks(self) -> list[StoredMark]:
        store = self.store
        if self.options.paths:
            now = time.time()
            self._path_marks = [StoredMark(0, p, "path", now, True, False) for p in self.options.paths]
            return self._current_marks()
        with store.atomic():
            if store.is_empty():
                store.add_marks([Mark(b"", "first-run")])
            elif self.options.full or self._full_verify_due():
                store.add_marks([Mark(b"", "full-verify")])
            settings = settings_fingerprint(self.config)
            recorded = store.get_meta(META_SETTINGS)
            if recorded != settings:
                if recorded is not None:
                    log.info("link rules or link targets changed: re-planning every link")
                    store.add_marks([Mark(b"", "settings", indexed=True)])
                store.set_meta(META_SETTINGS, settings)
        pending = store.pending_marks()
        if self.options.walk and not any(m.path == b"" and m.recursive and not m.indexed for m in pending):
            walked = walk(
                store,
                self.root,
                trusted=mtime_trusted(self.config.paths.source, self.config.scan.trust_dir_mtime),
                workers=self.workers,
                progress=self.options.progress,
                should_stop=self.options.should_stop,
            )
            self.stats.dirs_statted += walked.dirs_statted
            if walked.scan:
                self._add_scan_stats(walked.scan.dirs_listed, walked.scan.files_seen, walked.scan.errors)
            pending = store.pending_marks()
        return pending

    def _current_marks(self) -> list[StoredMark]:
        """The marks this cycle works on: all stored ones, or with ``--path`` the
        given subtrees and the stored marks inside them (which they cover)."""
        if not self.options.paths:
            return self.store.pending_marks()
        scopes = [Scope(m.path, True) for m in self._path_marks]
        stored = [m for m in self.store.pending_marks() if any(covers(s, m.path, m.recursive) for s in scopes)]
        return self._path_marks + stored

    def _full_verify_due(self) -> bool:
        last = self.store.get_meta(META_LAST_FULL)
        return last is None or time.time() - float(last) >= self.config.scan.full_verify

    def _add_scan_stats(self, listed: int, files: int, errors: list[str]) -> None:
        self.stats.dirs_listed += listed
        self.stats.files_indexed += files
        self.failures.extend(errors)

    def _refresh(self, marks: list[StoredMark]) -> list[StoredMark]:
        """Bring the index up to date wherever a mark says it is stale.

        Listing a folder can find new subfolders, which are marked to be listed
        in turn, so this repeats until every mark is fresh (each round lists
        whole new subtrees, so two rounds are the usual most)."""
        for _ in range(_MAX_REFRESH_ROUNDS):
            stale = [m for m in marks if not m.indexed]
            if not stale:
                break
            self.full = self.full or any(m.path == b"" and m.recursive for m in stale)
            scopes = collapse([(m.path, m.recursive) for m in stale])
            scanner = Scanner(
                self.store,
                self.root,
                self.workers,
                make_marks=False,
                reason="refresh",
                progress=self.options.progress,
                should_stop=self.options.should_stop,
            )
            scanner.refresh_trees([s.path for s in scopes if s.recursive])
            scanner.refresh_dirs([s.path for s in scopes if not s.recursive])
            self._add_scan_stats(scanner.stats.dirs_listed, scanner.stats.files_seen, scanner.stats.errors)
            stored = [m.id for m in stale if m.id]
            if stored:
                with self.store.atomic():
                    self.store.set_marks_indexed(stored)
            self._path_marks = [replace(m, indexed=True) for m in self._path_marks]
            marks = self._current_marks()
        return marks

    def _apply_and_record(self, plan: Plan, marks: list[StoredMark], result: CycleResult) -> None:
        store = self.store
        announced = self._announce(plan.actions)
        applier = Applier(self.space.target, self._is_made_dir, self.options.should_stop)
        new_dirs = applier.dirs_to_make(plan.actions)
        if new_dirs:
            with store.atomic():
                store.executemany("INSERT OR IGNORE INTO link_dir (path) VALUES (?)", ((d,) for d in new_dirs))
        applied = applier.apply(plan.actions)
        result.applied = applied
        result.stopped = applied.stopped
        for action, reason in applied.failed:
            result.failures.append(f"{action.op.value} {os.fsdecode(action.link)}: {reason}")
        keep = self._marks_to_keep(plan, marks, applied)
        with store.atomic():
            self._record(applied)
            self._record_video_counts()
            self._withdraw(announced, applied)
            made = set(applied.made_dirs)
            store.executemany("DELETE FROM link_dir WHERE path = ?", ((d,) for d in new_dirs if d not in made))
            store.clear_marks(m.id for m in marks if m.id and m.id not in keep)
            if self.full and not keep and not result.failures:
                store.set_meta(META_LAST_FULL, str(time.time()))
                # Everything was just listed: a Drive folder-ID cache that missed
                # an activity gets rebuilt from scratch rather than trusted.
                store.execute("DELETE FROM drive_folder")

    def _notify(self) -> DeliveryResult:
        """Tell the media server what changed: this run's changes and any still queued."""
        from graylink.notify.emby import deliver

        delivery = deliver(self.config.emby, self.store, tree_root=self.config.paths.target)
        if not delivery.ok:
            log.warning(
                "the links themselves are done; %d media server updates stay queued for the next run",
                delivery.pending,
            )
        return delivery

    def _emby_changes(self, actions: list[Action]) -> list[tuple[Op, bytes]]:
        """The changes the media server must hear about: not conflicts, not leftovers of a killed run."""
        root = os.fsencode(self.config.paths.target).rstrip(b"/")
        return [
            (a.op, root + b"/" + a.link)
            for a in actions
            if a.op in (Op.CREATE, Op.REPAIR, Op.PRUNE) and not TEMP_RE.match(a.link.rpartition(b"/")[2])
        ]

    def _announce(self, actions: list[Action]) -> int:
        """Queue the media server updates of a plan BEFORE applying it; returns the last queue id before them.

        A run killed after a link was made but before it was recorded finds
        the link correct next time and only adopts it: queued afterwards, its
        update would be lost. Queued ahead, it survives the kill; what turns
        out not to be done is withdrawn when the results are recorded.
        """
        if not self.config.emby.url:
            return 0
        store = self.store
        with store.atomic():
            before = int(store.execute("SELECT coalesce(max(id), 0) FROM emby_queue").fetchone()[0])
            from graylink.notify.emby import enqueue

            enqueue(store, self._emby_changes(actions))
        return before

    def _withdraw(self, announced: int, applied: ApplyResult) -> None:
        """Drop this run's queued updates for links it did not change (failed, or not reached)."""
        if not self.config.emby.url:
            return
        root = os.fsencode(self.config.paths.target).rstrip(b"/")
        done = {root + b"/" + a.link for a in applied.done}
        rows = self.store.execute("SELECT id, path FROM emby_queue WHERE id > ?", (announced,)).fetchall()
        self.store.executemany(
            "DELETE FROM emby_queue WHERE id = ?", ((row[0],) for row in rows if bytes(row[1]) not in done)
        )

    def _marks_to_keep(self, plan: Plan, marks: list[StoredMark], applied: ApplyResult) -> set[int]:
        """Marks whose work is unfinished: withheld prunes, failures, an early stop."""
        if applied.stopped or not self.mount_ok:
            return {m.id for m in marks}
        unfinished = [a.link for a in plan.braked] + [a.link for a, _ in applied.failed if a.op is not Op.CONFLICT]
        keep: set[int] = set()
        for mark in marks:
            scope = Scope(mark.path, mark.recursive)
            if any(covers(scope, parent_of(link), False) or covers(scope, link, False) for link in unfinished):
                keep.add(mark.id)
        return keep

    def _record(self, applied: ApplyResult) -> None:
        store = self.store
        upserts: list[tuple[bytes, bytes, bytes, bytes]] = []
        deletes: list[tuple[bytes, bytes]] = []
        for action in applied.done:
            folder, _, name = action.link.rpartition(b"/")
            op = action.op
            if op is Op.CREATE or op is Op.REPAIR or op is Op.ADOPT:
                upserts.append((folder, name, action.target, action.source))
            elif op is Op.PRUNE or op is Op.FORGET:
                deletes.append((folder, name))
        store.executemany("DELETE FROM link WHERE dir = ? AND name = ?", deletes)
        store.executemany("INSERT OR REPLACE INTO link (dir, name, target, source) VALUES (?, ?, ?, ?)", upserts)
        store.executemany("INSERT OR IGNORE INTO link_dir (path) VALUES (?)", ((d,) for d in applied.made_dirs))
        store.executemany("DELETE FROM link_dir WHERE path = ?", ((d,) for d in applied.removed_dirs))

    def _record_video_counts(self) -> None:
        for scope, videos in self.video_counts:
            if scope.recursive:
                lo, hi = subtree_bounds(scope.path)
                self.store.execute(
                    "UPDATE directory SET videos = 0 WHERE videos != 0 AND (path = ? OR (path >= ? AND path < ?))",
                    (scope.path, lo, hi),
                )
            else:
                self.store.execute("UPDATE directory SET videos = 0 WHERE path = ?", (scope.path,))
            self.store.executemany(
                "UPDATE directory SET videos = ? WHERE path = ?", ((n, d) for d, n in videos.items())
            )

    def _is_made_dir(self, rel: bytes) -> bool:
        return self.store.execute("SELECT 1 FROM link_dir WHERE path = ?", (rel,)).fetchone() is not None


@contextmanager
def fewer_gc_passes(threshold: int = 50_000) -> Iterator[None]:
    """Run the cyclic garbage collector less often for the duration.

    A cycle allocates hundreds of thousands of small acyclic objects (rows,
    listings, actions), and every few hundred allocations the collector walks
    the young ones again, finding nothing: about 5 % of a first run. Reference
    counting still frees everything as usual."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], threshold), old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def run_cycle(config: Config, store: Store | None, options: CycleOptions) -> CycleResult:
    """Run one cycle. With ``dry_run`` it works on a scratch copy of the database
    (``store`` may then be None: no database yet) and changes nothing on disk."""
    with fewer_gc_passes():
        if options.dry_run:
            with scratch_copy(store) as scratch:
                return Cycle(config, scratch, options).run()
        if store is None:
            raise ValueError("a real run needs a database")
        return Cycle(config, store, options).run()
