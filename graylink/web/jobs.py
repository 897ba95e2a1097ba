"""The service's jobs for the web face: reconcile at once when a request marked
something, and re-mark the folders a Sonarr / Radarr webhook still waits for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from graylink.config import Config

if TYPE_CHECKING:
    from graylink.jobs import Outcome
    from graylink.service import Service
    from graylink.web.server import WebServer


def job_arr(service: Service) -> Outcome:
    """Folders a Sonarr / Radarr webhook named: re-marked until their files reach the mount."""
    from graylink.jobs import Outcome
    from graylink.web.arr import recheck

    marks = recheck(service.store)
    if not marks:
        return Outcome(True, "nothing waits")
    return Outcome(True, f"{marks} folders re-marked").then(service.reconcile_if_dirty("webhook"))


def arr_recheck_interval(config: Config) -> float:
    """About 60 looks within ``[web] arr_wait``, never more often than every second nor rarer than every 30 s."""
    return min(30.0, max(1.0, config.web.arr_wait / 60))


def job_woken(service: Service) -> Outcome:
    """A web trigger marked something: reconcile it now, without waiting for the walk."""
    from graylink.jobs import Outcome

    return service.reconcile_if_dirty("webhook") or Outcome(True, "nothing marked")


def start_web(service: Service) -> WebServer | None:
    if not service.config.web.listen:
        return None
    from graylink.web.app import WebContext
    from graylink.web.server import WebServer

    web = WebServer(service.config.web.listen, WebContext(config=lambda: service.config, wake=service.wake.set))
    web.start()
    return web
