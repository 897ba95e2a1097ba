"""``GET /metrics``: the status document in Prometheus' text format, via prometheus_client.

Built at scrape time from the same document as ``status --json`` (and the
running totals of :mod:`graylink.store.history`), in a registry of its own, so
the numbers are the database's, survive restarts, and agree with the page.

A service of several libraries labels every series with ``library`` (first),
one family per metric name holding each library's series; a service of one
writes exactly what it always wrote (no ``library`` label), so dashboards of
old keep working.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    return float(value) if isinstance(value, (int, float)) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _servers(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every server's section by its key, the ``server`` label (``emby``, ``emby family``, ``plex friend``)."""
    named = doc.get("servers")
    if isinstance(named, dict):
        return {str(name): _dict(section) for name, section in named.items()}
    return {name: _dict(doc.get(name)) for name in ("emby", "plex") if doc.get(name) is not None}


@dataclass(frozen=True)
class LibraryStatus:
    library: str | None  # the ``library`` label; None for a service of one library (no label)
    doc: dict[str, Any]
    totals: dict[str, Any]


Family = GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily
KINDS: dict[str, type[Family]] = {"gauge": GaugeMetricFamily, "counter": CounterMetricFamily}


class Families:
    """One family per metric name, each library's samples added to it (with the ``library`` label when labelled)."""

    def __init__(self, labelled: bool) -> None:
        self.labelled = labelled
        self.found: dict[str, Family] = {}
        self.always: set[str] = set()  # families written even without a sample (as they always were)

    def family(
        self, kind: str, name: str, text: str, labels: Sequence[str] = (), always: bool = False
    ) -> GaugeMetricFamily | CounterMetricFamily:
        found = self._get(kind, name, text, labels, always)
        assert not isinstance(found, HistogramMetricFamily)
        return found

    def histogram(self, name: str, text: str, labels: Sequence[str]) -> HistogramMetricFamily:
        found = self._get("histogram", name, text, labels, True)
        assert isinstance(found, HistogramMetricFamily)
        return found

    def _get(self, kind: str, name: str, text: str, labels: Sequence[str], always: bool) -> Family:
        if name not in self.found:
            names = (["library"] if self.labelled else []) + list(labels)
            if kind == "histogram":
                self.found[name] = HistogramMetricFamily(name, text, labels=names)
            else:
                self.found[name] = KINDS[kind](name, text, labels=names)
        if always:
            self.always.add(name)
        return self.found[name]

    def add(self, library: str | None, kind: str, name: str, text: str, value: float, **labels: str) -> None:
        family = self.family(kind, name, text, list(labels))
        family.add_metric(self.values(library, list(labels.values())), value)

    def values(self, library: str | None, values: list[str]) -> list[str]:
        return ([library or ""] if self.labelled else []) + values

    def written(self) -> Iterator[Family]:
        for name, family in self.found.items():
            if family.samples or name in self.always:
                yield family


IGNORED_TEXT = "Webhook requests answered 2xx but ignored (a payload or path graylink cannot use)."


class StatusCollector(Collector):
    def __init__(self, libraries: Sequence[LibraryStatus], service_ignored: int | None = None) -> None:
        self.libraries = list(libraries)
        self.service_ignored = service_ignored

    def collect(self) -> Iterator[Family]:
        out = Families(labelled=any(each.library is not None for each in self.libraries))
        for each in self.libraries:
            self._library(out, each.library, each.doc, each.totals)
        if self.service_ignored is not None:
            # Several libraries: what no library held is the service's, the sample with library="".
            out.add(None, "counter", "graylink_webhooks_ignored", IGNORED_TEXT, float(self.service_ignored))
        yield from out.written()

    def _library(self, out: Families, lib: str | None, doc: dict[str, Any], totals: dict[str, Any]) -> None:
        cycles = out.family("counter", "graylink_cycles", "Reconcile cycles by result.", ["result"], always=True)
        for result in ("ok", "attention", "stopped"):
            cycles.add_metric(out.values(lib, [result]), float(_dict(totals.get("cycles")).get(result, 0)))
        text = "Time spent in reconcile cycles."
        out.add(lib, "counter", "graylink_cycle_seconds", text, float(totals.get("duration_s", 0.0)))
        last = _dict(doc.get("last_reconcile"))
        duration = _num(last.get("duration_s"))
        if duration is not None:
            text = "Duration of the last cycle."
            out.add(lib, "gauge", "graylink_last_cycle_duration_seconds", text, duration)
        index = _dict(doc.get("index"))
        for key, name, text in (
            ("links", "graylink_links", "Links graylink owns in the link tree."),
            ("videos", "graylink_videos", "Indexed files that get a link."),
            ("files", "graylink_indexed_files", "Files in the index."),
            ("dirs", "graylink_indexed_folders", "Folders in the index."),
        ):
            value = _num(index.get(key))
            if value is not None:
                out.add(lib, "gauge", name, text, value)
        dirty = _num(_dict(doc.get("dirty")).get("total"))
        if dirty is not None:
            out.add(lib, "gauge", "graylink_dirty_marks", "Subtrees waiting to be reconciled.", dirty)
        text = "Changes queued for a media server."
        queue = out.family("gauge", "graylink_queue_depth", text, ["server"], always=True)
        for name, section in _servers(doc).items():
            pending = _num(section.get("queued"))
            if pending is not None:
                queue.add_metric(out.values(lib, [name]), pending)
        self._changes(out, lib, _servers(doc))
        mount = _dict(doc.get("mount"))
        if "healthy" in mount:
            text = "1 when the source mount is healthy."
            out.add(lib, "gauge", "graylink_mount_up", text, float(bool(mount["healthy"])))
        webhooks = _dict(doc.get("webhooks"))
        ignored = _num(webhooks.get("ignored"))
        if ignored is not None:
            out.add(lib, "counter", "graylink_webhooks_ignored", IGNORED_TEXT, ignored)
            text = "Files announced by Sonarr / Radarr that graylink still waits for."
            waiting = _num(webhooks.get("waiting_files")) or 0.0
            out.add(lib, "gauge", "graylink_webhook_files_awaited", text, waiting)
        self._feed(out, lib, _dict(doc.get("drive")))
        self._last_success(out, lib, doc, totals)

    def _changes(self, out: Families, lib: str | None, servers: dict[str, dict[str, Any]]) -> None:
        text = "Changes by their state in each media server's library (pending, confirmed, stuck)."
        states = out.family("gauge", "graylink_server_changes", text, ["server", "state"], always=True)
        text = "Seconds from a link's creation to its confirmation in the media server's library."
        seconds = out.histogram("graylink_server_confirm_seconds", text, ["server"])
        for name, section in servers.items():
            for state in ("pending", "confirmed", "stuck"):
                value = _num(section.get(state))
                if value is not None:
                    states.add_metric(out.values(lib, [name, state]), value)
            hist = _dict(section.get("confirm_seconds"))
            bounds, counts = hist.get("bounds") or [], hist.get("buckets") or []
            if bounds and len(bounds) == len(counts):
                buckets = [(f"{float(b):g}", float(c)) for b, c in zip(bounds, counts, strict=True)]
                buckets.append(("+Inf", float(hist.get("count") or 0)))
                seconds.add_metric(out.values(lib, [name]), buckets, float(hist.get("sum") or 0.0))
        text = "1 when the media server can list the source as it sees it."
        mount = out.family("gauge", "graylink_server_mount_ok", text, ["server"], always=True)
        for name, section in servers.items():
            seen = _dict(section.get("server_mount"))
            if "ok" in seen:
                mount.add_metric(out.values(lib, [name]), float(bool(seen["ok"])))

    def _feed(self, out: Families, lib: str | None, drive: dict[str, Any]) -> None:
        if not drive or not drive.get("last_poll"):
            return
        healthy = str(drive.get("last_result") or "") in ("", "ok")
        out.add(lib, "gauge", "graylink_feed_ok", "1 when the Drive feed's last poll succeeded.", float(healthy))
        newest = _num(drive.get("newest_change"))
        if newest is not None:
            lag = max(0.0, time.time() - newest)
            out.add(lib, "gauge", "graylink_feed_lag_seconds", "Age of the newest change the feed handled.", lag)
        total = _num(drive.get("calls_total"))
        if total is not None:
            # A counter: Prometheus takes any window of it (increase(...[24h])), and it survives restarts.
            out.add(lib, "counter", "graylink_drive_api_calls", "Requests sent to Google by the feed.", total)
        # Kept because docs/web.md named them before the counter; deprecated, removed in a later release.
        for key, name in (("calls_last_poll", "last_poll"), ("calls_24h", "last_24h")):
            value = _num(drive.get(key))
            if value is not None:
                text = f"Drive API calls in the {name.replace('_', ' ')} (deprecated: graylink_drive_api_calls_total)."
                out.add(lib, "gauge", f"graylink_drive_api_calls_{name}", text, value)

    def _last_success(self, out: Families, lib: str | None, doc: dict[str, Any], totals: dict[str, Any]) -> None:
        text = "When each job last succeeded (epoch seconds)."
        family = out.family("gauge", "graylink_last_success_timestamp_seconds", text, ["job"], always=True)
        for job in doc.get("jobs") or []:
            if isinstance(job, dict) and job.get("ok") and _num(job.get("last_run")) is not None:
                family.add_metric(out.values(lib, [str(job.get("name"))]), float(job["last_run"]))
        if _num(totals.get("last_ok_at")) is not None:
            family.add_metric(out.values(lib, ["reconcile"]), float(totals["last_ok_at"]))


def render_metrics(doc: dict[str, Any], totals: dict[str, Any]) -> tuple[bytes, str]:
    """One library's exposition, no ``library`` label (a service of one)."""
    return render_libraries([LibraryStatus(None, doc, totals)])


def render_libraries(libraries: Sequence[LibraryStatus], service_ignored: int | None = None) -> tuple[bytes, str]:
    """Every library's series; ``service_ignored``: the webhooks no library held (several libraries)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(libraries, service_ignored))
    return generate_latest(registry), CONTENT_TYPE_LATEST
