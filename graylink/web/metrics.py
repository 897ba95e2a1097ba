"""``GET /metrics``: the status document in Prometheus' text format, via prometheus_client.

Built at scrape time from the same document as ``status --json`` (and the
running totals of :mod:`graylink.store.history`), in a registry of its own, so
the numbers are the database's, survive restarts, and agree with the page.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
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


class StatusCollector(Collector):
    def __init__(self, doc: dict[str, Any], totals: dict[str, Any]) -> None:
        self.doc = doc
        self.totals = totals

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        doc, totals = self.doc, self.totals
        cycles = CounterMetricFamily("graylink_cycles", "Reconcile cycles by result.", labels=["result"])
        for result in ("ok", "attention", "stopped"):
            cycles.add_metric([result], float(_dict(totals.get("cycles")).get(result, 0)))
        yield cycles
        yield CounterMetricFamily(
            "graylink_cycle_seconds", "Time spent in reconcile cycles.", value=float(totals.get("duration_s", 0.0))
        )
        last = _dict(doc.get("last_reconcile"))
        if _num(last.get("duration_s")) is not None:
            yield GaugeMetricFamily(
                "graylink_last_cycle_duration_seconds", "Duration of the last cycle.", value=_num(last["duration_s"])
            )
        index = _dict(doc.get("index"))
        for key, name, text in (
            ("links", "graylink_links", "Links graylink owns in the link tree."),
            ("videos", "graylink_videos", "Indexed files that get a link."),
            ("files", "graylink_indexed_files", "Files in the index."),
            ("dirs", "graylink_indexed_folders", "Folders in the index."),
        ):
            value = _num(index.get(key))
            if value is not None:
                yield GaugeMetricFamily(name, text, value=value)
        dirty = _num(_dict(doc.get("dirty")).get("total"))
        if dirty is not None:
            yield GaugeMetricFamily("graylink_dirty_marks", "Subtrees waiting to be reconciled.", value=dirty)
        queue = GaugeMetricFamily("graylink_queue_depth", "Changes queued for a media server.", labels=["server"])
        for name, section in _servers(doc).items():
            pending = _num(section.get("queued"))
            if pending is not None:
                queue.add_metric([name], pending)
        yield queue
        yield from self._changes(_servers(doc))
        mount = _dict(doc.get("mount"))
        if "healthy" in mount:
            yield GaugeMetricFamily(
                "graylink_mount_up", "1 when the source mount is healthy.", value=float(bool(mount["healthy"]))
            )
        webhooks = _dict(doc.get("webhooks"))
        if _num(webhooks.get("ignored")) is not None:
            text = "Webhook requests answered 2xx but ignored (a payload or path graylink cannot use)."
            yield CounterMetricFamily("graylink_webhooks_ignored", text, value=_num(webhooks["ignored"]))
            text = "Files announced by Sonarr / Radarr that graylink still waits for."
            yield GaugeMetricFamily(
                "graylink_webhook_files_awaited", text, value=_num(webhooks.get("waiting_files")) or 0.0
            )
        yield from self._feed(_dict(doc.get("drive")))
        yield from self._last_success(doc, totals)

    def _changes(self, servers: dict[str, dict[str, Any]]) -> Iterator[GaugeMetricFamily | HistogramMetricFamily]:
        states = GaugeMetricFamily(
            "graylink_server_changes",
            "Changes by their state in each media server's library (pending, confirmed, stuck).",
            labels=["server", "state"],
        )
        seconds = HistogramMetricFamily(
            "graylink_server_confirm_seconds",
            "Seconds from a link's creation to its confirmation in the media server's library.",
            labels=["server"],
        )
        for name, section in servers.items():
            for state in ("pending", "confirmed", "stuck"):
                value = _num(section.get(state))
                if value is not None:
                    states.add_metric([name, state], value)
            hist = _dict(section.get("confirm_seconds"))
            bounds, counts = hist.get("bounds") or [], hist.get("buckets") or []
            if bounds and len(bounds) == len(counts):
                buckets = [(f"{float(b):g}", float(c)) for b, c in zip(bounds, counts, strict=True)]
                buckets.append(("+Inf", float(hist.get("count") or 0)))
                seconds.add_metric([name], buckets, float(hist.get("sum") or 0.0))
        yield states
        yield seconds
        mount = GaugeMetricFamily(
            "graylink_server_mount_ok", "1 when the media server can list the source as it sees it.", labels=["server"]
        )
        for name, section in servers.items():
            seen = _dict(section.get("server_mount"))
            if "ok" in seen:
                mount.add_metric([name], float(bool(seen["ok"])))
        yield mount

    def _feed(self, drive: dict[str, Any]) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        if not drive or not drive.get("last_poll"):
            return
        healthy = str(drive.get("last_result") or "") in ("", "ok")
        yield GaugeMetricFamily("graylink_feed_ok", "1 when the Drive feed's last poll succeeded.", value=healthy)
        newest = _num(drive.get("newest_change"))
        if newest is not None:
            lag = max(0.0, time.time() - newest)
            text = "Age of the newest change the feed handled."
            yield GaugeMetricFamily("graylink_feed_lag_seconds", text, value=lag)
        total = _num(drive.get("calls_total"))
        if total is not None:
            # A counter: Prometheus takes any window of it (increase(...[24h])), and it survives restarts.
            yield CounterMetricFamily("graylink_drive_api_calls", "Requests sent to Google by the feed.", value=total)
        # Kept because docs/web.md named them before the counter; deprecated, removed in a later release.
        for key, name in (("calls_last_poll", "last_poll"), ("calls_24h", "last_24h")):
            value = _num(drive.get(key))
            if value is not None:
                text = f"Drive API calls in the {name.replace('_', ' ')} (deprecated: graylink_drive_api_calls_total)."
                yield GaugeMetricFamily(f"graylink_drive_api_calls_{name}", text, value=value)

    def _last_success(self, doc: dict[str, Any], totals: dict[str, Any]) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "graylink_last_success_timestamp_seconds", "When each job last succeeded (epoch seconds).", labels=["job"]
        )
        for job in doc.get("jobs") or []:
            if isinstance(job, dict) and job.get("ok") and _num(job.get("last_run")) is not None:
                family.add_metric([str(job.get("name"))], float(job["last_run"]))
        if _num(totals.get("last_ok_at")) is not None:
            family.add_metric(["reconcile"], float(totals["last_ok_at"]))
        yield family


def render_metrics(doc: dict[str, Any], totals: dict[str, Any]) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(doc, totals))
    return generate_latest(registry), CONTENT_TYPE_LATEST
