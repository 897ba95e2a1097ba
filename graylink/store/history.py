"""What the service did lately: the last cycles, the last link changes, and running totals.

The status page and ``/metrics`` read these; they live in ``meta`` as small
JSON documents (bounded lists), written in the transaction that records the
cycle, so they survive a restart and need no migration.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from graylink.store.db import Store

META_CYCLES = "history_cycles"
META_CHANGES = "history_changes"
META_TOTALS = "history_totals"
META_HOURS = "history_hours"  # link changes per hour (epoch // 3600), for the status page's chart

KEEP_HOURS = 48

KEEP_CYCLES = 200  # the page shows 20 rows, quiet runs folded into one
KEEP_CHANGES = 200


def _load(store: Store, key: str, default: Any) -> Any:
    raw = store.get_meta(key)
    if not raw:
        return default
    try:
        value = json.loads(raw)
    except ValueError:
        return default
    return value if isinstance(value, type(default)) else default


def result_label(exit_code: int, stopped: str) -> str:
    """A cycle's result for people and for ``graylink_cycles_total{result=...}``."""
    if exit_code == 0:
        return "ok"
    return "stopped" if stopped else "attention"


def record_cycle(store: Store, summary: dict[str, Any]) -> None:
    """Append one cycle's summary (as ``record_reconcile`` builds it) and count it.

    Runs inside the caller's transaction."""
    cycles = _load(store, META_CYCLES, [])
    cycles.append(summary)
    store.set_meta(META_CYCLES, json.dumps(cycles[-KEEP_CYCLES:]))
    totals = _load(store, META_TOTALS, {})
    label = result_label(int(summary.get("exit_code", 0)), str(summary.get("stopped", "")))
    by_result = totals.setdefault("cycles", {})
    by_result[label] = int(by_result.get(label, 0)) + 1
    totals["duration_s"] = float(totals.get("duration_s", 0.0)) + float(summary.get("duration_s", 0.0))
    if label == "ok":
        totals["last_ok_at"] = summary.get("at")
    store.set_meta(META_TOTALS, json.dumps(totals))
    _count_hour(store, summary)


def _count_hour(store: Store, summary: dict[str, Any]) -> None:
    """Add a cycle's link changes to its hour's bucket (kept for two days)."""
    counts = summary.get("counts")
    if not isinstance(counts, dict):
        return
    changed = {op: int(counts.get(op, 0) or 0) for op in _CHANGE_OPS}
    if not any(changed.values()):
        return
    hour = int(float(summary.get("at") or time.time()) // 3600)
    hours = _load(store, META_HOURS, {})
    bucket = hours.setdefault(str(hour), {})
    for op, n in changed.items():
        bucket[op] = int(bucket.get(op, 0)) + n
    kept = {k: v for k, v in hours.items() if k.isdigit() and int(k) > hour - KEEP_HOURS}
    store.set_meta(META_HOURS, json.dumps(kept, sort_keys=True))


def changes_by_hour(store: Store) -> dict[int, dict[str, int]]:
    """Link changes per hour (epoch // 3600): the hourly record, and for hours before it
    (a database from before the record) what the kept cycles say."""
    found: dict[int, dict[str, int]] = {}
    for cycle in _load(store, META_CYCLES, []):
        if not isinstance(cycle, dict) or not isinstance(cycle.get("counts"), dict):
            continue
        hour = int(float(cycle.get("at") or 0) // 3600)
        bucket = found.setdefault(hour, {})
        for op in _CHANGE_OPS:
            bucket[op] = bucket.get(op, 0) + int(cycle["counts"].get(op, 0) or 0)
    recorded = _load(store, META_HOURS, {})
    if recorded:
        first = min(int(k) for k in recorded if k.isdigit())
        found = {h: b for h, b in found.items() if h < first}
        for key, bucket in recorded.items():
            if key.isdigit() and isinstance(bucket, dict):
                found[int(key)] = {op: int(bucket.get(op, 0) or 0) for op in _CHANGE_OPS}
    return found


_CHANGE_OPS = frozenset(("create", "repair", "prune"))


def last_changes(done: Sequence[Any]) -> list[tuple[str, bytes]]:
    """The newest ``KEEP_CHANGES`` link changes among a cycle's done actions, oldest first.

    Read from the end: a first run does tens of thousands, and only the last
    few are kept."""
    out: list[tuple[str, bytes]] = []
    for action in reversed(done):
        op = str(action.op.value)
        if op in _CHANGE_OPS:
            out.append((op, action.link))
            if len(out) == KEEP_CHANGES:
                break
    out.reverse()
    return out


def record_changes(store: Store, changes: Iterable[tuple[str, bytes]], at: float | None = None) -> None:
    """Keep the newest link changes (op, link path relative to the target). Runs in the caller's transaction."""
    when = time.time() if at is None else at
    fresh = [[when, op, path.decode("utf-8", "backslashreplace")] for op, path in changes]
    if not fresh:
        return
    kept = _load(store, META_CHANGES, [])
    kept.extend(fresh[-KEEP_CHANGES:])
    store.set_meta(META_CHANGES, json.dumps(kept[-KEEP_CHANGES:]))


def recent_cycles(store: Store) -> list[dict[str, Any]]:
    """Newest first."""
    return [c for c in reversed(_load(store, META_CYCLES, [])) if isinstance(c, dict)]


def recent_changes(store: Store) -> list[dict[str, Any]]:
    """Newest first, each ``{"at", "op", "path"}``."""
    out = []
    for row in reversed(_load(store, META_CHANGES, [])):
        if isinstance(row, list) and len(row) == 3:
            out.append({"at": row[0], "op": row[1], "path": row[2]})
    return out


def totals(store: Store) -> dict[str, Any]:
    return dict(_load(store, META_TOTALS, {}))
