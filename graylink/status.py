"""``graylink status``: what the index holds, what waits, how the last runs went.

Everything here only reads the database (opened read-only), so it works while
the service loop writes. The Emby queue, the mount and the Drive feed each
add their own section.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from graylink import history
from graylink.config import Config
from graylink.db import META_LAST_FULL, Store
from graylink.lock import holder, lock_path

META_LAST_RECONCILE = "last_reconcile"


# ------------------------------------------------------------ last reconcile


def eventful(result: Any) -> bool:
    """Whether a cycle did or found anything (a no-op cycle need not be recorded)."""
    return bool(any(result.counts().values()) or result.exit_code or result.full)


def record_reconcile(store: Store, result: Any, trigger: str) -> None:
    """Keep a summary of one finished cycle in meta, for ``status``."""
    summary = {
        "at": time.time(),
        "trigger": trigger,
        "counts": result.counts(),
        "full": bool(result.full),
        "duration_s": result.stats.duration_s,
        "dirs_listed": result.stats.dirs_listed,
        "files_indexed": result.stats.files_indexed,
        "failures": len(result.failures),
        "stopped": result.stopped,
        "exit_code": result.exit_code,
    }
    applied = getattr(result, "applied", None)
    done = applied.done if applied is not None and not result.dry_run else []
    changes = [(a.op.value, a.link) for a in done if a.op.value in ("create", "repair", "prune")]
    with store.atomic():
        store.set_meta(META_LAST_RECONCILE, json.dumps(summary))
        history.record_cycle(store, summary)
        history.record_changes(store, changes, at=summary["at"])


def _json_meta(store: Store, key: str) -> Any:
    raw = store.get_meta(key)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


# -------------------------------------------------------------------- counts


def count_videos(store: Store) -> int:
    """Indexed files that the link rules want, as the reconciler last counted them."""
    return int(store.execute("SELECT coalesce(sum(videos), 0) FROM directory").fetchone()[0])


def _marks(store: Store) -> dict[str, Any]:
    rows = store.execute("SELECT reason, count(*), min(marked_at) FROM dirty GROUP BY reason").fetchall()
    by_reason = {str(reason): int(n) for reason, n, _ in rows}
    oldest = min((float(at) for _, _, at in rows), default=None)
    return {"total": sum(by_reason.values()), "by_reason": by_reason, "oldest_marked_at": oldest}


def _jobs(store: Store) -> list[dict[str, Any]]:
    if not store.db.table_exists("job_run"):
        return []
    rows = store.execute(
        "SELECT name, last_start, duration_s, ok, result, runs, failures, next_run FROM job_run ORDER BY name"
    )
    return [
        {
            "name": name,
            "last_run": last_start,
            "duration_s": duration,
            "ok": None if ok is None else bool(ok),
            "result": result,
            "runs": runs,
            "failures": failures,
            "next_run": next_run,
        }
        for name, last_start, duration, ok, result, runs, failures, next_run in rows
    ]


# ---------------------------------------------------------------- the document


# What status lists of the open problems; the counts cover them all.
PROBLEMS_SHOWN = 50


def _problems(config: Config, store: Store) -> dict[str, Any]:
    """Open conflicts and failed actions (graylink.problems), with the link paths."""
    from graylink.problems import open_problems, problem_counts

    root = config.paths.target.rstrip("/")
    return {
        **problem_counts(store),
        "open": [
            {
                "link": root + "/" + os.fsdecode(p.link),
                "kind": p.kind,
                "op": p.op,
                "detail": p.detail,
                "since": p.first_seen,
                "last_seen": p.last_seen,
            }
            for p in open_problems(store, PROBLEMS_SHOWN)
        ],
    }


def _section(read: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return dict(read())
    except Exception as exc:  # a broken section must not hide the rest of status
        return {"error": f"{exc.__class__.__name__}: {exc}"}


def collect_status(config: Config, store: Store | None) -> dict[str, Any]:
    """The status document (what ``status --json`` prints). ``store`` None: no database yet."""
    pid = holder(config.paths.database)
    doc: dict[str, Any] = {
        "config": config.file or None,
        "source": config.paths.source,
        "target": config.paths.target,
        "database": config.paths.database,
        "service": {"running": pid is not None, "pid": pid or None, "lock": lock_path(config.paths.database)},
    }
    if store is None:
        doc["index"] = None
        return doc
    last_full = store.get_meta(META_LAST_FULL)
    doc["schema_version"] = store.schema_version
    doc["index"] = {
        "dirs": store.count("directory"),
        "files": store.count("file"),
        "videos": count_videos(store),
        "links": store.count("link"),
        "link_dirs": store.count("link_dir"),
        "last_full_verify": float(last_full) if last_full else None,
    }
    doc["dirty"] = _marks(store)
    doc["problems"] = _problems(config, store)
    doc["last_reconcile"] = _json_meta(store, META_LAST_RECONCILE)
    doc["jobs"] = _jobs(store)
    # The pieces are imported only when their section is shown: status must
    # start fast (it is the container's health check).
    from graylink.notify.queue import configured, queue_status

    for server in configured(config):
        doc[server] = _section(partial(queue_status, store, server))
    from graylink.triggers.mount import mount_status

    doc["mount"] = _section(lambda: mount_status(config, store))
    if config.drive.enabled:
        from graylink.drive.feed import drive_status

        doc["drive"] = _section(lambda: drive_status(store))
    return doc


# ----------------------------------------------------------------- rendering


def _when(epoch: float | None, now: float) -> str:
    if epoch is None:
        return "never"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
    delta = epoch - now
    return f"{stamp} ({_span(delta)})"


def _span(delta: float) -> str:
    size = abs(delta)
    if size < 90:
        text = f"{size:.0f}s"
    elif size < 5400:
        text = f"{size / 60:.0f}m"
    elif size < 172800:
        text = f"{size / 3600:.1f}h"
    else:
        text = f"{size / 86400:.1f}d"
    return f"in {text}" if delta > 0 else f"{text} ago"


def _section_lines(title: str, section: dict[str, Any]) -> list[str]:
    lines = [f"{title}:"]
    for key, value in section.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        lines.append(f"  {key.replace('_', ' ')}: {value if value is not None else '-'}")
    return lines


def _problem_lines(problems: dict[str, Any] | None, now: float) -> list[str]:
    if not problems:
        return []
    total = problems["conflict"] + problems["failed"]
    if not total:
        return ["problems: none open"]
    lines = [f"problems: {problems['conflict']} conflicts, {problems['failed']} failed actions (retried each run)"]
    for p in problems["open"]:
        what = "conflict" if p["kind"] == "conflict" else f"{p['op']} failed"
        lines.append(f"  {what}: {p['link']}: {p['detail']} (since {_when(p['since'], now)})")
    if total > len(problems["open"]):
        lines.append(f"  … and {total - len(problems['open'])} more (graylink status --json lists {PROBLEMS_SHOWN})")
    return lines


def render_status(doc: dict[str, Any], now: float | None = None) -> str:
    now = time.time() if now is None else now
    service = doc["service"]
    lines = [
        f"source:   {doc['source']}",
        f"target:   {doc['target']}",
        f"database: {doc['database']}",
        "service:  " + (f"running (pid {service['pid']})" if service["running"] else "not running"),
    ]
    index = doc.get("index")
    if index is None:
        lines.append("index:    empty (no database yet: run 'graylink reconcile')")
        return "\n".join(lines)
    lines.append(
        f"index:    {index['dirs']} folders, {index['files']} files, {index['videos']} videos; "
        f"{index['links']} links in {index['link_dirs']} folders made by graylink"
    )
    lines.append(f"full verification: {_when(index['last_full_verify'], now)}")
    dirty = doc["dirty"]
    if dirty["total"]:
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(dirty["by_reason"].items()))
        lines.append(f"dirty:    {dirty['total']} marks ({reasons}), oldest {_when(dirty['oldest_marked_at'], now)}")
    else:
        lines.append("dirty:    nothing")
    lines.extend(_problem_lines(doc.get("problems"), now))
    last = doc.get("last_reconcile")
    if last:
        counts = last["counts"]
        detail = (
            f"{counts.get('create', 0)} created, {counts.get('repair', 0)} repaired, "
            f"{counts.get('prune', 0)} pruned, {counts.get('conflict', 0)} conflicts"
        )
        if counts.get("braked"):
            detail += f", {counts['braked']} prunes withheld"
        if counts.get("failed"):
            detail += f", {counts['failed']} failed"
        state = "ok" if last["exit_code"] == 0 else f"exit {last['exit_code']}"
        if last.get("stopped"):
            state += f", {last['stopped']}"
        lines.append(
            f"last reconcile: {_when(last['at'], now)} by {last['trigger']}: {detail} "
            f"in {last['duration_s']:.2f}s ({state})"
        )
    else:
        lines.append("last reconcile: never")
    if doc.get("jobs"):
        lines.append("jobs:")
        for job in doc["jobs"]:
            state = "-" if job["ok"] is None else "ok" if job["ok"] else "FAILED"
            took = f" in {job['duration_s']:.2f}s" if job["duration_s"] is not None else ""
            next_run = _when(job["next_run"], now) if job["next_run"] is not None else "- (loop not running)"
            lines.append(
                f"  {job['name']:<12} last {_when(job['last_run'], now)}{took}: {state} {job['result']}".rstrip()
            )
            lines.append(f"  {'':<12} next {next_run}; {job['runs']} runs, {job['failures']} failed")
    for key in ("emby", "plex"):
        if key in doc:
            lines.append(_queue_line(f"{key} queue", doc[key], now))
    for key, title in (("mount", "mount"), ("drive", "drive feed")):
        if key in doc:
            lines.extend(_section_lines(title, doc[key]))
    return "\n".join(lines)


def _queue_line(title: str, queue: dict[str, Any], now: float) -> str:
    """One media server's queue and last delivery, in one line."""
    if "error" in queue and "pending" not in queue:
        return f"{title}: unreadable ({queue['error']})"
    if queue["pending"]:
        waiting = (
            f"{queue['pending']} updates waiting ({queue['pending_paths']} paths, "
            f"oldest {_when(queue['oldest_queued_at'], now)})"
        )
    else:
        waiting = "nothing waiting"
    last = queue.get("last_delivery")
    if not last:
        return f"{title}: {waiting}; never delivered"
    server = f", {last['server']}" if last.get("server") else ""
    if last.get("ok"):
        outcome = f"ok, {last.get('sent', 0)} sent ({last.get('mode', '-')}{server})"
        if last.get("skipped"):
            outcome += f", {last['skipped']} under no library (not sent)"
    else:
        outcome = f"FAILED: {last.get('error', '')}"
    return f"{title}: {waiting}; last delivery {_when(last.get('time'), now)}: {outcome}"
