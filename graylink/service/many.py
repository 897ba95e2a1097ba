"""``reconcile --loop`` with several libraries: one service per library, in one process.

Each library keeps what a service of its own would: its database and lock, its
index and marks, its job table and schedule, its mount check and remount
backoff, its prune brake, its Drive feed state and its alerts' memory. Each runs
on a thread of its own, so a dropped mount (whose checks may wait on a hung
FUSE call) or a failing feed in one library never pauses another. The main
thread only answers signals: SIGTERM / SIGINT stop every library after its
current step; SIGHUP reloads each library's part of the config (a change to one
leaves the others as they are; a moved source or target is refused per library,
as for one). The web face serves every library: pages, ``/api/status`` and
``/metrics`` show each; a webhook marks the library whose source holds its path.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import ExitStack
from dataclasses import replace
from types import FrameType

from graylink.config import Config
from graylink.drive.shared_changes import ChangePages
from graylink.links import ownership
from graylink.notify.queue import configured
from graylink.notify.shared_holds import SharedHolds
from graylink.reconcile.preflight import make_target
from graylink.service import web_jobs
from graylink.service.jobs import JOBS, Job
from graylink.service.loop import AppContext, Service, run_loop
from graylink.store.db import Store
from graylink.store.lock import InstanceLock, refuse_if_held

log = logging.getLogger(__name__)

JOIN_S = 0.25  # the main thread looks at its signals this often


def run_service(app: AppContext, libraries: list[str], *, full: bool = False, jobs: tuple[Job, ...] = JOBS) -> int:
    """Run the named libraries until SIGTERM / SIGINT; the worst exit code of them."""
    if len(libraries) == 1 and libraries[0] == app.config.name:
        return run_loop(app, jobs, full=full)  # one library: exactly the service of old
    views = [app.config.library(name) for name in libraries]
    for view in views:
        refuse_if_held(view.paths.database)  # before the port: a running service holds both
    bound = web_jobs.bind_web(views[0])
    try:
        return _serve(app, views, jobs, full, bound)
    finally:
        if bound is not None:
            bound[0].close()


def _serve(
    app: AppContext, views: list[Config], jobs: tuple[Job, ...], full: bool, bound: web_jobs.Bound | None
) -> int:
    for view in views:
        # A root that passed the checks and still takes no folder (under /proc)
        # is refused before a lock file or a database exists.
        make_target(view)
    with ExitStack() as stack:
        services: list[Service] = []
        for view in views:
            lock = stack.enter_context(InstanceLock(view.paths.database))
            store = stack.enter_context(Store(view.paths.database))
            ownership.check(view, store)  # another library's database: refused before any job runs
            service = Service(app, view, store, jobs, full=full)
            service.guard.lock = lock
            service.sole = False
            services.append(service)
        shared = _shared_holds(services)
        pages = ChangePages()  # one Changes poll per Drive, whichever library asks first
        for service in services:
            service.shared_holds = shared
            service.change_pages = pages

        def stop(signum: int, frame: FrameType | None) -> None:
            for service in services:
                service._on_stop(signum, frame)

        def reload(signum: int, frame: FrameType | None) -> None:
            for service in services:
                service._on_reload(signum, frame)

        handlers = {signal.SIGTERM: stop, signal.SIGINT: stop, signal.SIGHUP: reload}
        previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
        prefix = LibraryPrefix()
        for handler in logging.getLogger().handlers:
            handler.addFilter(prefix)
        stack.callback(_remove_filter, prefix)
        names = ", ".join(f"{view.name} ({view.paths.database})" for view in views)
        log.info("service started (pid %d), %d libraries: %s", os.getpid(), len(views), names)
        for service in services:
            if service.alerts.enabled:
                service.alerts.report_unusable()
        web_jobs.start_web_many(bound, services, lambda: live_whole(app.config, services))
        threads = [
            threading.Thread(target=_run, args=(service,), name=f"library-{service.library}", daemon=True)
            for service in services
        ]
        try:
            for thread in threads:
                thread.start()
            while any(thread.is_alive() for thread in threads):
                for thread in threads:
                    thread.join(JOIN_S / len(threads))
        finally:
            if bound is not None:
                bound[0].close()
            for service in services:
                service.stop_requested = True
            for thread in threads:
                thread.join()
            for service in services:
                service.shutdown()
                service.store.close()
            for signum, old in previous.items():
                signal.signal(signum, old)
        code = max(service.exit_code for service in services)
        log.info("service stopped" if not code else f"service stopped (exit {code})")
        return code


def live_whole(start: Config, services: list[Service]) -> Config:
    """The whole config as the service runs it now, for the configuration page: the last
    SIGHUP a library took (else the config of the start), with each running library's
    own part as that library runs it (a library that refused a reload keeps its old part)."""
    taken = [service.reloaded for service in services if service.reloaded is not None]
    whole = taken[-1] if taken else start  # every library reads the same file at a SIGHUP
    live = {service.library: service.config.libraries[0] for service in services}
    libraries = tuple(live.pop(each.name, each) for each in whole.libraries) + tuple(live.values())
    first = libraries[0]
    return replace(
        whole,
        libraries=libraries,
        paths=first.paths,
        scan=first.scan,
        rules=first.rules,
        mount=first.mount,
        drive=first.drive,
    )


def _shared_holds(services: list[Service]) -> SharedHolds:
    """Which libraries see each server, and which library's database holds a server's saved settings."""
    seers: dict[str, set[str]] = {}
    holders: dict[str, str] = {}
    for service in services:
        for server in configured(service.config):
            seers.setdefault(server, set()).add(service.library)
        rows = service.store.execute("SELECT DISTINCT server FROM server_hold WHERE what != 'engaged'").fetchall()
        for (server,) in rows:
            holders.setdefault(str(server), service.library)
    return SharedHolds(seers, holders)


class LibraryPrefix(logging.Filter):
    """Every line logged on a library's thread says which library it is about (also after
    a SIGHUP rebuilt the handlers: ``keep_on_reconfigure``)."""

    keep_on_reconfigure = True

    def filter(self, record: logging.LogRecord) -> bool:
        name = threading.current_thread().name
        if name.startswith("library-") and not getattr(record, "library", None):
            library = name.removeprefix("library-")
            record.library = library  # marks it done for the next handler
            record.msg = f"[library {library}] {record.msg}"
        return True


def _remove_filter(prefix: logging.Filter) -> None:
    for handler in logging.getLogger().handlers:
        handler.removeFilter(prefix)


def _run(service: Service) -> None:
    """One library's loop; a defect in it ends that library's loop alone, said with its name."""
    try:
        service.loop()
    except Exception as exc:
        log.error(
            "library %s: its loop failed (%s: %s); the other libraries go on", service.library, type(exc).__name__, exc
        )
        service.exit_code = max(service.exit_code, 1)
