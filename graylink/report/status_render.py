"""``graylink status`` for a person: the status document as lines of text.

Times are local date-times with how long ago (or how soon); what is not set
is left out rather than shown as an empty ``key:`` line. ``status --json``
prints the document itself, with machine values (epoch seconds).
"""

from __future__ import annotations

import time
from typing import Any

from graylink.links.claim_report import claims_line
from graylink.report.status import PROBLEMS_SHOWN, shown_path
from graylink.words import count

# Section keys that hold a moment (epoch seconds), for sections no renderer knows.
_TIME_KEYS = ("_at", "_since", "since", "time", "last_poll", "cursor", "newest_change", "next_run", "last_run")


def when(epoch: float | None, now: float) -> str:
    """``2026-12-01 14:14:56 (4s ago)``, in local time; ``never`` for None."""
    if epoch is None:
        return "never"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
    return f"{stamp} ({span(epoch - now)})"


def span(delta: float) -> str:
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


def _counts(counts: dict[str, int]) -> str:
    text = (
        f"{counts.get('create', 0)} created, {counts.get('repair', 0)} repaired, "
        f"{counts.get('prune', 0)} pruned, {count(counts.get('conflict', 0), 'conflict')}"
    )
    if counts.get("braked"):
        text += f", {count(counts['braked'], 'prune')} withheld"
    if counts.get("failed"):
        text += f", {counts['failed']} failed"
    if counts.get("not_tried"):
        text += f", {counts['not_tried']} not tried"
    return text


# ------------------------------------------------------------------ sections


def _index_lines(doc: dict[str, Any], now: float) -> list[str]:
    index = doc["index"]
    sidecars = int(index.get("sidecars") or 0)
    links = f"{index['links']} links ({sidecars} to sidecars)" if sidecars else f"{index['links']} links"
    lines = [
        f"index:    {index['dirs']} folders, {index['files']} files ({index['videos']} linkable); "
        f"{links} in {index['link_dirs']} folders made by graylink",
        f"full verification: {when(index['last_full_verify'], now)}",
    ]
    dirty = doc["dirty"]
    if dirty["total"]:
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(dirty["by_reason"].items()))
        lines.append(f"dirty:    {dirty['total']} marks ({reasons}), oldest {when(dirty['oldest_marked_at'], now)}")
    else:
        lines.append("dirty:    nothing")
    return lines


def _problem_lines(problems: dict[str, Any] | None, now: float) -> list[str]:
    if not problems:
        return []
    unlistable = problems.get("unlistable", 0)
    total = problems["conflict"] + problems["failed"] + unlistable
    if not total:
        return ["problems: none open"]
    head = f"problems: {count(problems['conflict'], 'conflict')}, {count(problems['failed'], 'failed action')}"
    if unlistable:
        head += f", {count(unlistable, 'unlistable folder')}"
    lines = [head + " (retried each run)"]
    for p in problems["open"]:
        kind = p["kind"]
        what = "conflict" if kind == "conflict" else "unlistable" if kind == "unlistable" else f"{p['op']} failed"
        lines.append(f"  {what}: {shown_path(p['link'])}: {p['detail']} (since {when(p['since'], now)})")
    if total > len(problems["open"]):
        lines.append(f"  … and {total - len(problems['open'])} more (graylink status --json lists {PROBLEMS_SHOWN})")
    return lines


def _last_reconcile_line(last: dict[str, Any] | None, now: float) -> str:
    if not last:
        return "last reconcile: never"
    state = "ok" if last["exit_code"] == 0 else f"exit {last['exit_code']}"
    if last.get("stopped"):
        state += f", {last['stopped']}"
    full = " (full verification)" if last.get("full") else ""
    return (
        f"last reconcile: {when(last['at'], now)} by {last['trigger']}{full}: {_counts(last['counts'])} "
        f"in {last['duration_s']:.2f}s ({state})"
    )


def _job_lines(jobs: list[dict[str, Any]], now: float, running: bool) -> list[str]:
    if not jobs:
        return []
    lines = ["jobs:"]
    for job in jobs:
        if job["last_run"] is None:
            last = "not run yet"
        else:
            state = "-" if job["ok"] is None else "ok" if job["ok"] else "FAILED"
            took = f" in {job['duration_s']:.2f}s" if job["duration_s"] is not None else ""
            last = f"last {when(job['last_run'], now)}{took}: {state} {job['result']}".rstrip()
        lines.append(f"  {job['name']:<12} {last}")
        if job["next_run"] is not None:
            next_run = f"next {when(job['next_run'], now)}"
        else:  # a running loop schedules every job but the one a web request wakes
            next_run = "runs when a web request marks something" if running else "loop not running"
        lines.append(f"  {'':<12} {next_run}; {job['runs']} runs, {job['failures']} failed")
    return lines


def _mount_lines(mount: dict[str, Any], now: float) -> list[str]:
    fs = mount.get("fs_type") or "unknown filesystem"
    where = "a mount point" if mount.get("is_mountpoint") else "not a mount point"
    trust = "folder times trusted" if mount.get("trusted_mtimes") else "folders re-listed each walk"
    if mount.get("healthy"):
        lines = [f"mount:    healthy ({fs}, {where}, {trust})"]
    else:
        line = f"mount:    UNHEALTHY: {mount.get('failed_check') or 'check'} failed: {mount.get('message') or '?'}"
        if mount.get("down_since") is not None:
            line += f"; down since {when(mount['down_since'], now)}"
        lines = [line, f"  ({fs}, {where}, {trust})"]
    last = mount.get("last_failure")
    if isinstance(last, dict) and last.get("at") is not None:
        lines.append(f"  last failure {when(last['at'], now)}: {last.get('check')}: {last.get('message')}")
    return lines


def _queue_line(title: str, queue: dict[str, Any], now: float) -> str:
    """One media server's queue and last delivery, in one line."""
    if queue["queued"]:
        waiting = (
            f"{queue['queued']} updates waiting ({queue['queued_paths']} paths, "
            f"oldest {when(queue['oldest_queued_at'], now)})"
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
    return f"{title}: {waiting}; last delivery {when(last.get('time'), now)}: {outcome}"


def _library_lines(title: str, queue: dict[str, Any], now: float) -> list[str]:
    """What the server's library shows of the changes: pending, confirmed, stuck (with each reason)."""
    lines = [
        f"{title}: {queue.get('pending', 0)} pending, {queue.get('confirmed', 0)} confirmed, "
        f"{queue.get('stuck', 0)} stuck"
    ]
    for item in queue.get("stuck_paths") or []:
        lines.append(
            f"  stuck since {when(item.get('since'), now)}: {shown_path(item.get('path', ''))}: {item.get('reason')}"
        )
    if queue.get("stuck"):
        lines.append("  (sent again when their folder changes, or by: graylink reconcile --path PATH)")
    seen = queue.get("server_mount")
    if isinstance(seen, dict):
        verdict = "ok" if seen.get("ok") else "STALE"
        lines.append(f"  its view of the mount: {verdict}: {seen.get('message')} ({when(seen.get('at'), now)})")
    return lines


def _drive_lines(drive: dict[str, Any], now: float) -> list[str]:
    feed = drive.get("feed") or "not chosen yet"
    if drive.get("feed_reason"):
        feed += f" ({drive['feed_reason']})"
    lines = [f"drive feed: {feed}"]
    if drive.get("last_poll") is not None:
        result = f": {drive['last_result']}" if drive.get("last_result") else ""
        lines.append(f"  last poll {when(drive['last_poll'], now)}{result}")
        lines.append(
            f"  {drive.get('last_activities', 0)} changes, {drive.get('last_marks', 0)} marks "
            f"({drive.get('total_marks', 0)} in all); {drive.get('calls_last_poll', 0)} calls, "
            f"{drive.get('calls_24h', 0)} in 24h"
        )
    else:
        lines.append("  not polled yet")
    if drive.get("cursor") is not None:
        lines.append(f"  caught up to {when(drive['cursor'], now)}; {drive.get('known_items', 0)} items known")
    return lines


def _generic_lines(title: str, section: dict[str, Any], now: float) -> list[str]:
    """A section no renderer knows: its set values, times made readable."""
    lines = [f"{title}:"]
    for key, value in section.items():
        if value is None or value == "" or value == {}:
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key.endswith(_TIME_KEYS):
            value = when(float(value), now)
        elif isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items() if v is not None and v != "")
        lines.append(f"  {key.replace('_', ' ')}: {value}")
    return lines


def _webhook_lines(section: dict[str, Any], now: float) -> list[str]:
    line = f"webhooks: {int(section.get('ignored') or 0)} ignored"
    last = section.get("last_ignored")
    if isinstance(last, dict):
        at = last.get("at")
        since = when(float(at), now) if isinstance(at, (int, float)) else "?"
        line += f" (last {since}, {last.get('origin')} {last.get('event')}: {last.get('reason')})"
    return [line + f"; {int(section.get('waiting_files') or 0)} announced file(s) awaited"]


def _section(key: str, section: Any, now: float) -> list[str]:
    if not isinstance(section, dict):
        return []
    if "error" in section and len(section) == 1:
        return [f"{key}:".ljust(10) + f"cannot tell ({section['error']})"]
    if key == "mount":
        return _mount_lines(section, now)
    if "queued" in section and "last_delivery" in section:  # a media server's queue
        return [_queue_line(f"{key} queue", section, now), *_library_lines(f"{key} library", section, now)]
    if key == "drive":
        return _drive_lines(section, now)
    if key == "webhooks":
        return _webhook_lines(section, now)
    return _generic_lines(key, section, now)


# ---------------------------------------------------------------------- page

_TOP_KEYS = {"config", "source", "target", "database", "service", "index", "schema_version", "dirty"}
_TOP_KEYS |= {"problems", "last_reconcile", "jobs", "servers", "library", "libraries", "claims", "library_mismatch"}


def render_status(doc: dict[str, Any], now: float | None = None) -> str:
    now = time.time() if now is None else now
    service = doc["service"]
    lines = []
    if doc.get("library_mismatch"):
        lines.append(f"WARNING: {doc['library_mismatch']}; what follows is that library's index")
    lines += [
        f"source:   {doc['source']}",
        f"target:   {doc['target']}",
        f"database: {doc['database']}",
        "service:  " + (f"running (pid {service['pid']})" if service["running"] else "not running"),
    ]
    claims = doc.get("claims")
    if isinstance(claims, list) and claims:
        lines.append("link tree: " + claims_line(claims))
    if doc.get("index") is None:
        lines.append("index:    empty (no database yet: run 'graylink reconcile')")
        return "\n".join(lines)
    lines += _index_lines(doc, now)
    lines += _problem_lines(doc.get("problems"), now)
    lines.append(_last_reconcile_line(doc.get("last_reconcile"), now))
    lines += _job_lines(doc.get("jobs") or [], now, bool(service["running"]))
    # The pieces' sections, known ones first in a fixed order, then any other.
    order = ["emby", "plex", "mount", "drive"]
    order += [k for k in doc if k not in _TOP_KEYS and k not in order]
    for key in order:
        if key in doc:
            lines += _section(key, doc[key], now)
        if key == "plex":  # the named servers after the unnamed ones
            for name, section in (doc.get("servers") or {}).items():
                if name not in doc:
                    lines += _section(name, section, now)
    return "\n".join(lines)
