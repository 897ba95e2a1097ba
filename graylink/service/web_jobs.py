"""The service's jobs for the web face: reconcile at once when a request marked
something, and re-mark the folders a Sonarr / Radarr webhook still waits for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from graylink.config import Config
from graylink.service.running import Outcome
from graylink.service.running import Running as Service

if TYPE_CHECKING:
    from graylink.web.app import WebContext
    from graylink.web.server import WebServer


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
    """A web trigger marked something: reconcile it now, without waiting for the walk."""
    return service.reconcile_if_dirty("webhook") or Outcome(True, "nothing marked")


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
