"""The Emby / Jellyfin refresh queue and its delivery.

Link changes are queued in the database in the transaction that records them
(:func:`enqueue`), so a crash or an unreachable server loses none. After a
reconcile, :func:`deliver` sends everything queued, merged across runs, as ONE
``POST /Library/Media/Updated`` (or one ``POST /Library/Refresh`` when there is
too much to name), and removes from the queue exactly the rows it sent, only
after the server answered 2xx.

The API key travels in a header only, and never reaches a log line, an error
message, the database, ``status`` or ``doctor``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from graylink.checks import Check
from graylink.config import Config, EmbyConfig
from graylink.db import Store
from graylink.http_deadline import DeadlineExceeded, DeadlineSession, RequestStopped
from graylink.notify.batch import QUEUED_OPS, Entry, build_entries, merge
from graylink.notify.pathmap import is_under, map_path
from graylink.reconciler import Op

log = logging.getLogger(__name__)

REQUEST_DEADLINE = 30.0  # seconds for a whole request: connect, headers and body
DELIVERY_BUDGET = 75.0  # seconds for one delivery, its tries and pauses included
TRIES = 3
BACKOFF = (1.0, 2.0, 4.0)  # seconds before the 2nd, 3rd, … try
MAX_RETRY_AFTER = 60.0  # a server asking for a longer pause is left until the next run
META_LAST_DELIVERY = "emby.last_delivery"

UPDATED_PATH = "/Library/Media/Updated"
REFRESH_PATH = "/Library/Refresh"
INFO_PATH = "/System/Info/Public"
FOLDERS_PATH = "/Library/VirtualFolders"

Sleep = Callable[[float], None]


# --------------------------------------------------------------------- queue


def enqueue(store: Store, changes: Iterable[tuple[Op, bytes]]) -> int:
    """Queue link changes for the media server; DB writes only.

    ``changes`` holds ``(op, absolute link path)``; op is create, repair or
    prune. The caller holds the transaction that records the links, so the
    queue and the link table never disagree. Returns the number queued.
    """
    now = time.time()
    rows: list[tuple[object, ...]] = []
    for op, path in changes:
        if op not in QUEUED_OPS:
            raise ValueError(f"{op.value} is not a change the media server is told about")
        if not path.startswith(b"/"):
            raise ValueError(f"link path must be absolute: {path!r}")
        rows.append((bytes(path), op.value, now))
    if rows:
        store.executemany("INSERT INTO emby_queue (path, op, queued_at) VALUES (?, ?, ?)", rows)
    return len(rows)


@dataclass(frozen=True, slots=True)
class _Queued:
    id: int
    path: bytes
    op: Op


def _queued(store: Store) -> list[_Queued]:
    cursor = store.execute("SELECT id, path, op FROM emby_queue ORDER BY id")
    return [_Queued(row[0], bytes(row[1]), Op(row[2])) for row in cursor]


def _pending(store: Store) -> int:
    return int(store.execute("SELECT count(*) FROM emby_queue").fetchone()[0])


def queue_status(store: Store) -> dict[str, Any]:
    """For ``graylink status``: what waits in the queue and how the last delivery went."""
    row = store.execute("SELECT count(*), count(DISTINCT path), min(queued_at) FROM emby_queue").fetchone()
    last_raw = store.get_meta(META_LAST_DELIVERY)
    last: dict[str, Any] | None = None
    if last_raw:
        try:
            last = json.loads(last_raw)
        except ValueError:
            last = None
    return {
        "pending": int(row[0]),
        "pending_paths": int(row[1]),
        "oldest_queued_at": row[2],
        "last_delivery": last,
    }


# ------------------------------------------------------------------ delivery


@dataclass
class DeliveryResult:
    """What one :func:`deliver` did."""

    sent: int = 0  # queued changes delivered and removed from the queue
    entries: int = 0  # entries in the targeted request (0 for a library refresh)
    pending: int = 0  # changes still queued afterwards
    mode: str = "none"  # targeted | library | none (nothing was sent)
    server: str = ""  # emby | jellyfin, when known
    error: str = ""  # why the queue was kept ("" when all is well)
    refused: bool = False  # the server refused the API key

    @property
    def ok(self) -> bool:
        return not self.error

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


class _TransientError(Exception):
    """Worth another try: 5xx, 429, timeouts, refused connections."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _RefusedError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class _FailedError(Exception):
    """A definite answer that another try in this run would not change."""


def safe_url(url: str) -> str:
    """``url`` without user:password, fit for logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _scrub(text: str, key: str) -> str:
    return text.replace(key, "***") if key else text


def _network_reason(exc: requests.RequestException) -> str:
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


def _retry_after(value: str | None) -> float | None:
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


def auth_headers(server: str, key: str) -> dict[str, str]:
    """The header the server accepts the key in (ARCHITECTURE §5).

    Jellyfin 12 ignores ``X-Emby-Token`` unless legacy authorization is turned
    back on, while the ``MediaBrowser`` form works on every Jellyfin 10.x.
    """
    if server == "jellyfin":
        return {"Authorization": f'MediaBrowser Token="{key}"'}
    return {"X-Emby-Token": key}


def server_kind(info: dict[str, Any]) -> str:
    product = str(info.get("ProductName") or "")
    return "jellyfin" if "jellyfin" in product.lower() else "emby"


class _Client:
    """One run's conversation with the server; every failure is classified, none leaks the key."""

    def __init__(self, config: EmbyConfig, deadline: float, should_stop: Callable[[], bool] | None = None) -> None:
        self.base = config.url.rstrip("/")
        self.key = config.api_key
        self.deadline = deadline
        self.session = DeadlineSession(deadline, should_stop=should_stop)

    def close(self) -> None:
        self.session.close()

    def limit(self, seconds: float) -> None:
        """Bound the next requests to ``seconds`` (what is left of a delivery's budget)."""
        self.session.total = max(0.1, min(self.deadline, seconds))

    def request(
        self, method: str, path: str, *, auth: str | None = None, body: dict[str, Any] | None = None
    ) -> requests.Response:
        headers = {"Accept": "application/json"}
        if auth is not None:
            headers.update(auth_headers(auth, self.key))
        try:
            response = self.session.request(
                method, self.base + path, headers=headers, json=body, timeout=self.session.total, allow_redirects=False
            )
        except RequestStopped:
            raise
        except requests.RequestException as exc:
            raise _TransientError(_scrub(_network_reason(exc), self.key)) from None
        status = response.status_code
        if 200 <= status < 300:
            return response
        if status in (401, 403):
            raise _RefusedError(status)
        if status == 429 or status >= 500:
            raise _TransientError(f"HTTP {status}", _retry_after(response.headers.get("Retry-After")))
        raise _FailedError(f"HTTP {status} for {method} {path}")

    def public_info(self) -> dict[str, Any]:
        response = self.request("GET", INFO_PATH)
        try:
            info = response.json()
        except ValueError:
            raise _FailedError(f"{INFO_PATH} did not answer JSON: is [emby] url a media server?") from None
        if not isinstance(info, dict):
            raise _FailedError(f"{INFO_PATH} did not answer a JSON object: is [emby] url a media server?")
        return info


def _floors(config: EmbyConfig, tree_root: bytes | None) -> list[bytes]:
    floors = [os.fsencode(src) for src, _ in config.path_map]
    if tree_root:
        floors.append(tree_root.rstrip(b"/") or b"/")
    return floors


def _gone(path: bytes) -> bool:
    return not os.path.lexists(path)


def plan_request(
    config: EmbyConfig, rows: Iterable[tuple[bytes, Op]], tree_root: bytes | None = None
) -> tuple[str, list[Entry]]:
    """The mode and entries of the one request for ``rows`` (oldest first)."""
    merged = merge(rows)
    if config.mode == "library":
        return "library", []
    entries = build_entries(merged, config.collapse_threshold, config.path_map, _floors(config, tree_root), _gone)
    if len(entries) > config.max_updates:
        return "library", []
    return "targeted", entries


def deliver(
    config: EmbyConfig,
    store: Store,
    *,
    tree_root: bytes | str | None = None,
    sleep: Sleep | None = None,
    deadline: float = REQUEST_DEADLINE,
    budget: float = DELIVERY_BUDGET,
    should_stop: Callable[[], bool] | None = None,
) -> DeliveryResult:
    """Send everything queued as one request; keep it queued unless the server answers 2xx.

    ``tree_root`` (the link tree's root) bounds how far changes collapse into
    folders. Each request ends within ``deadline`` seconds and the delivery,
    tries and pauses included, within ``budget``; ``should_stop`` ends it at
    once (the queue is kept). Never raises for the server's sake: failures
    are in the result and logged once at ERROR.
    """
    rows = _queued(store)
    if not rows or not config.url:
        return DeliveryResult(pending=len(rows))
    root = os.fsencode(tree_root) if tree_root is not None else None
    mode, entries = plan_request(config, ((row.path, row.op) for row in rows), root)
    label = "Jellyfin" if config.server == "jellyfin" else "Emby"
    result = DeliveryResult(mode=mode, entries=len(entries), server=config.server if config.server != "auto" else "")
    if not config.api_key:
        result.error = f"[emby] api_key is not set; {len(rows)} updates kept for the next run"
        result.refused = True
    else:
        client = _Client(config, deadline, should_stop)
        try:
            _send(client, config, mode, entries, result, _Budget(budget, sleep, should_stop))
        except RequestStopped:
            result.error = f"delivery to {safe_url(config.url)} stopped on request; updates kept for the next run"
        finally:
            client.close()
        label = "Jellyfin" if result.server == "jellyfin" else label
    if result.ok:
        with store.atomic():
            store.executemany("DELETE FROM emby_queue WHERE id = ?", ((row.id,) for row in rows))
            result.sent = len(rows)
            result.pending = _pending(store)
            _record(store, result)
        what = f"{result.entries} entries" if mode == "targeted" else "a library refresh"
        log.info("%s: delivered %d queued changes as %s to %s", label, result.sent, what, safe_url(config.url))
    else:
        with store.atomic():
            result.pending = _pending(store)
            _record(store, result)
        log.error("%s", result.error)
    return result


@dataclass
class _Budget:
    """What one delivery may still spend: its requests and its pauses between tries."""

    seconds: float
    sleep: Sleep | None  # None: a real pause that a stop request ends
    should_stop: Callable[[], bool] | None
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


def _send(
    client: _Client, config: EmbyConfig, mode: str, entries: list[Entry], result: DeliveryResult, budget: _Budget
) -> None:
    url = safe_url(config.url)
    path = UPDATED_PATH if mode == "targeted" else REFRESH_PATH
    body = {"Updates": [entry.as_json() for entry in entries]} if mode == "targeted" else None
    server = config.server if config.server != "auto" else ""
    kept = "updates kept in the queue for the next run"
    for attempt in range(TRIES):
        client.limit(budget.left())
        try:
            if not server:
                server = server_kind(client.public_info())  # once per run: kept across tries
                result.server = server
            client.request("POST", path, auth=server, body=body)
            result.error = ""
            return
        except _RefusedError as exc:
            name = "Jellyfin" if server == "jellyfin" else "Emby"
            hint = (
                "check [emby] api_key"
                if server == "jellyfin" or config.server == "auto"
                else "check [emby] api_key, and [emby] server (Jellyfin 12 answers 401 to Emby's header)"
            )
            result.error = f"{name} refused the API key ({exc} from {url}): {hint}; {kept}"
            result.refused = True
            return
        except _FailedError as exc:
            result.error = f"{url}: {_scrub(str(exc), config.api_key)}; {kept}"
            return
        except _TransientError as exc:
            left = TRIES - attempt - 1
            result.error = f"media server at {url} unreachable ({exc.reason}) after {attempt + 1} tries; {kept}"
            if left == 0:
                return
            wait = BACKOFF[min(attempt, len(BACKOFF) - 1)]
            if exc.retry_after is not None:
                if exc.retry_after > MAX_RETRY_AFTER:
                    result.error = f"media server at {url} asked to wait {exc.retry_after:.0f} s ({exc.reason}); {kept}"
                    return
                wait = max(wait, exc.retry_after)
            if wait >= budget.left() - 1.0:
                spent = f"the {budget.seconds:g} s this run gives a delivery are spent"
                tries = f"after {attempt + 1} tries, {spent}"
                result.error = f"media server at {url} unreachable ({exc.reason}) {tries}; {kept}"
                return
            log.info("media server at %s: %s; trying again in %.0f s", url, exc.reason, wait)
            budget.pause(wait)
    # The loop returns on every path; reaching here would mean TRIES < 1.
    raise AssertionError("no delivery attempt was made")


def _record(store: Store, result: DeliveryResult) -> None:
    record = {
        "time": time.time(),
        "ok": result.ok,
        "sent": result.sent,
        "entries": result.entries,
        "mode": result.mode,
        "server": result.server,
        "error": result.error,
    }
    store.set_meta(META_LAST_DELIVERY, json.dumps(record))


# -------------------------------------------------------------------- doctor


def doctor_checks(config: Config, *, deadline: float = REQUEST_DEADLINE) -> list[Check]:
    """``graylink doctor``'s view of the media server: reachable, key accepted, paths covered."""
    emby = config.emby
    if not emby.url:
        return [Check("emby", True, "no [emby] url: no refresh is sent (links are still kept in sync)")]
    url = safe_url(emby.url)
    client = _Client(emby, deadline)
    try:
        return _doctor(client, config, url)
    finally:
        client.close()


def _doctor(client: _Client, config: Config, url: str) -> list[Check]:
    emby = config.emby
    checks: list[Check] = []
    try:
        info = client.public_info()
    except (_TransientError, _FailedError, _RefusedError) as exc:
        reason = exc.reason if isinstance(exc, _TransientError) else str(exc)
        reason = _scrub(reason, emby.api_key)
        hint = "check [emby] url and that the server runs"
        return [Check("emby.reachable", False, f"{url}{INFO_PATH}: {reason}", hint)]
    detected = server_kind(info)
    product = str(info.get("ProductName") or ("Jellyfin Server" if detected == "jellyfin" else "Emby Server"))
    checks.append(
        Check(
            "emby.reachable",
            True,
            f"{product} {info.get('Version', '?')} ({info.get('ServerName', 'unnamed')}) at {url}",
        )
    )
    server = emby.server if emby.server != "auto" else detected
    if emby.server != "auto" and emby.server != detected:
        checks.append(
            Check(
                "emby.server",
                False,
                f"[emby] server = {emby.server}, but {url} is {product}",
                f"set [emby] server = {detected} or auto",
            )
        )
    if not emby.api_key:
        checks.append(Check("emby.api_key", False, "[emby] api_key is not set", "create an API key in the dashboard"))
        return checks
    try:
        folders = client.request("GET", FOLDERS_PATH, auth=server).json()
    except _RefusedError as exc:
        hint = "create an API key in the server's dashboard (Advanced → API keys) and set [emby] api_key"
        if server == "jellyfin":
            hint += "; graylink sends it as Authorization: MediaBrowser Token, which Jellyfin 12 requires"
        name = "Jellyfin" if server == "jellyfin" else "Emby"
        checks.append(Check("emby.api_key", False, f"{name} refused the API key ({exc})", hint))
        return checks
    except (_TransientError, _FailedError) as exc:
        reason = exc.reason if isinstance(exc, _TransientError) else str(exc)
        checks.append(Check("emby.api_key", False, f"{FOLDERS_PATH}: {_scrub(reason, emby.api_key)}"))
        return checks
    except ValueError:
        checks.append(Check("emby.api_key", False, f"{FOLDERS_PATH} did not answer JSON"))
        return checks
    locations = _locations(folders)
    checks.append(Check("emby.api_key", True, f"API key accepted; {len(folders)} libraries"))
    checks.extend(coverage_checks(config, locations))
    return checks


def _locations(folders: Any) -> list[str]:
    out: list[str] = []
    if isinstance(folders, list):
        for folder in folders:
            if isinstance(folder, dict):
                out.extend(str(loc) for loc in folder.get("Locations") or [] if isinstance(loc, str))
    return out


def coverage_checks(config: Config, locations: list[str]) -> list[Check]:
    """Warn when the server would ignore updates: mapped link-tree folders under no library location.

    Looks at the link tree's root and its top-level folders, as the server sees them.
    """
    pairs = config.emby.path_map
    root = map_path(config.paths.target, pairs)
    hint = "add the folder to a library, or fix [emby] path_map (link tree path=server path)"
    if not any(is_under(loc, root) or is_under(root, loc) for loc in locations):
        shown = ", ".join(locations) or "none"
        return [
            Check(
                "emby.paths",
                False,
                f"the link tree is {root} for the server, but no library lies there (library folders: {shown})",
                hint,
                warn=True,
            )
        ]
    try:
        with os.scandir(config.paths.target) as listing:
            tops = sorted(entry.path for entry in listing if entry.is_dir(follow_symlinks=False))
    except OSError:
        tops = []
    uncovered = []
    for top in tops:
        mapped = map_path(top, pairs)
        if not any(is_under(mapped, loc) or is_under(loc, mapped) for loc in locations):
            uncovered.append(mapped)
    if uncovered:
        return [
            Check(
                "emby.paths",
                False,
                f"updates for {', '.join(uncovered)} would be ignored: under no library folder",
                hint,
                warn=True,
            )
        ]
    return [Check("emby.paths", True, f"the link tree ({root} for the server) is covered by the libraries")]
