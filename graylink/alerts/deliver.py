"""Delivery of alerts through Apprise, on a thread of its own.

The state is saved in the database *before* the messages go out, so a crash
loop never repeats them; a failure to deliver is logged (the URL's scheme
only: the rest holds tokens), never raised into the loop.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from urllib.parse import urlsplit

from graylink.alerts.rules import Alert, Observation, State, evaluate
from graylink.config import DEFAULT_LIBRARY, Config
from graylink.store.db import Store
from graylink.system.secrets import masker

log = logging.getLogger(__name__)

META_STATE = "alerts_state"

# Loggers that write what an Apprise URL holds: Apprise's own, and urllib3's
# request line ("POST /bot<token>/sendMessage"), shown with -v. A filter on a
# logger sees only the records that logger makes, so the emitting one is named.
SCRUBBED_LOGGERS = ("apprise", "urllib3.connectionpool")


def masked(url: str) -> str:
    """An Apprise URL with nothing secret: its scheme only."""
    scheme = urlsplit(url).scheme or "?"
    return f"{scheme}://…"


class _Scrub(logging.Filter):
    """Keeps Apprise's own log lines free of the tokens inside the URLs."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.mask = masker(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.mask(record.getMessage()), ()
        return True


def _secret_parts(url: str) -> list[str]:
    parts = urlsplit(url)
    out = [url, parts.netloc, parts.path, parts.query, parts.password or "", parts.username or ""]
    out += [seg for seg in parts.path.split("/") if seg]
    out += [kv.partition("=")[2] for kv in parts.query.split("&")]
    return [p for p in out if p]


Sender = Callable[[str, Alert], bool]


def not_understood(urls: Sequence[str]) -> list[str]:
    """The URLs Apprise cannot parse (it would log each one, tokens and all: kept quiet here)."""
    import apprise

    quiet = logging.getLogger("apprise")
    was, quiet.disabled = quiet.disabled, True
    try:
        return [url for url in urls if not apprise.Apprise().add(url)]
    finally:
        quiet.disabled = was


def apprise_sender(url: str, alert: Alert) -> bool:
    import apprise

    client = apprise.Apprise()
    if not client.add(url):
        log.error("alert: %s is not a URL Apprise understands", masked(url))
        return False
    kinds = {"failure": apprise.NotifyType.FAILURE, "warning": apprise.NotifyType.WARNING}
    return bool(
        client.notify(title=alert.title, body=alert.body, notify_type=kinds.get(alert.kind, apprise.NotifyType.SUCCESS))
    )


class Alerts:
    """The service's voice: evaluates observations, saves the state, delivers in the background."""

    def __init__(
        self, urls: Sequence[str], events: Sequence[str], library: str, sender: Sender = apprise_sender
    ) -> None:
        self.urls = tuple(urls)
        self.events = frozenset(events)
        self.library = library
        self.sender = sender
        self._queue: queue.Queue[Alert | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._scrub = _Scrub([p for u in self.urls for p in _secret_parts(u)])
        if self.urls:
            for name in SCRUBBED_LOGGERS:
                logging.getLogger(name).addFilter(self._scrub)

    def reconfigured(self, urls: Sequence[str], events: Sequence[str], library: str) -> Alerts:
        """Self when nothing changed (SIGHUP), else a fresh one (the state lives in the database)."""
        if (tuple(urls), frozenset(events), library) == (self.urls, self.events, self.library):
            return self
        self.close()
        return Alerts(urls, events, library, self.sender)

    def report_unusable(self) -> None:
        """One ERROR line per alert URL Apprise cannot use, when the service starts."""
        for url in not_understood(self.urls):
            log.error("alerts: %s is not a URL Apprise understands: it gets no alert (graylink doctor)", masked(url))

    @property
    def enabled(self) -> bool:
        return bool(self.urls)

    def observe(self, store: Store, seen: Observation) -> list[Alert]:
        """Evaluate ``seen``; return (and queue for delivery) the alerts it raised."""
        if not self.enabled:
            return []
        state = State.from_json(store.get_meta(META_STATE))
        new, alerts = evaluate(state, seen, self.library)
        if new != state:
            with store.atomic():
                store.set_meta(META_STATE, json.dumps(asdict(new)))
        chosen = [a for a in alerts if not self.events or a.event in self.events]
        for alert in chosen:
            log.info("alert: %s", alert.title)
            self._queue.put(alert)
        if chosen:
            self._ensure_worker()
        return chosen

    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="graylink-alerts", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            for url in self.urls:
                try:
                    ok = self.sender(url, alert)
                except Exception as exc:  # a broken notifier must never reach the loop
                    log.error("alert to %s failed: %s", masked(url), exc.__class__.__name__)
                    continue
                if not ok:
                    log.error("alert to %s was not delivered: %s", masked(url), alert.title)
            self._queue.task_done()

    def close(self, timeout: float = 5.0) -> None:
        """Let queued alerts go out (bounded), then stop the worker."""
        if self._thread is not None and self._thread.is_alive():
            deadline = time.monotonic() + timeout
            self._queue.put(None)
            self._thread.join(max(0.0, deadline - time.monotonic()))
        for name in SCRUBBED_LOGGERS:
            logging.getLogger(name).removeFilter(self._scrub)


def library_label(config: Config) -> str:
    """How alerts name a library: its source (as always) for the unnamed sections; for a
    ``[library NAME]`` its name too, so that with several libraries a message says which."""
    if config.name == DEFAULT_LIBRARY:
        return config.paths.source
    return f"library {config.name} ({config.paths.source})"
