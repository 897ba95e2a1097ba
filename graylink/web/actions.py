"""Management actions: what a page (or a script) asks the running service to do.

A request never does long work itself: it writes what was asked into the
database -- dirty marks, queue rows, or a request the loop takes
(``web.requests`` in meta) -- wakes the loop, and answers 202 with what was
queued. The loop's wake job (:func:`graylink.service.web_jobs.job_woken`)
then runs it and logs the outcome. Requests survive a restart; one older than
:data:`EXPIRES` is dropped unrun (a brake released an hour ago is not consent now).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from graylink.store import history
from graylink.store.db import Store

log = logging.getLogger(__name__)

META_REQUESTS = "web.requests"
RELEASE, DELIVER = "release", "deliver"
EXPIRES = 15 * 60.0


@dataclass(frozen=True)
class Brake:
    """What the prune brake holds now, as the last cycle left it."""

    prunes: int  # prunes the last cycle withheld
    at: float  # when that cycle ran


def brake_state(store: Store) -> Brake:
    cycles = history.recent_cycles(store)
    if not cycles:
        return Brake(0, 0.0)
    last = cycles[0]
    counts = last.get("counts")
    if not isinstance(counts, dict):
        counts = {}
    return Brake(int(counts.get("braked", 0) or 0), float(last.get("at") or 0.0))


def _load(store: Store) -> dict[str, dict[str, Any]]:
    try:
        found = json.loads(store.get_meta(META_REQUESTS) or "{}")
    except ValueError:
        return {}
    return {k: v for k, v in found.items() if isinstance(v, dict)} if isinstance(found, dict) else {}


def ask(store: Store, kind: str, **fields: Any) -> None:
    """Record a request for the loop (one per kind: a second replaces the first). In a transaction of its own."""
    with store.atomic():
        requests = _load(store)
        requests[kind] = {**fields, "at": time.time()}
        store.set_meta(META_REQUESTS, json.dumps(requests))


def take(store: Store, now: float | None = None) -> dict[str, dict[str, Any]]:
    """The requests waiting, removed from the database; expired ones are dropped with a line each."""
    when = time.time() if now is None else now
    with store.atomic():
        requests = _load(store)
        if requests:
            store.set_meta(META_REQUESTS, "{}")
    fresh = {}
    for kind, fields in requests.items():
        if when - float(fields.get("at", 0) or 0) > EXPIRES:
            log.warning("web action %s: dropped, asked more than %d min ago and not run", kind, EXPIRES // 60)
        else:
            fresh[kind] = fields
    return fresh
