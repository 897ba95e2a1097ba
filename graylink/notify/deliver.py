"""One cycle's delivery to every configured media server, each on its own.

The database work (which rows wait for which server; which were
acknowledged) happens here, on the caller's thread and connection; the
talking happens on one thread per server, so a server that is slow or hangs
(within its deadline and budget) never delays another's delivery, and a
failure of one leaves the other's rows untouched.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from graylink.config import Config
from graylink.notify import changes as tracking
from graylink.notify import confirm, emby, plex, queue
from graylink.notify.changes import Lookup, Tracked
from graylink.notify.http import DELIVERY_BUDGET, REQUEST_DEADLINE, Budget, Sleep, scrub
from graylink.notify.queue import DeliveryResult, Queued
from graylink.store.db import Store

log = logging.getLogger(__name__)


def deliver_all(
    config: Config,
    store: Store,
    *,
    should_stop: Callable[[], bool] | None = None,
    sleep: Sleep | None = None,
    deadline: float = REQUEST_DEADLINE,
    budget: float = DELIVERY_BUDGET,
) -> dict[str, DeliveryResult]:
    """Deliver each configured server's queued updates, then check which reached its library.

    The results by server (``emby``, ``plex``).
    """
    servers = queue.configured(config)
    queue.drop_unconfigured(store, servers)
    results: dict[str, DeliveryResult] = {}
    work: dict[str, list[Queued]] = {}
    waiting: dict[str, list[Tracked]] = {}
    for name in servers:
        rows = queue.queued(store, name)
        if rows:
            work[name] = rows
        else:
            results[name] = DeliveryResult(server="plex" if config.server(name).kind == "plex" else "")
        waiting[name] = tracking.awaiting(store, name)
    root = os.fsencode(config.paths.target)
    plugin = {name: confirm.plugin_wanted(store, name) for name in work if config.server(name).kind != "plex"}

    def run(name: str) -> tuple[DeliveryResult, list[int], Lookup]:
        spend = Budget(budget, sleep, should_stop)
        server = config.server(name)
        if name not in work:
            result, done = results[name], list[int]()
        elif server.kind == "plex":
            result, done = plex.send(server.plex, work[name], root, spend, deadline)
        else:
            result, done = emby.send(server.emby, work[name], root, spend, deadline, plugin.get(name, False))
        if result.stopped or result.refused:
            return result, done, Lookup()
        return result, done, confirm.ask(config, name, waiting[name], spend, deadline, result.server)

    busy = [name for name in servers if name in work or any(r.sent_at is not None for r in waiting[name])]
    if busy:
        with ThreadPoolExecutor(max_workers=len(busy), thread_name_prefix="deliver") as pool:
            futures = {name: pool.submit(run, name) for name in busy}
            outcomes = {
                name: _outcome(config, name, future, len(work.get(name, ()))) for name, future in futures.items()
            }
        for name, (result, done, found) in outcomes.items():
            if name in work:
                queue.finish(store, name, done, result, work[name])
                server = config.server(name)
                if server.kind == "plex":
                    plex.report(server.plex, result, confirm.label(server))
                else:
                    emby.report(confirm.label(server, result), server.url, result)
                    confirm.settle_plugin(config, store, name, result)
            confirm.settle(config, store, name, waiting[name], found, result)
            results[name] = result
    return {name: results[name] for name in servers}


def _outcome(
    config: Config, name: str, future: Future[tuple[DeliveryResult, list[int], Lookup]], queued: int
) -> tuple[DeliveryResult, list[int], Lookup]:
    """One server's result. An error nobody foresaw in its delivery fails that
    server alone: its rows stay queued for the next cycle, and the other
    server's result is still recorded (the message scrubbed of its key)."""
    try:
        return future.result()
    except Exception as exc:  # a defect of one notifier must not cost the other its delivery
        server = config.server(name)
        reason = scrub(f"{type(exc).__name__}: {exc}", server.secret)
        log.error("delivery to %s failed unexpectedly (%s); its %d updates stay queued", name, reason, queued)
        failed = DeliveryResult(pending=queued, server="plex" if server.kind == "plex" else "", error=reason)
        return failed, [], Lookup()
