"""The status page's charts of the last 24 hours, as inline SVG drawn here (no script, no CDN, no build).

From what the database keeps: link changes per hour (``graylink.store.history``),
the time from a link's change to its confirmation in each media server's
library (``server_change``), and the Drive feed's API calls per hour. One bar
per hour, the newest on the right; each bar has a ``<title>`` (a tooltip, and
what a screen reader says).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

from graylink.store import history
from graylink.store.db import Store
from graylink.web.i18n import ENGLISH, Words

HOURS = 24
WIDTH, HEIGHT, TOP, BOTTOM = 240, 90, 12, 14
DRIVE_CALLS_HOURLY = "drive.calls_hourly"  # graylink.drive.feed.META_CALLS_HOURLY


@dataclass(frozen=True)
class Series:
    name: str  # css class of its bars
    values: Sequence[float]


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    svg: Markup
    legend: str


def _label(value: float, unit: str) -> str:
    if unit == "s":
        if value >= 3600:
            return f"{value / 3600:.1f} h"
        if value >= 60:
            return f"{value / 60:.0f} min"
        return f"{value:.0f} s"
    return f"{value:,.0f}"


def bars(series: Sequence[Series], hours: Sequence[int], unit: str = "") -> Markup:
    """Stacked bars, one per hour; a y label at the top, the hours at the ends."""
    totals = [sum(s.values[i] for s in series) for i in range(len(hours))]
    top = max(totals, default=0) or 1
    step = WIDTH / max(1, len(hours))
    plot = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" xmlns="http://www.w3.org/2000/svg">',
        f'<line class="axis" x1="0" y1="{HEIGHT - BOTTOM}" x2="{WIDTH}" y2="{HEIGHT - BOTTOM}"/>',
        f'<text x="0" y="9">{escape(_label(max(totals, default=0), unit))}</text>',
    ]
    for i, hour in enumerate(hours):
        base = float(HEIGHT - BOTTOM)
        when = time.strftime("%H:00", time.localtime(hour * 3600))
        for s in series:
            value = s.values[i]
            if value <= 0:
                continue
            h = max(1.0, value / top * plot)
            base -= h
            parts.append(
                f'<rect class="bar {s.name}" x="{i * step + 1:.1f}" y="{base:.1f}" '
                f'width="{step - 2:.1f}" height="{h:.1f}">'
                f"<title>{escape(when)} {escape(s.name)}: {escape(_label(value, unit))}</title></rect>"
            )
    first = time.strftime("%H:00", time.localtime(hours[0] * 3600)) if hours else ""
    parts.append(f'<text x="0" y="{HEIGHT - 2}">{escape(first)}</text>')
    parts.append(f'<text x="{WIDTH}" y="{HEIGHT - 2}" text-anchor="end">{escape(time.strftime("%H:%M"))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - numbers, and text through html.escape


def _hours(now: float) -> list[int]:
    last = int(now // 3600)
    return list(range(last - HOURS + 1, last + 1))


def link_changes(store: Store, hours: list[int], w: Words) -> Chart:
    found = history.changes_by_hour(store)
    made = [float(found.get(h, {}).get("create", 0) + found.get(h, {}).get("repair", 0)) for h in hours]
    pruned = [float(found.get(h, {}).get("prune", 0)) for h in hours]
    legend = w.gettext("%(made)s created or repaired, %(pruned)s pruned", made=int(sum(made)), pruned=int(sum(pruned)))
    svg = bars([Series("made", made), Series("prune", pruned)], hours)
    return Chart("links", w.gettext("Links changed per hour"), svg, legend)


def delivery_latency(store: Store, hours: list[int], w: Words) -> Chart:
    """Median seconds from a link's change to the server's library having it, by the hour it was confirmed."""
    by_hour: dict[int, list[float]] = {}
    if store.db.table_exists("server_change"):
        rows = store.execute(
            "SELECT confirmed_at, confirmed_at - linked_at FROM server_change WHERE confirmed_at >= ?",
            (hours[0] * 3600,),
        )
        for at, seconds in rows:
            by_hour.setdefault(int(float(at) // 3600), []).append(max(0.0, float(seconds)))
    medians = [statistics.median(by_hour[h]) if h in by_hour else 0.0 for h in hours]
    count = sum(len(v) for v in by_hour.values())
    if count:
        legend = w.gettext(
            "%(n)s changes confirmed; median %(median)s",
            n=count,
            median=_label(statistics.median([s for v in by_hour.values() for s in v]), "s"),
        )
    else:
        legend = w.gettext("No change was confirmed in a media server's library.")
    svg = bars([Series("made", medians)], hours, "s")
    return Chart("latency", w.gettext("Link to media server library (median)"), svg, legend)


def drive_calls(store: Store, hours: list[int], w: Words) -> Chart:
    try:
        raw = json.loads(store.get_meta(DRIVE_CALLS_HOURLY) or "{}")
    except ValueError:
        raw = {}
    found = {int(k): int(v) for k, v in raw.items() if str(k).isdigit()} if isinstance(raw, dict) else {}
    calls = [float(found.get(h, 0)) for h in hours]
    legend = w.gettext("%(n)s calls", n=int(sum(calls)))
    return Chart("drive", w.gettext("Drive API calls per hour"), bars([Series("made", calls)], hours), legend)


def day_charts(store: Store, drive: bool, servers: bool, w: Words = ENGLISH, now: float | None = None) -> list[Chart]:
    hours = _hours(time.time() if now is None else now)
    charts = [link_changes(store, hours, w)]
    if servers:
        charts.append(delivery_latency(store, hours, w))
    if drive:
        charts.append(drive_calls(store, hours, w))
    return charts
