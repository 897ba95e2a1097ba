"""One reconcile cycle: triggers → index → plan → apply → record.

The walk (a trigger) marks dirty subtrees; the reconciler refreshes the index
where a mark says it is stale, plans every marked subtree, applies the plan
and records what it did in the same transaction that clears the marks
(:mod:`graylink.reconcile.applying`). A cycle killed at any point leaves its
marks, so the next one redoes the work.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import closing
from dataclasses import replace
from typing import TYPE_CHECKING

from graylink import story
from graylink.config import Config
from graylink.links import ownership
from graylink.links.apply import STOPPED_ON_REQUEST
from graylink.links.planner import Plan, apply_prune_brake, withhold_prunes
from graylink.links.recording import VideoCounts
from graylink.reconcile.announce import notify, retry_stuck
from graylink.reconcile.applying import Findings, apply_and_record
from graylink.reconcile.gcpause import no_gc_passes
from graylink.reconcile.outcome import CycleOptions, CycleResult, CycleStats
from graylink.reconcile.planning import link_space, plan_scope, rules_of, settings_fingerprint
from graylink.reconcile.preflight import check_source, check_target, make_target
from graylink.reconcile.reread import mark_restart, reread_before_full_walk
from graylink.reconcile.settle import settle
from graylink.reconcile.veto import veto_prunes
from graylink.source.listing import MountGone
from graylink.source.scanner import Interrupted, ProgressFn, Scanner, ScanStats
from graylink.source.sourcecheck import CHECK_TIMEOUT, SourceGuard
from graylink.store.clock import in_future, tell_jump
from graylink.store.db import META_LAST_FULL, Mark, Store, StoredMark
from graylink.store.problems import problem_folders
from graylink.store.scopes import Scope, ScopeSet, collapse
from graylink.store.scratch import scratch_copy
from graylink.system.fsinfo import TRUSTED_FS, fs_type, mtime_trusted
from graylink.triggers.linktree import mark_drift
from graylink.triggers.mount import STOPPED, Health, check_health, ensure_healthy, record_health
from graylink.triggers.walk import walk

if TYPE_CHECKING:  # the Drive feed loads only when configured
    from graylink.drive.feed import DrivePollResult

# The values live in graylink.outcome; callers import them from here with run_cycle.
__all__ = ["CycleOptions", "CycleResult", "CycleStats", "run_cycle"]

log = logging.getLogger(__name__)

_MAX_REFRESH_ROUNDS = 16
META_SETTINGS = "plan_settings"


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
        # Marks found unusable (a dry run keeps them); with their paths, as SQLite reuses a deleted row's id.
        self._unusable: set[tuple[int, bytes]] = set()
        # On a local filesystem listing is CPU-bound and threads only contend for
        # the interpreter; on FUSE and network filesystems each listing waits on
        # I/O, they overlap (ARCHITECTURE §4), and they can hang.
        self.local = fs_type(config.paths.source) in TRUSTED_FS
        self.workers = 1 if self.local else config.scan.workers
        self.guard: SourceGuard | None = None
        # Folders that could not be listed, with why: reported, retried next run, open problems until listed.
        self.unlistable: dict[bytes, str] = {}
        self.video_counts: VideoCounts = []
        self.scopes: list[Scope] = []
        # With no media server there is no one to tell: nothing waits to be announced.
        self.settle_ns = int(config.scan.settle * 1e9) if config.servers else 0

    def run(self) -> CycleResult:
        started = time.monotonic()
        # Before anything else: another library's index would read as "all deleted".
        ownership.check(self.config, self.store, rebase=self.options.rebase, dry_run=self.options.dry_run)
        if self.options.rebase:
            ownership.leave_old_tree(self.config, self.store)
        if not self._index_has_files():
            # Nothing indexed yet, so nothing to protect: a missing source is a
            # bad config. Once indexed, a missing source is a dropped mount
            # (e.g. the source lies below an unmounted mount point).
            self._check_source()
        # A dry run may not remount: it changes nothing, the mount included.
        health = ensure_healthy(
            self.config,
            self.store,
            allow_remount=self.options.remount and not self.options.dry_run,
            should_stop=self.options.should_stop,
            quiet_repeats=self.options.in_loop,
        )
        if health is STOPPED:
            return self._stopped(started)
        if not health.ok:
            # Walking a dropped mount would read "everything deleted" into the
            # index: touch nothing, keep every mark, report.
            self.failures.append(f"mount check {health.failed_check} failed: {health.message}")
            self.stats.duration_s = round(time.monotonic() - started, 6)
            return CycleResult(Plan(), self.stats, self.options.dry_run, False, self.failures, health=health)
        self._check_target()
        self.space = ownership.claimed_space(self.config, self.store, self.space, write=not self.options.dry_run)
        drive = self._poll_drive()
        try:
            self.guard = SourceGuard(
                self.config.paths.source, hang_prone=not self.local, should_stop=self.options.should_stop
            )
            if not self.options.paths:
                mark_restart(self.config, self.store)
            marks = self._collect_marks()
            options = self.options
            settled = reread_before_full_walk(
                self.config, marks, dry_run=options.dry_run, should_stop=options.should_stop, note=options.progress.note
            )
            if self.config.mount.rclone_rc and options.dry_run and not settled:
                # A dry run changes nothing, rclone's directory cache included: it plans from what the mount shows.
                log.info("dry run: rclone is not asked to re-read folders; the plan is what the mount shows now")
            elif self.config.mount.rclone_rc and not settled:
                from graylink.rclone.rc import refresh_marked  # loaded only with an rc to call

                refresh_marked(self.config, marks)
            marks = self._refresh(marks)
            scopes = collapse([(m.path, m.recursive) for m in marks] + self._problem_scopes())
        except MountGone as exc:
            record_health(self.store, Health(False, "source-listable", str(exc), dead=True))
            raise
        except Interrupted:
            return self._stopped(started)
        self.scopes = scopes
        plan = Plan()
        meter = self.options.progress
        meter.begin("planning links", counted=False)
        for scope in scopes:
            if self._stop_requested():
                return self._stopped(started)
            videos: dict[bytes, int] = {}
            plan.actions.extend(plan_scope(self.store, self.space, self.rules, scope, videos))
            self.video_counts.append((scope, videos))
        # The mount can drop while we walk; a clean unmount then reads as
        # deletions, so health is checked again right before any prune.
        health = check_health(self.config, self.store, should_stop=self.options.should_stop)
        if health is STOPPED:
            return self._stopped(started)
        if not health.ok:
            record_health(self.store, health)
            message = f"mount check {health.failed_check} failed: {health.message}"
            log.error("%s; nothing was pruned and dirty marks are kept", message)
            withhold_prunes(plan, message)
            self.failures.append(message)
            self.mount_ok = False
        self._veto_prunes(plan)
        owned_total = self.store.count("link")
        if not self.options.force:
            apply_prune_brake(
                plan, owned_total, self.config.reconcile.max_prune_fraction, allowance=self.options.prune_allowance
            )
        result = CycleResult(
            plan, self.stats, self.options.dry_run, self.full, self.failures, health=health, drive=drive
        )
        if plan.brake_reason and health.ok:
            log.error("prune brake: %s", plan.brake_reason)
        story.planned(plan)
        if not self.options.dry_run:
            found = Findings(
                self.space.target,
                self.options.should_stop,
                self.mount_ok,
                self.full,
                self.scopes,
                self.unlistable,
                self.video_counts,
                meter,
            )
            apply_and_record(self.config, self.store, plan, marks, result, found)
            if not result.stopped:
                settle(self.config, self.store, self.rules, self.options.should_stop)
            # On a stop request the queue waits for the next run: no retries with backoff now.
            if self.config.servers and not self._stop_requested():
                retry_stuck(self.config, self.store, [p.path for p in self.options.paths])
                meter.begin("telling media servers", counted=False)
                result.media = notify(self.config, self.store, self.options.should_stop)
        self.stats.duration_s = round(time.monotonic() - started, 6)
        return result

    def _stop_requested(self) -> bool:
        return self.options.should_stop is not None and self.options.should_stop()

    def _veto_prunes(self, plan: Plan) -> None:
        """One lstat of each file about to be pruned: one that is there keeps its
        link, and its folder is listed again (the index lost it)."""
        veto = veto_prunes(plan, self.config.paths.source, self.rules, CHECK_TIMEOUT, self.options.should_stop)
        if not veto.message:
            return
        self.failures.append(veto.message)
        if veto.folders and not self.options.dry_run:
            with self.store.atomic():
                self.store.add_marks([Mark(d, "prune-veto", recursive=False) for d in veto.folders])

    def _stopped(self, started: float) -> CycleResult:
        self.stats.duration_s = round(time.monotonic() - started, 6)
        return CycleResult(Plan(), self.stats, self.options.dry_run, self.full, self.failures, STOPPED_ON_REQUEST)

    # -- steps

    def _index_has_files(self) -> bool:
        return self.store.execute("SELECT 1 FROM file LIMIT 1").fetchone() is not None

    def _check_target(self) -> None:
        """The link tree's root must be a directory, or be creatable (not in a dry run)."""
        if self.options.dry_run:
            check_target(self.config)
        else:
            make_target(self.config)

    def _check_source(self) -> None:
        check_source(self.config, self.options.should_stop)

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
            self._path_marks = [StoredMark(0, p.path, "path", now, p.recursive, False) for p in self.options.paths]
            return self._current_marks()
        with store.atomic():
            if store.is_empty():
                store.add_marks([Mark(b"", "first-run")])
            elif self.options.rebase:
                store.add_marks([Mark(b"", "rebase")])
            elif self.options.full or self._full_verify_due():
                store.add_marks([Mark(b"", "full-verify")])
            settings = settings_fingerprint(self.config)
            recorded = store.get_meta(META_SETTINGS)
            if recorded != settings:
                if recorded is not None:
                    log.info("link rules or link targets changed: re-planning every link")
                    store.add_marks([Mark(b"", "settings", indexed=True)])
                store.set_meta(META_SETTINGS, settings)
        pending = self._pending()
        if self.options.walk and not any(m.path == b"" and m.recursive and not m.indexed for m in pending):
            trusted = mtime_trusted(self.config.paths.source, self.config.scan.trust_dir_mtime)
            if trusted:
                self.options.progress.begin("looking at folder times", counted=False)
            walked = walk(
                store,
                self.root,
                trusted=trusted,
                workers=self.workers,
                progress=self._listing(everything=not trusted),
                should_stop=self.options.should_stop,
                guard=self.guard,
                settle_ns=self.settle_ns,
                wants=self.rules.wanted,
            )
            self.stats.dirs_statted += walked.dirs_statted
            self.failures.extend(walked.errors)
            self.unlistable.update(zip(walked.unlistable, walked.errors, strict=False))
            if walked.scan:
                self._add_scan_stats(walked.scan)
            # The link tree is local and cheap to look at: links deleted there by
            # someone else are planned again now, not at the next full verification.
            mark_drift(store, self.space.target)
            pending = self._pending()
        return pending

    def _pending(self) -> list[StoredMark]:
        """The stored marks but those no system call can take: each dropped once, with a line."""
        marks = [m for m in self.store.pending_marks() if (m.id, m.path) not in self._unusable]
        kept = self.store.usable_marks(marks, drop=not self.options.dry_run)
        self._unusable.update({(m.id, m.path) for m in marks} - {(m.id, m.path) for m in kept})
        return kept

    def _current_marks(self) -> list[StoredMark]:
        """The marks this cycle works on: all stored ones, or with ``--path`` the
        given subtrees and the stored marks inside them (which they cover)."""
        if not self.options.paths:
            return self._pending()
        scopes = ScopeSet(Scope(m.path, m.recursive) for m in self._path_marks)
        usable = self._pending()
        stored = [m for m in usable if scopes.settles(m.path, m.recursive)]
        return self._path_marks + stored

    def _problem_scopes(self) -> list[tuple[bytes, bool]]:
        """The folders of open conflicts and failed actions, planned again each walking cycle
        (with ``--path``, those inside the paths), without re-listing the source."""
        if not self.options.walk:
            return []
        folders = problem_folders(self.store)
        if self.options.paths:
            inside = ScopeSet(self.options.paths)
            folders = [f for f in folders if inside.covers(f, False)]
        return [(f, False) for f in folders]

    def _full_verify_due(self) -> bool:
        last = self.store.get_meta(META_LAST_FULL)
        if last is None:
            return True
        if in_future(float(last)):
            tell_jump("the last full verification", float(last), "verifying everything now")
            return True
        return time.time() - float(last) >= self.config.scan.full_verify

    def _listing(self, *, everything: bool) -> ProgressFn | None:
        """Counted on from the earlier scanners' (the summary sums them), of about as many as the index holds."""
        total = self.store.count("directory") if everything and self.options.progress.on else None
        return self.options.progress.lister(total, self.stats.dirs_listed, self.stats.files_indexed)

    def _add_scan_stats(self, scan: ScanStats) -> None:
        self.stats.dirs_listed += scan.dirs_listed
        self.stats.files_indexed += scan.files_seen
        self.failures.extend(scan.errors)
        self.unlistable.update(zip(scan.unlistable, scan.errors, strict=False))

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
                progress=self._listing(everything=any(s.path == b"" and s.recursive for s in scopes)),
                should_stop=self.options.should_stop,
                guard=self.guard,
                settle_ns=self.settle_ns,
                wants=self.rules.wanted,
            )
            scanner.refresh_trees([s.path for s in scopes if s.recursive])
            scanner.refresh_dirs([s.path for s in scopes if not s.recursive])
            self._add_scan_stats(scanner.stats)
            stored = [m.id for m in stale if m.id]
            if stored:
                with self.store.atomic():
                    self.store.set_marks_indexed(stored)
            self._path_marks = [replace(m, indexed=True) for m in self._path_marks]
            marks = self._current_marks()
        return marks


def run_cycle(config: Config, store: Store | None, options: CycleOptions) -> CycleResult:
    """Run one cycle. With ``dry_run`` it works on a scratch copy of the database
    (``store`` may then be None: no database yet) and changes nothing on disk."""
    with no_gc_passes(), closing(options.progress):
        if options.dry_run:
            with scratch_copy(store) as scratch:
                return Cycle(config, scratch, options).run()
        if store is None:
            raise ValueError("a real run needs a database")
        before = store.total_changes()
        result = Cycle(config, store, options).run()
        result.stats.rows_written = store.total_changes() - before
        return result
