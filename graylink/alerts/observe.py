"""Observations from what the service's jobs return: a cycle, a mount check, a Drive poll."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from graylink.alerts.rules import Observation, ServerSeen


def from_cycle(result: Any, open_conflicts: Sequence[str] | None = None) -> Observation:
    """A finished cycle: its brake, its conflicts, its delivery, whether it failed."""
    counts = result.plan.counts()
    if open_conflicts is None:
        open_conflicts = [
            a.link.decode("utf-8", "backslashreplace") for a in result.plan.visible() if a.op.value == "conflict"
        ]
    servers: dict[str, ServerSeen] = {}
    stuck: dict[str, tuple[str, ...]] = {}
    for name, delivery in _deliveries(result).items():
        if delivery.mode != "none" or delivery.error:
            servers[name] = ServerSeen(delivery.ok, bool(getattr(delivery, "refused", False)), delivery.error)
        if getattr(delivery, "stuck", None):
            stuck[name] = tuple(delivery.stuck)
    failed = "; ".join(str(f) for f in result.failures[:3]) if result.failures else ""
    return Observation(
        at=time.time(),
        braked=0 if result.dry_run else int(counts.get("braked", 0)),
        conflicts=tuple(open_conflicts),
        servers=servers or None,
        cycle_error=None if result.stopped else failed,
        stuck=stuck or None,
    )


def _deliveries(result: Any) -> dict[str, Any]:
    """Each media server's delivery of the cycle (``CycleResult.media``), by server name."""
    media = getattr(result, "media", None)
    return dict(media) if isinstance(media, dict) else {}


def from_mount(health: Any, remount_attempted: bool) -> Observation:
    message = f"{health.failed_check}: {health.message}" if health.failed_check else health.message
    return Observation(
        at=time.time(),
        mount_ok=bool(health.ok),
        mount_message=message,
        mount_down_s=getattr(health, "down_s", None),
        remount_error=message if remount_attempted and not health.ok else "",
    )


def from_feed(poll: Any) -> Observation:
    if getattr(poll, "skipped", None):
        return Observation(at=time.time())  # a poll skipped on purpose (a borrowed token being renewed)
    return Observation(
        at=time.time(),
        feed_ok=poll.error is None,
        feed_refused=bool(getattr(poll, "scope_missing", False)),
        feed_error=str(poll.error or ""),
    )


def from_crash(error: str) -> Observation:
    """A cycle that raised instead of finishing."""
    return Observation(at=time.time(), cycle_error=error or "unexpected error")


def from_protect(engaged: dict[str, str], released: list[str]) -> Observation:
    """Servers whose protection began (with what was done) or ended at this mount check."""
    return Observation(at=time.time(), protect_on=dict(engaged) or None, protect_off=tuple(released) or None)


def from_server_mount(ok: bool, message: str, server: str = "emby") -> Observation:
    """Whether the media server can read the source (its own view of the mount)."""
    return Observation(at=time.time(), server_mount_ok=ok, server_mount_message=message, server_mount_server=server)
