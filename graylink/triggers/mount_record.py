"""A mount's health over time: kept in the database, told in the log once per change.

The loop checks the mount every ``[mount] check_interval`` (30 s by default),
and an outage can last a night: the same ERROR every 30 s would bury
everything else in the journal. So the loop tells a drop once (ERROR), again
when its reason changes (ERROR), reminds that it lasts at most every
``REMIND_S`` (WARNING, with how long), and tells the recovery once (INFO,
with how long it was down). A one-shot ``graylink reconcile`` tells its
failure every time: each run is the user's question. What the log needs to
know (since when the mount is down, its last failure and when it was seen) is
the state ``graylink status`` and the alerts already read.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from graylink.store.clock import in_future, tell_jump
from graylink.store.db import Store

log = logging.getLogger("graylink.triggers.mount")  # the mount check's lines, wherever they are told


@dataclass(frozen=True)
class Health:
    """One look at the mount: healthy, or the check that failed and why."""

    ok: bool
    failed_check: str = ""
    message: str = ""
    dead: bool = False  # a mount point that errors or hangs: needs a lazy unmount before a remount
    # A recovery: how long the outage lasted, from its first failed check to this
    # check; the log line and the recovery alert both tell this one length.
    down_s: float | None = None


META_DOWN_SINCE = "mount_down_since"
META_LAST_FAILURE = "mount_last_failure"

REMIND_S = 1800.0  # a lasting outage is recalled this often (WARNING)
_KEPT = "nothing will be pruned and dirty marks are kept"


@dataclass(frozen=True)
class Outage:
    """The drop the database remembers: since when, its last failure, when that was seen."""

    since: float
    check: str
    message: str
    seen_at: float


def outage(store: Store) -> Outage | None:
    raw = store.get_meta(META_DOWN_SINCE)
    if raw is None:
        return None
    try:
        since = float(raw)
    except ValueError:
        return None
    try:
        last = json.loads(store.get_meta(META_LAST_FAILURE) or "{}")
    except ValueError:
        last = {}
    if not isinstance(last, dict):
        last = {}
    seen_at = last.get("at")
    seen = float(seen_at) if isinstance(seen_at, (int, float)) and seen_at >= since else since
    return Outage(since, str(last.get("check", "")), str(last.get("message", "")), seen)


def record_health(store: Store, health: Health, now: float | None = None) -> bool:
    """Keep the drop and its last failure in the DB; True when this is a recovery.

    A recovery (healthy after a remembered drop) is the caller's cue to verify
    the whole tree: whatever changed while the mount was down went unseen.
    """
    now = time.time() if now is None else now
    if not health.ok:
        store.set_meta(
            META_LAST_FAILURE, json.dumps({"at": now, "check": health.failed_check, "message": health.message})
        )
        since = store.get_meta(META_DOWN_SINCE)
        if since is None:
            store.set_meta(META_DOWN_SINCE, repr(now))
        elif _future(since, now):
            # A drop "since 2100" would never be recalled, and tell a length of 0 s.
            tell_jump("the start of the mount outage", float(since), "counting the outage from now")
            store.set_meta(META_DOWN_SINCE, repr(now))
        return False
    if store.get_meta(META_DOWN_SINCE) is None:
        return False
    store.execute("DELETE FROM meta_value WHERE key = ?", (META_DOWN_SINCE,))
    return True


def _future(recorded: str, now: float) -> bool:
    try:
        return in_future(float(recorded), now)
    except ValueError:
        return False


def failure_line(before: Outage | None, health: Health, now: float, *, quiet_repeats: bool) -> tuple[int, str]:
    """The level and text a failed check is told with, given the drop remembered before it.

    ``quiet_repeats`` (the loop): the same failure again is DEBUG, but for a
    WARNING each time the outage passes another ``REMIND_S``."""
    text = f"mount check {health.failed_check} failed: {health.message}; {_KEPT}"
    if not quiet_repeats or before is None or (before.check, before.message) != (health.failed_check, health.message):
        return logging.ERROR, text
    if int((now - before.since) // REMIND_S) > int((before.seen_at - before.since) // REMIND_S):
        return logging.WARNING, (
            f"the mount is still down after {span(now - before.since)} (since {_local(before.since)}): "
            f"mount check {health.failed_check} fails: {health.message}; {_KEPT}"
        )
    return logging.DEBUG, text


def tell_failure(before: Outage | None, health: Health, now: float, *, quiet_repeats: bool) -> None:
    level, text = failure_line(before, health, now, quiet_repeats=quiet_repeats)
    log.log(level, "%s", text)


def tell_recovery(before: Outage | None, now: float) -> float | None:
    """Tell the recovery (INFO) and return the outage's length (None: none was remembered)."""
    down_s = max(0.0, now - before.since) if before is not None else None
    down = f" after {span(down_s)} down" if down_s is not None else ""
    log.info("the source is back%s: every folder will be verified", down)
    return down_s


def span(seconds: float) -> str:
    """``42 s``, ``25 min``, ``2 h 05 min``, ``3 days 4 h``."""
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h"


def _local(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch))
