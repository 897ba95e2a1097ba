"""The status page's view: the status document turned into what a person reads at a glance.

Pure: the status document (``status --json``) and the history in, plain
values out, so the template holds no logic and the page shows exactly what
``status`` says.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from graylink.report.status import shown_path
from graylink.web.i18n import ENGLISH, Words

REFRESH_S = 15
MEDIA_SERVERS = ("emby", "plex")  # the status document's section of each unnamed server


def servers_of(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every server's section by its key (``emby``, ``emby family``...): ``servers``, else the unnamed ones."""
    named = doc.get("servers")
    if isinstance(named, dict):
        return {str(name): _dict(section) for name, section in named.items()}
    return {name: _dict(doc.get(name)) for name in MEDIA_SERVERS if doc.get(name) is not None}


@dataclass
class Tile:
    title: str
    state: str  # ok | warn | bad | off
    headline: str
    lines: list[str] = field(default_factory=list)


@dataclass
class Page:
    generated_at: float
    library: str
    tiles: list[Tile]
    counts: list[tuple[str, int]]
    cycles: list[dict[str, Any]]
    conflicts: list[dict[str, str]]
    changes: list[dict[str, Any]]
    snapshot: bool
    refresh_s: int = REFRESH_S
    stuck: list[dict[str, str]] = field(default_factory=list)


def ago(epoch: Any, now: float, w: Words = ENGLISH) -> str:
    if not isinstance(epoch, (int, float)) or epoch <= 0:
        return w.gettext("never")
    delta = max(0.0, now - float(epoch))
    if delta < 60:
        return w.gettext("%(n)s s ago", n=int(delta))
    if delta < 3600:
        return w.gettext("%(n)s min ago", n=int(delta // 60))
    if delta < 172800:
        return w.gettext("%(n)s h ago", n=f"{delta / 3600:.1f}")
    return w.gettext("%(n)s days ago", n=f"{delta / 86400:.1f}")


def clock(epoch: Any) -> str:
    if not isinstance(epoch, (int, float)) or epoch <= 0:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(epoch)))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _mount_tile(doc: dict[str, Any], now: float, w: Words) -> Tile:
    mount = _dict(doc.get("mount"))
    title = w.gettext("Mount")
    if not mount:
        return Tile(title, "off", w.gettext("not checked"))
    if "error" in mount and "healthy" not in mount:
        return Tile(title, "bad", w.gettext("cannot be checked"), [str(mount["error"])])
    if mount.get("healthy"):
        fs = mount.get("fs_type") or w.gettext("local folder")
        lines = [w.gettext("%(fs)s at %(path)s", fs=fs, path=mount.get("source", ""))]
        return Tile(title, "ok", w.gettext("healthy"), lines)
    check, message = str(mount.get("failed_check") or ""), str(mount.get("message") or "")
    lines = [f"{check}: {message}" if check and message else check or message]
    if mount.get("down_since"):
        since = mount["down_since"]
        lines.append(w.gettext("down since %(when)s (%(ago)s)", when=clock(since), ago=ago(since, now, w)))
    lines.append(w.gettext("no link is pruned while the mount is down"))
    return Tile(title, "bad", w.gettext("down"), [line for line in lines if line])


def _feed_tile(doc: dict[str, Any], now: float, w: Words) -> Tile:
    drive = _dict(doc.get("drive"))
    title = w.gettext("Drive feed")
    if not drive:
        return Tile(title, "off", w.gettext("off"), [w.gettext("[drive] enabled = no: the walk finds changes")])
    if "error" in drive and "last_poll" not in drive:
        return Tile(title, "bad", w.gettext("cannot be read"), [str(drive["error"])])
    feed = str(drive.get("feed") or "Drive")
    result = str(drive.get("last_result") or "")
    ok = result in ("", "ok")
    lines = [w.gettext("%(feed)s feed", feed=feed) + (f" ({drive['feed_reason']})" if drive.get("feed_reason") else "")]
    lines.append(w.gettext("last poll %(ago)s", ago=ago(drive.get("last_poll"), now, w)))
    newest = drive.get("newest_change")
    if isinstance(newest, (int, float)):
        lines.append(w.gettext("newest change handled %(ago)s", ago=ago(newest, now, w)))
    if isinstance(drive.get("calls_24h"), int):
        last_poll, day = drive.get("calls_last_poll", 0), drive["calls_24h"]
        lines.append(w.gettext("%(last)s API calls last poll, %(day)s in 24 h", last=last_poll, day=day))
    if not ok:
        lines.append(result)
    headline = w.gettext("healthy") if ok else w.gettext("failing")
    if not drive.get("last_poll"):
        headline = w.gettext("not polled yet")
    return Tile(title, "ok" if ok else "bad", headline, lines)


def _server_tiles(doc: dict[str, Any], now: float, w: Words) -> list[Tile]:
    servers = servers_of(doc)
    tiles = []
    for name, section in servers.items():
        if "error" in section and "queued" not in section:
            tiles.append(Tile(name, "bad", w.gettext("cannot be read"), [str(section["error"])]))
            continue
        last = _dict(section.get("last_delivery"))
        error = str(last.get("error") or section.get("last_error") or "")
        pending = int(section.get("queued") or 0)
        stuck = int(section.get("stuck") or 0)
        lines = [w.gettext("%(n)s changes queued", n=pending)]
        lines.append(
            w.gettext(
                "in its library: %(pending)s pending, %(confirmed)s confirmed, %(stuck)s stuck",
                pending=int(section.get("pending") or 0),
                confirmed=int(section.get("confirmed") or 0),
                stuck=stuck,
            )
        )
        if last.get("time"):
            lines.append(w.gettext("last delivery %(ago)s", ago=ago(last.get("time"), now, w)))
        if error:
            lines.append(error)
        state = "bad" if error else ("warn" if pending or stuck else "ok")
        headline = (
            w.gettext("failing")
            if error
            else w.gettext("%(n)s stuck", n=stuck)
            if stuck
            else w.gettext("up to date")
            if not pending
            else w.gettext("queued")
        )
        tiles.append(Tile(name, state, headline, lines))
    return tiles


def _stuck(doc: dict[str, Any], now: float, w: Words) -> list[dict[str, str]]:
    """Changes no media server took into its library, with the reason graylink can name."""
    out = []
    for name, section in servers_of(doc).items():
        for item in section.get("stuck_paths") or []:
            if isinstance(item, dict):
                out.append(
                    {
                        "server": name,
                        "path": shown_path(item.get("path", "")),
                        "reason": str(item.get("reason", "")),
                        "since": ago(item.get("since"), now, w),
                    }
                )
    return out


def _conflicts(doc: dict[str, Any]) -> list[dict[str, str]]:
    """Open conflicts and failed actions (``status``'s ``problems``), each with its link path."""
    problems = _dict(doc.get("problems"))
    out = []
    for item in problems.get("open") or []:
        if not isinstance(item, dict):
            continue
        kind = str(item.get("kind", "conflict"))
        detail = str(item.get("detail", ""))
        if kind != "conflict":
            detail = f"{item.get('op', '')} failed: {detail}".strip()
        out.append({"path": shown_path(item.get("link", "")), "detail": detail, "kind": kind})
    return out


SHOWN_CYCLES = 20


def _quiet(cycle: dict[str, Any]) -> bool:
    """A cycle that found nothing to do and ended well (most walks of a healthy service)."""
    counts = _dict(cycle.get("counts"))
    return not any(int(v or 0) for v in counts.values()) and not int(cycle.get("exit_code") or 0)


def _cycle_rows(cycles: list[dict[str, Any]], now: float, w: Words) -> list[dict[str, Any]]:
    """The newest cycles, newest first; a run of quiet cycles of one trigger is one row ("× N"),
    so that a day of no-change walks does not push out the cycles that did something."""
    rows: list[dict[str, Any]] = []
    for cycle in cycles:
        trigger = str(cycle.get("trigger", ""))
        last = rows[-1] if rows else None
        if last is not None and last["quiet"] and _quiet(cycle) and last["trigger"] == trigger:
            last["repeat"] += 1
            last["since"] = ago(cycle.get("at"), now, w)
            continue
        if len(rows) == SHOWN_CYCLES:
            break
        c = _dict(cycle.get("counts"))
        text = f"+{c.get('create', 0)} ~{c.get('repair', 0)} -{c.get('prune', 0)} !{c.get('conflict', 0)}"
        if c.get("failed"):
            text += f" ✗{c['failed']}"
        rows.append(
            {
                "when": clock(cycle.get("at")),
                "ago": ago(cycle.get("at"), now, w),
                "since": "",
                "trigger": trigger,
                "counts": text,
                "duration": f"{float(cycle.get('duration_s') or 0):.2f} s",
                "exit": int(cycle.get("exit_code") or 0),
                "quiet": _quiet(cycle),
                "repeat": 1,
            }
        )
    return rows


def page_model(
    doc: dict[str, Any],
    cycles: list[dict[str, Any]],
    changes: list[dict[str, Any]],
    snapshot: bool,
    w: Words = ENGLISH,
) -> Page:
    now = time.time()
    index = _dict(doc.get("index"))
    tiles = [_mount_tile(doc, now, w), _feed_tile(doc, now, w), *_server_tiles(doc, now, w)]
    counts = [
        (w.gettext("links"), int(index.get("links") or 0)),
        (w.gettext("linkable files"), int(index.get("videos") or 0)),
        (w.gettext("folders"), int(index.get("dirs") or 0)),
        (w.gettext("files"), int(index.get("files") or 0)),
        (w.gettext("dirty marks"), int(_dict(doc.get("dirty")).get("total") or 0)),
    ]
    if "webhooks" in doc:
        counts.append((w.gettext("ignored webhooks"), int(_dict(doc.get("webhooks")).get("ignored") or 0)))
    shown_cycles = _cycle_rows(cycles, now, w)
    shown_changes = [
        {"when": clock(ch.get("at")), "op": str(ch.get("op", "")), "path": str(ch.get("path", ""))}
        for ch in changes[:200]
    ]
    return Page(
        generated_at=now,
        library=str(doc.get("source") or ""),
        tiles=tiles,
        counts=counts,
        cycles=shown_cycles,
        conflicts=_conflicts(doc),
        changes=shown_changes,
        stuck=_stuck(doc, now, w),
        snapshot=snapshot,
    )
