"""What every media-server protocol shares: a bounded client, classified failures, tries with backoff.

Each request ends within its deadline however the server answers
(:mod:`graylink.system.http_deadline`), and a delivery's tries and pauses fit in its
:class:`Budget`. Failures are classified once, here: worth another try
(5xx, 429, timeouts, refused connections), refused credentials (401/403,
kept and reported with the fix), or a definite answer that another try would
not change. No message built here carries a credential.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests

from graylink import story
from graylink.system import secrets
from graylink.system.http_deadline import DeadlineExceeded, DeadlineSession, RequestStopped

log = logging.getLogger(__name__)

REQUEST_DEADLINE = 30.0  # seconds for a whole request: connect, headers and body
DELIVERY_BUDGET = 75.0  # seconds for one server's delivery in a cycle, tries and pauses included
TRIES = 3
BACKOFF = (1.0, 2.0, 4.0)  # seconds before the 2nd, 3rd, … try
MAX_RETRY_AFTER = 60.0  # a server asking for a longer pause is left until the next run

Sleep = Callable[[float], None]
T = TypeVar("T")


class TransientError(Exception):
    """Worth another try: 5xx, 429, timeouts, refused connections."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class RefusedError(Exception):
    """The server refused the credentials (401 / 403)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class FailedError(Exception):
    """A definite answer that another try in this run would not change."""


class GaveUpError(Exception):
    """Transient failures used up this run's tries or budget; the message says which."""


def safe_url(url: str) -> str:
    """``url`` without user:password or query, fit for logs (config refuses both; this is the belt)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def scrub(text: str, secret: str) -> str:
    """``text`` with the server's key masked (a short key only where it stands as a value)."""
    return secrets.scrub(text, [secret])


def network_reason(exc: requests.RequestException) -> str:
    if isinstance(exc, DeadlineExceeded):
        return str(exc)
    if isinstance(exc, RequestStopped):
        return "stopped on request"
    if isinstance(exc, requests.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, requests.ReadTimeout):
        return "no answer in time"
    match = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
    if match:
        return match.group(1).strip().rstrip(".").lower()
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return type(exc).__name__


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds (Jellyfin sends ``005``) or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class Budget:
    """What one delivery may still spend: its requests and its pauses between tries."""

    seconds: float = DELIVERY_BUDGET
    sleep: Sleep | None = None  # None: a real pause that a stop request ends
    should_stop: Callable[[], bool] | None = None
    started: float = field(default_factory=time.monotonic)
    paused: float = 0.0  # pauses as asked for (a test's sleep takes no time)
    paused_wall: float = 0.0  # pauses as the clock saw them

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.started - self.paused_wall) - self.paused

    def stop_requested(self) -> bool:
        return self.should_stop is not None and self.should_stop()

    def pause(self, seconds: float) -> None:
        began = time.monotonic()
        if self.sleep is not None:
            self.sleep(seconds)
        else:
            end = began + seconds
            while not self.stop_requested() and (left := end - time.monotonic()) > 0:
                time.sleep(min(left, 0.2))
        self.paused += seconds
        self.paused_wall += time.monotonic() - began
        if self.stop_requested():
            raise RequestStopped("stop requested during a pause between tries")


class Client:
    """One delivery's conversation with one server; credentials travel in headers only."""

    def __init__(self, base: str, secret: str, deadline: float, should_stop: Callable[[], bool] | None = None) -> None:
        self.base = base.rstrip("/")
        self.secret = secret
        self.deadline = deadline
        self.session = DeadlineSession(deadline, should_stop=should_stop)

    def close(self) -> None:
        self.session.close()

    def limit(self, seconds: float) -> None:
        """Bound the next requests to ``seconds`` (what is left of a delivery's budget)."""
        self.session.total = max(0.1, min(self.deadline, seconds))

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | list[Any] | None = None,
    ) -> requests.Response:
        sent = {"Accept": "application/json", **(headers or {})}
        if story.on():
            story.request(method, self.base + path, _what(params, body))
        try:
            response = self.session.request(
                method,
                self.base + path,
                headers=sent,
                params=params,
                json=body,
                timeout=self.session.total,
                allow_redirects=False,
            )
        except RequestStopped:
            raise
        except requests.RequestException as exc:
            raise TransientError(scrub(network_reason(exc), self.secret)) from None
        status = response.status_code
        if 200 <= status < 300:
            return response
        if status in (401, 403):
            raise RefusedError(status)
        if status == 429 or status >= 500:
            raise TransientError(f"HTTP {status}", retry_after(response.headers.get("Retry-After")))
        raise FailedError(f"HTTP {status} for {method} {path}")


def _what(params: dict[str, str] | None, body: dict[str, Any] | list[Any] | None) -> str:
    """A request's content for ``-v``: its parameters and the paths it names (never a header)."""
    parts = [f"{k}={v}" for k, v in (params or {}).items()]
    updates = body.get("Updates") if isinstance(body, dict) else None
    if isinstance(updates, list):
        paths = ", ".join(str(u.get("Path")) for u in updates[:5] if isinstance(u, dict))
        more = f", … {len(updates) - 5} more" if len(updates) > 5 else ""
        parts.append(f"{len(updates)} updates ({paths}{more})")
    return "; ".join(parts)


def with_client(url: str, secret: str, deadline: float, work: Callable[[Client, str], T]) -> T:
    """``work(client, url fit for messages)`` with a client of the server at ``url``, closed after."""
    client = Client(url, secret, deadline)
    try:
        return work(client, safe_url(url))
    finally:
        client.close()


def with_tries(client: Client, budget: Budget, where: str, call: Callable[[], T]) -> T:
    """``call()`` up to :data:`TRIES` times while it fails transiently and the budget allows.

    Refused and failed answers pass through at once; used-up tries raise
    :class:`GaveUpError` with the reason; a stop request raises RequestStopped.
    """
    for attempt in range(TRIES):
        client.limit(budget.left())
        try:
            return call()
        except TransientError as exc:
            tries = f"after {attempt + 1} {'try' if attempt == 0 else 'tries'}"
            if attempt + 1 == TRIES:
                raise GaveUpError(f"{where} unreachable ({exc.reason}) {tries}") from None
            wait = BACKOFF[min(attempt, len(BACKOFF) - 1)]
            if exc.retry_after is not None:
                if exc.retry_after > MAX_RETRY_AFTER:
                    raise GaveUpError(f"{where} asked to wait {exc.retry_after:.0f} s ({exc.reason})") from None
                wait = max(wait, exc.retry_after)
            if wait >= budget.left() - 1.0:
                spent = f"the {budget.seconds:g} s this run gives a delivery are spent"
                raise GaveUpError(f"{where} unreachable ({exc.reason}) {tries}, {spent}") from None
            log.info("%s: %s; trying again in %.0f s", where, exc.reason, wait)
            budget.pause(wait)
    raise AssertionError("no attempt was made")  # TRIES >= 1


def answered(response: requests.Response) -> str:
    """How a server answered, for a line saying its answer was not what was asked:
    the HTTP status and the content type, so a proxy's login page is told from a server."""
    kind = response.headers.get("Content-Type", "").split(";", 1)[0].strip() or "no content type"
    return f"HTTP {response.status_code}, {kind}"


def failure_reason(exc: Exception, secret: str) -> str:
    """What a failed request says, for one line of ``doctor``: never the key."""
    return scrub(exc.reason if isinstance(exc, TransientError) else str(exc), secret)
