"""The service's jobs for the web face: reconcile at once when a request marked
something, and re-mark the folders a Sonarr / Radarr webhook still waits for."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from graylink.config import Config
from graylink.reconcile.cycle import CycleOptions
from graylink.service.running import Outcome
from graylink.service.running import Running as Service

if TYPE_CHECKING:
    from graylink.web.app import WebContext
    from graylink.web.server import WebServer

log = logging.getLogger(__name__)


def job_arr(service: Service) -> Outcome:
    """Folders a Sonarr / Radarr webhook named: re-marked until their files reach the mount."""
    from graylink.web.arrwait import recheck

    marks = recheck(service.store, service.config.web.arr_wait)
    if not marks:
        return Outcome(True, "nothing waits")
    return Outcome(True, f"{marks} folders re-marked").then(service.reconcile_if_dirty("webhook"))


def arr_recheck_interval(config: Config) -> float:
    """About 60 looks within ``[web] arr_wait``, never more often than every second nor rarer than every 30 s."""
    return min(30.0, max(1.0, config.web.arr_wait / 60))


def job_woken(service: Service) -> Outcome:
    """A web request marked something or asked for an action: do it now, without waiting for the walk.

    The actions (graylink.web.actions) come first: a brake released for the
    prunes a person was shown is one cycle over the marked folders; a delivery
    asked for runs after whatever cycle ran (a cycle delivers by itself)."""
    from graylink.web.actions import DELIVER, RELEASE, take

    asked = take(service.store)
    outcome: Outcome | None = None
    if RELEASE in asked:
        allowance = int(asked[RELEASE].get("prunes", 0) or 0)
        done = service.reconcile("web-release", CycleOptions(walk=False, prune_allowance=allowance))
        log.info("web action release-brake (up to %d prunes): %s", allowance, done.result)
        outcome = done
    marked = service.reconcile_if_dirty("webhook")
    outcome = marked if outcome is None else outcome.then(marked)
    if DELIVER in asked:
        if outcome is None:
            outcome = deliver_now(service)
        else:
            log.info("web action deliver: delivered with the cycle it woke")
    return outcome or Outcome(True, "nothing marked")


def deliver_now(service: Service) -> Outcome:
    """Every server's queued updates, sent now (the web face's "retry deliveries now")."""
    config = service.config
    if not config.servers:
        log.info("web action deliver: no media server is configured")
        return Outcome(True, "no media server to deliver to")
    from graylink.reconcile.announce import notify

    results = notify(config, service.store, service.should_stop)
    parts = [f"{n}: {r.sent} sent, {r.pending} queued" + (f" ({r.error})" * bool(r.error)) for n, r in results.items()]
    ok = all(r.ok for r in results.values())
    line = "; ".join(parts) or "nothing queued"
    (log.info if ok else log.error)("web action deliver: %s", line)
    return Outcome(ok, f"delivered: {line}")


Bound = tuple["WebServer", "WebContext"]


def bind_web(config: Config) -> tuple[WebServer, WebContext] | None:
    """Take ``[web] listen`` before the service makes anything: a port in use is
    exit 2 with nothing left behind. No request is served until :func:`start_web`."""
    if not config.web.listen:
        return None
    from graylink.web.app import WebContext
    from graylink.web.server import WebServer

    ctx = WebContext(config=lambda: config, wake=lambda: None)
    return WebServer(config.web.listen, ctx), ctx


def start_web(bound: tuple[WebServer, WebContext] | None, service: Service) -> WebServer | None:
    """Serve the bound address, for the running service (SIGHUP's config included)."""
    if bound is None:
        return None
    web, ctx = bound
    ctx.config = lambda: service.config
    ctx.wake = service.wake.set
    web.start()
    return web


def start_web_many(
    bound: tuple[WebServer, WebContext] | None, services: Sequence[Service], whole: Callable[[], Config]
) -> None:
    """Serve the bound address for a service of several libraries: every library's live view, and a
    request that marked (or asked for) something in one library wakes that library's loop alone."""
    if bound is None:
        return
    web, ctx = bound
    by_name = {service.config.name: service for service in services}
    ctx.config = lambda: services[0].config
    ctx.wake = services[0].wake.set
    ctx.views = lambda: [service.config for service in services]
    ctx.wake_library = lambda name: by_name[name].wake.set() if name in by_name else None
    ctx.whole = whole  # the configuration page: every section as it runs now (SIGHUP's included)
    web.start()
