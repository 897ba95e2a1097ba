"""The service's job table: each job one function of the running service
(:class:`~graylink.service.running.Running`).

Triggers only mark; a job that marked something reconciles those marks at
once (``Service.reconcile_if_dirty``). The table's order is the order the
jobs run at start: the mount is checked before anything lists it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from graylink.alerts.observe import from_feed, from_mount, from_protect, from_server_mount
from graylink.config import Config
from graylink.drive.feed import feed_interval, poll_drive
from graylink.reconcile.cycle import CycleOptions
from graylink.service import web_jobs
from graylink.service.running import Outcome as Outcome
from graylink.service.running import Running as Service
from graylink.store.db import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One row of the job table: a trigger or a reconcile, run every ``interval``."""

    name: str
    interval: Callable[[Config], float]
    run: Callable[[Service], Outcome]
    enabled: Callable[[Config], bool] = lambda config: True
    at_start: bool = True


# --------------------------------------------------------------------- jobs


def job_walk(service: Service) -> Outcome:
    """The walk; on an untrusted filesystem with a healthy Drive feed, only what is marked."""
    # ``reconcile --loop --full``: the first walk is a full verification.
    full, service.full_first = service.full_first, False
    if service.config.drive.enabled and not full:
        from graylink.drive.cadence import cadence, record_cadence
        from graylink.system.fsinfo import mtime_trusted

        config = service.config
        now = cadence(config, service.store, mtime_trusted(config.paths.source, config.scan.trust_dir_mtime))
        record_cadence(service.store, now)
        if not now.list_all:
            return service.reconcile("walk", CycleOptions(walk=False))
    return service.reconcile("walk", CycleOptions(full=full))


def job_settle(service: Service) -> Outcome:
    """Files whose announcement waits until they hold still ([scan] settle) are looked
    at again soon, not at the next walk: a cycle without a walk, only when some wait."""
    if service.store.execute("SELECT 1 FROM settling LIMIT 1").fetchone() is None:
        return Outcome(True, "nothing waits to be announced")
    return service.reconcile("settle", CycleOptions(walk=False, drive=False))


def job_full_verify(service: Service) -> Outcome:
    return service.reconcile("full-verify", CycleOptions(full=True))


def job_mount(service: Service) -> Outcome:
    """Health, with remounts spaced by the backoff; a recovered mount marks the
    whole tree, which is then reconciled at once."""
    remounts = bool(service.config.mount.remount_command) and service.mount_watch.backoff.ready(time.monotonic())
    health = service.mount_watch.tick(service.config, service.store, should_stop=service.should_stop)
    if service.stop_requested:
        return Outcome(True, "stopped on request")
    service.observe(from_mount(health, remounts))
    _protect(service, health.ok)
    if health.ok and any(server.kind == "emby" for server in service.config.servers):
        from graylink.notify.server_mount import check_all

        # Every Emby / Jellyfin server that sees this library, each with its own verdict and alert.
        for verdict in check_all(service.config, service.store):
            service.observe(from_server_mount(verdict.ok, verdict.message, verdict.server))
    if not health.ok:
        # Already logged (one ERROR line) by the check itself.
        return Outcome(False, f"unhealthy: {health.failed_check}: {health.message}")
    return Outcome(True, "healthy").then(service.reconcile_if_dirty("mount"))


def _protect(service: Service, healthy: bool) -> None:
    """While the mount is down, each media server's own scans are held; on recovery all is put back."""
    config = service.config
    if not config.servers:
        return
    from graylink.notify import protect
    from graylink.notify.queue import configured

    shared = service.shared_holds  # several libraries: a server's hold lasts while any of them is down
    if shared is not None:
        shared.report(config.name, healthy, configured(config))
    if healthy:
        if service.store.execute("SELECT 1 FROM server_hold LIMIT 1").fetchone() is None:
            return
        changes = protect.release(config, service.store, shared)
    else:
        changes = protect.engage(config, service.store, shared)
    service.observe(from_protect(changes.engaged, changes.released))


def job_drive(service: Service) -> Outcome:
    result = poll_drive(
        service.config, service.store, service.drive_cache, should_stop=service.should_stop, shared=service.change_pages
    )
    if result.stopped:
        return Outcome(True, "drive feed: stopped on request")
    service.observe(from_feed(result))
    if result.retry_in is not None:
        service.retry_soon("drive", result.retry_in)
    if result.skipped:
        return Outcome(True, f"drive feed: {result.skipped}")
    if result.error is not None:
        # Already logged by the poll; the cursor is kept, so nothing is lost.
        failed = Outcome(False, f"drive feed: {result.error}")
        return failed.then(service.walk_if_feed_lost())
    polled = Outcome(True, f"{result.activities} {_events(result.feed)}, {result.marks} marks, {result.calls} calls")
    return polled.then(service.reconcile_if_dirty("drive"))


def _events(feed: str) -> str:
    return "changes" if feed == "changes" else "activities"


JOBS: tuple[Job, ...] = (
    # Order matters at start: the mount is checked before anything lists it.
    Job("mount", lambda c: c.mount.check_interval, job_mount),
    Job("drive", feed_interval, job_drive, enabled=lambda c: c.drive.enabled),
    Job("walk", lambda c: c.scan.interval, job_walk),
    # New and replaced files announced once they hold still (graylink.reconcile.settle).
    Job(
        "settle",
        lambda c: min(c.scan.interval, max(5.0, c.scan.settle / 2)),
        job_settle,
        enabled=lambda c: c.scan.settle > 0,
        at_start=False,
    ),
    # Not at start: a walk cycle runs a full verification by itself when one is due.
    Job("full-verify", lambda c: c.scan.full_verify, job_full_verify, at_start=False),
    # Folders a Sonarr / Radarr webhook named, re-marked until their files arrive.
    Job(
        "webhooks",
        web_jobs.arr_recheck_interval,
        web_jobs.job_arr,
        enabled=lambda c: bool(c.web.listen),
        at_start=False,
    ),
)


def job_rules(service: Service) -> Outcome:
    """A reload changed the link rules (or the links' targets): re-plan every link now.

    The cycle itself sees the changed settings and marks the whole tree, planned
    from the index (which holds every file, wanted or not): no folder is listed."""
    return service.reconcile("rules", CycleOptions(walk=False))


# Run when a web request woke the loop (not scheduled).
WAKE_JOB = Job("webhook", lambda c: 0.0, web_jobs.job_woken)
# Run once when SIGHUP changed the rules (not scheduled).
RULES_JOB = Job("rules", lambda c: 0.0, job_rules)


def write_snapshot(config: Config, store: Store) -> Outcome:
    """The HTML page of the index, refreshed after each full verification (``[snapshot] path``)."""
    from graylink.errors import GraylinkError
    from graylink.report.snapshot import default_snapshot_path
    from graylink.report.snapshot import write_snapshot as write_page

    try:
        # Each library its own file of the one [snapshot] path ({library}, or -NAME added).
        stats = write_page(config, store, default_snapshot_path(config))
    except GraylinkError as exc:
        log.error("snapshot: %s", exc)
        return Outcome(False, f"snapshot failed: {exc}")
    log.info(
        "snapshot written to %s: %d folders, %d files (%d linkable, %d linked)",
        stats.path,
        stats.folders,
        stats.files,
        stats.videos,
        stats.linked,
    )
    return Outcome(True, f"snapshot of {stats.files} files written")
