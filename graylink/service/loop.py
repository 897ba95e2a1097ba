"""``graylink reconcile --loop``: the service.

One :class:`schedule.Scheduler` runs a table of jobs, each one function:
the walk + reconcile every ``[scan] interval``, a full verification every
``[scan] full_verify``, the mount check every ``[mount] check_interval`` and
the Drive feed every ``[drive] interval`` (when those pieces are installed).
Triggers only mark subtrees dirty; whenever something is marked, one cycle
(:func:`graylink.reconcile.cycle.run_cycle`) reconciles it and one Emby batch follows.

A job that raises is logged with its cause and runs again at its next tick:
the loop itself only ends on SIGTERM / SIGINT, after the current action is
committed. SIGHUP re-reads the config; an invalid one is reported and the old
one kept. Each job's last run, duration, result and next run are in the
``job_run`` table (:mod:`graylink.service.jobruns`), which ``graylink status`` shows.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import replace
from types import FrameType
from typing import TYPE_CHECKING, Protocol

import schedule

from graylink.alerts import deliver, rules
from graylink.alerts.observe import from_crash, from_cycle
from graylink.config import Config, load_config
from graylink.drive.feed import CredentialCache
from graylink.drive.shared_changes import ChangePages
from graylink.errors import GraylinkError
from graylink.links import ownership
from graylink.notify.shared_holds import SharedHolds
from graylink.reconcile.cycle import CycleOptions, run_cycle
from graylink.reconcile.outcome import service_line
from graylink.reconcile.planning import settings_fingerprint
from graylink.reconcile.preflight import make_target
from graylink.report.status import record_reconcile
from graylink.service import dbwatch, jobruns, web_jobs
from graylink.service.jobs import JOBS, RULES_JOB, WAKE_JOB, Job, Outcome, write_snapshot
from graylink.service.logsetup import configure_logging
from graylink.store.db import Store
from graylink.store.lock import InstanceLock, refuse_if_held
from graylink.system.progress import Meter, log_every
from graylink.triggers.mount import MountWatch

if TYPE_CHECKING:
    from graylink.web.app import WebContext
    from graylink.web.server import WebServer

log = logging.getLogger(__name__)


class AppContext(Protocol):
    """What the command line hands the service: where the config came from, how loud to be, the config it loaded."""

    config_path: str | None
    verbosity: int

    @property
    def config(self) -> Config: ...

    def use_config(self, config: Config) -> None: ...


# Longest sleep between looks at the stop flag: signals are answered this fast.
TICK_S = 0.25


# ------------------------------------------------------------------ service

# Keys a reload cannot switch: the running loop keeps its config and says why.
RESTART_KEYS = {
    "database": "restart graylink to switch databases",
    # The links already made under the old target would be left behind,
    # owned by nobody: moving the tree is a deliberate step, not a reload.
    "target": "the links under the old target would be orphaned; restart graylink to switch link trees",
}


class Service:
    def __init__(
        self, app: AppContext, config: Config, store: Store, jobs: tuple[Job, ...] = JOBS, *, full: bool = False
    ) -> None:
        self.app = app
        self.full_first = full
        self.config = config
        self.library = config.name  # the library this service runs (a view of the config: Config.library)
        self.sole = True  # the only library of the process (else SIGHUP's config is not the app's)
        self.store = store
        self.jobs = jobs
        self.scheduler = schedule.Scheduler()
        self.stop_requested = False
        self.reload_requested = False
        self.drive_cache = CredentialCache()
        self.mount_watch = MountWatch()
        self.change_pages: ChangePages | None = None  # set by graylink.service.many for several libraries
        self.shared_holds: SharedHolds | None = None  # set by graylink.service.many for several libraries
        self.guard = dbwatch.Guard(store)
        self.exit_code = 0
        self.reloaded: Config | None = None  # the whole config of the last SIGHUP this library took
        # Set by the web server's triggers (another thread): the loop reconciles at once.
        self.wake = threading.Event()
        self.alerts = deliver.Alerts(config.alerts.urls, config.alerts.events, library=deliver.library_label(config))

    # -- signals

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        if not self.stop_requested:
            log.info("%s received: finishing the current step, then exiting", signal.Signals(signum).name)
        self.stop_requested = True

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        self.reload_requested = True

    def should_stop(self) -> bool:
        return self.stop_requested

    # -- the job table

    def schedule_jobs(self) -> list[schedule.Job]:
        self.scheduler.clear()
        scheduled: list[schedule.Job] = []
        for job in self.jobs:
            if not job.enabled(self.config):
                continue
            seconds = max(1, round(job.interval(self.config)))
            entry = self.scheduler.every(seconds).seconds.do(self.run_job, job)
            entry.tag(job.name)
            scheduled.append(entry)
        names = ", ".join(
            f"{j.name} every {_human(j.interval(self.config))}" for j in self.jobs if j.enabled(self.config)
        )
        log.info("service: %s", names)
        return scheduled

    def retry_soon(self, name: str, seconds: float) -> None:
        """Run job ``name`` once more in ``seconds``, besides its interval (at most one such retry)."""
        tag = f"{name}-retry"
        job = next((j for j in self.jobs if j.name == name), None)
        if job is None or self.scheduler.get_jobs(tag):
            return

        def once() -> type[schedule.CancelJob]:
            self.run_job(job)
            return schedule.CancelJob

        self.scheduler.every(max(1, round(seconds))).seconds.do(once).tag(tag)

    def run_job(self, job: Job) -> None:
        """Run one job; whatever it raises is logged and recorded, never fatal."""
        if self.stop_requested or not self.guard_database():
            return
        started = time.time()
        clock = time.monotonic()
        ok = False
        try:
            outcome = job.run(self)
            ok, result = outcome.ok, outcome.result
        except Exception as exc:  # the loop must outlive any job (a dead poller goes unnoticed)
            result = f"{exc.__class__.__name__}: {exc}"
            log.error("job %s failed: %s; it runs again at its next tick", job.name, result)
            log.debug("job %s traceback", job.name, exc_info=True)
            if job.name in ("walk", "full-verify"):
                self.observe(from_crash(result))
        duration = time.monotonic() - clock
        try:
            jobruns.record_run(self.store, job.name, started, duration, ok, result)
        except Exception as exc:
            log.error("cannot record the run of job %s: %s: %s", job.name, exc.__class__.__name__, exc)

    def _record_next_runs(self) -> None:
        try:
            jobruns.write_next_runs(self.store, self.scheduler)
        except Exception as exc:  # bookkeeping must not end the service
            log.error("cannot record the next runs of the jobs: %s: %s", exc.__class__.__name__, exc)

    # -- the database under the loop

    def guard_database(self) -> bool:
        """Before each job: the lock and the database are still the files opened.
        False when the loop cannot go on (it then stops with a non-zero exit)."""
        try:
            self.store = self.guard.check(self.store, self.config)
        except dbwatch.CannotGoOn as exc:
            log.error("%s; stopping", exc)
            self.exit_code = exc.exit_code
            self.stop_requested = True
            self.store.close()  # nothing more is written (shutdown skips a closed store)
            return False
        return True

    # -- what the jobs call

    def reconcile(self, trigger: str, options: CycleOptions) -> Outcome:
        """One cycle (the cycle sends its one Emby batch), its summary kept in meta."""
        # The loop runs remounts (mount job, with backoff) and the Drive feed
        # (drive job, on its own interval) itself: a cycle here does neither.
        options = replace(options, should_stop=self.should_stop, remount=False, drive=False, in_loop=True)
        # Progress lines only for a long cycle (a first run, a full verification): none in its first interval.
        result = run_cycle(self.config, self.store, replace(options, progress=Meter(every=log_every())))
        record_reconcile(self.store, result, trigger)
        if self.alerts.enabled:
            self.observe(from_cycle(result, self._open_conflicts()))
        line = service_line(result)
        if result.exit_code == 0 or (result.stopped_on_request and not result.failures):
            # A stop on request failed nothing: the next run does what it left.
            log.info("reconcile (%s): %s", trigger, line)
        elif result.held_by:
            # The mount check told the drop (once, then half-hourly): not one ERROR per cycle.
            log.info("reconcile (%s): not run, the mount is down (mount check %s)", trigger, result.held_by)
        else:
            log.error("reconcile (%s): %s", trigger, line)
        outcome = Outcome(result.exit_code == 0, line)
        if result.full and not result.stopped and self.config.snapshot.path:
            outcome = outcome.then(write_snapshot(self.config, self.store))
        return outcome

    def walk_if_feed_lost(self) -> Outcome | None:
        """The feed just failed while the walk relied on it: list every folder now, not at the next tick."""
        from graylink.drive.feed import META_CADENCE

        if self.stop_requested or not (self.store.get_meta(META_CADENCE) or "").startswith("marked:"):
            return None
        job = next((j for j in self.jobs if j.name == "walk"), None)
        if job is None:
            return None
        self.run_job(job)
        return Outcome(True, "walked every folder")

    def reconcile_if_dirty(self, trigger: str) -> Outcome | None:
        """After a trigger marked something: reconcile those marks (no walk)."""
        if self.stop_requested:
            return None
        if self.store.execute("SELECT 1 FROM dirty LIMIT 1").fetchone() is None:
            return None
        done = self.reconcile(trigger, CycleOptions(walk=False))
        return Outcome(done.ok, "reconciled: " + done.result)

    def _open_conflicts(self) -> list[str]:
        from graylink.store.problems import open_problems

        found = open_problems(self.store, 1000)
        return [p.link.decode("utf-8", "backslashreplace") for p in found if p.kind == "conflict"]

    def observe(self, seen: rules.Observation) -> None:
        """Hand what a job saw to the alerts; their bookkeeping never ends a job."""
        try:
            self.alerts.observe(self.store, seen)
        except Exception as exc:
            log.error("alerts: %s: %s", exc.__class__.__name__, exc)

    # -- config reload

    def reload(self) -> None:
        self.reload_requested = False
        try:
            whole = load_config(self.app.config_path)
            fresh = whole.library(self.library)
        except GraylinkError as exc:
            log.error("SIGHUP: the new config is not valid (%s); keeping the old one", exc)
            return
        if fresh.paths.database != self.config.paths.database:
            log.error(
                "SIGHUP: [paths] database changed to %s; restart graylink to switch databases; keeping the old config",
                fresh.paths.database,
            )
            return
        if fresh == self.config:  # another library's change: this one's timers run on
            self.reloaded = whole
            self.drive_cache = CredentialCache()  # rclone.conf may have changed all the same
            log.info("SIGHUP: this library's config is unchanged: left as it runs")
            return
        moved = ownership.reload_refusal(self.config, fresh, self.store)
        if moved is not None:
            log.error("SIGHUP: %s; keeping the old config", moved)
            return
        rules_changed = settings_fingerprint(fresh) != settings_fingerprint(self.config)
        self.config, self.reloaded = fresh, whole
        if self.sole:
            self.app.use_config(fresh)
        self.alerts = self.alerts.reconfigured(fresh.alerts.urls, fresh.alerts.events, deliver.library_label(fresh))
        # Credentials kept from the old config may belong to another remote, token
        # file or rclone.conf: the next poll loads them afresh.
        self.drive_cache = CredentialCache()
        configure_logging(fresh.log, self.app.verbosity)
        self.schedule_jobs()
        self._record_next_runs()
        log.info("SIGHUP: config reloaded from %s", fresh.file or "the environment")
        if rules_changed:
            # docs/service.md: rules apply at once, not at the next walk (an hour away, maybe).
            log.info("SIGHUP: the link rules changed: re-planning every link now")
            self.run_job(RULES_JOB)

    # -- the loop

    def start(self) -> None:
        """Schedule every job, then run the ones that run at start, in table order."""
        entries = self.schedule_jobs()
        by_name = {next(iter(e.tags)): e for e in entries}
        for job in self.jobs:
            entry = by_name.get(job.name)
            if entry is not None and job.at_start and not self.stop_requested:
                entry.run()  # type: ignore[no-untyped-call]  # runs it now, reschedules it from now
        self._record_next_runs()

    def loop(self) -> None:
        self.start()
        while not self.stop_requested:
            if self.reload_requested:
                self.reload()
            if self.scheduler.idle_seconds is not None and self.scheduler.idle_seconds <= 0:
                self.scheduler.run_pending()
                self._record_next_runs()
                continue
            idle = self.scheduler.idle_seconds
            if self.wake.wait(TICK_S if idle is None else min(TICK_S, max(idle, 0.01))):
                self.wake.clear()
                self.run_job(WAKE_JOB)

    def shutdown(self) -> None:
        self.scheduler.clear()
        if not self.store.db.is_closed():
            self._record_next_runs()
        self.alerts.close()


def _check_rc_serves_source(config: Config) -> None:
    """At start: a [mount] rclone_rc that serves another rclone's mount refreshes nothing of the source."""
    from graylink.rclone.rc import serving_check

    check = serving_check(config)
    if not check.ok:
        log.log(logging.WARNING if check.warn else logging.ERROR, "%s: %s (%s)", check.name, check.message, check.hint)


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def run_loop(app: AppContext, jobs: tuple[Job, ...] = JOBS, *, full: bool = False) -> int:
    """Run the service until SIGTERM / SIGINT; 0 on a clean stop. ``full``: the
    first walk verifies everything."""
    config = app.config.library(app.config.name)  # the first library's view (its servers only)
    refuse_if_held(config.paths.database)  # before the port: the running service holds both
    bound = web_jobs.bind_web(config)
    try:
        return _serve(app, config, jobs, full, bound)
    finally:
        if bound is not None:
            bound[0].close()


def _serve(
    app: AppContext, config: Config, jobs: tuple[Job, ...], full: bool, bound: tuple[WebServer, WebContext] | None
) -> int:
    # A root that passed the checks and still takes no folder (under /proc) is
    # refused before a lock file or a database exists.
    make_target(config)
    with InstanceLock(config.paths.database) as lock, Store(config.paths.database) as store:
        ownership.check(config, store)  # another library's database: refuse before the first job
        service = Service(app, config, store, jobs, full=full)
        service.guard.lock = lock
        handlers = {
            signal.SIGTERM: service._on_stop,
            signal.SIGINT: service._on_stop,
            signal.SIGHUP: service._on_reload,
        }
        previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
        log.info("service started (pid %d), database %s", os.getpid(), config.paths.database)
        if service.alerts.enabled:
            service.alerts.report_unusable()
        if config.mount.rclone_rc:
            _check_rc_serves_source(config)
        web_jobs.start_web(bound, service)
        try:
            service.loop()
        finally:
            if bound is not None:
                bound[0].close()  # no request after the loop (closing again later is harmless)
            service.shutdown()
            service.store.close()  # a recreated database is not the one this block opened
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        log.info("service stopped" if not service.exit_code else f"service stopped (exit {service.exit_code})")
    return service.exit_code
