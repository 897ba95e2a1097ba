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
from graylink.notify import emby, plex, queue
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
    """Deliver each configured server's queued updates; the results by server (``emby``, ``plex``)."""
    servers = queue.configured(config)
    queue.drop_unconfigured(store, servers)
    results: dict[str, DeliveryResult] = {}
    work: dict[str, list[Queued]] = {}
    for name in servers:
        rows = queue.queued(store, name)
        if rows:
            work[name] = rows
        else:
            results[name] = DeliveryResult(server="plex" if name == "plex" else "")
    root = os.fsencode(config.paths.target)

    def run(name: str) -> tuple[DeliveryResult, list[int]]:
        spend = Budget(budget, sleep, should_stop)
        if name == "plex":
            return plex.send(config.plex, work[name], root, spend, deadline)
        return emby.send(config.emby, work[name], root, spend, deadline)

    if work:
        with ThreadPoolExecutor(max_workers=len(work), thread_name_prefix="deliver") as pool:
            futures = {name: pool.submit(run, name) for name in work}
            outcomes = {name: _outcome(config, name, future, len(work[name])) for name, future in futures.items()}
        for name, (result, done) in outcomes.items():
            queue.finish(store, name, done, result)
            if name == "plex":
                plex.report(config.plex, result)
            else:
                emby.report(emby.label_of(config.emby, result), config.emby.url, result)
            results[name] = result
    return {name: results[name] for name in servers}


def _outcome(
    config: Config, name: str, future: Future[tuple[DeliveryResult, list[int]]], queued: int
) -> tuple[DeliveryResult, list[int]]:
    """One server's result. An error nobody foresaw in its delivery fails that
    server alone: its rows stay queued for the next cycle, and the other
    server's result is still recorded (the message scrubbed of its key)."""
    try:
        return future.result()
    except Exception as exc:  # a defect of one notifier must not cost the other its delivery
        secret = config.plex.token if name == "plex" else config.emby.api_key
        reason = scrub(f"{type(exc).__name__}: {exc}", secret)
        log.error("delivery to %s failed unexpectedly (%s); its %d updates stay queued", name, reason, queued)
        return DeliveryResult(pending=queued, server="plex" if name == "plex" else "", error=reason), []
