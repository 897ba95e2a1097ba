"""Emby and Jellyfin: everything queued for ``[emby]`` goes out as ONE targeted request.

``POST /Library/Media/Updated`` names every changed path (merged across runs,
collapsed into folders where a folder has many changes); ``POST
/Library/Refresh`` replaces it when there is too much to name. The queue
rows leave only after a 2xx (:mod:`graylink.notify.queue`).

Which server answers decides the header the key travels in (ARCHITECTURE §5).
``GET /System/Info/Public`` tells: Jellyfin names itself (``ProductName``),
Emby does not. While Jellyfin starts, its setup server answers that route in
camelCase (``productName``) and every other route 503 with ``Retry-After``:
such an answer is read case-insensitively but is not final, and the kind is
asked again after the next failed try, so a kind seen during startup never
sticks. The key never reaches a log line, an error, the database, ``status``
or ``doctor``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from graylink.config import EmbyConfig
from graylink.links.planner import Op
from graylink.notify import queue
from graylink.notify.batch import Entry, build_entries, merge
from graylink.notify.http import (
    DELIVERY_BUDGET,
    REQUEST_DEADLINE,
    Budget,
    Client,
    FailedError,
    GaveUpError,
    RefusedError,
    Sleep,
    TransientError,
    answered,
    safe_url,
    scrub,
    with_tries,
)
from graylink.notify.queue import DeliveryResult, Queued
from graylink.store.db import Store
from graylink.system.http_deadline import RequestStopped

log = logging.getLogger(__name__)

UPDATED_PATH = "/Library/Media/Updated"
REFRESH_PATH = "/Library/Refresh"
INFO_PATH = "/System/Info/Public"
FOLDERS_PATH = "/Library/VirtualFolders"  # Jellyfin: [{Name, Locations, …}]
SELECTABLE_PATH = "/Library/SelectableMediaFolders"  # Emby: [{Name, SubFolders: [{Path, …}], …}]
# The Targeted Scans plugin (d3v1l1989/targeted-scans: jellyfin-plugin/Controllers/ScanPathController.cs,
# Services/TargetedScanService.cs; emby-plugin/Api/ScanPathService.cs): {"Paths": […]} → 200
# {"Results": [{ItemId, ItemName, Status, Path, Message}]}, Status Created | Refreshed | Removed |
# PathNotFound | ParentNotFound | Failed, one per distinct path. Without the plugin the route is unknown: 404.
SCAN_PATHS_PATH = "/Library/ScanPaths"

KEPT = "updates kept in the queue for the next run"

# Re-exported: the queue's API predates the split into one module per protocol.
__all__ = ["DeliveryResult", "deliver", "enqueue", "queue_status"]
enqueue = queue.enqueue
queue_status = queue.queue_status


def auth_headers(server: str, key: str) -> dict[str, str]:
    """The header the server accepts the key in (ARCHITECTURE §5).

    Jellyfin 12 ignores ``X-Emby-Token`` unless legacy authorization is turned
    back on, while the ``MediaBrowser`` form works on every Jellyfin 10.x.
    """
    if server == "jellyfin":
        return {"Authorization": f'MediaBrowser Token="{key}"'}
    return {"X-Emby-Token": key}


def info_value(info: dict[str, Any], name: str) -> Any:
    """``info[name]`` whatever the case of its key (PascalCase from the server, camelCase while it starts)."""
    if name in info:
        return info[name]
    low = name.lower()
    return next((value for key, value in info.items() if isinstance(key, str) and key.lower() == low), None)


@dataclass(frozen=True)
class Detected:
    kind: str  # emby | jellyfin
    final: bool  # False: an answer of Jellyfin's startup server, to be asked again


def detect(info: dict[str, Any]) -> Detected:
    """The kind of server that answered ``/System/Info/Public``.

    The running server (Emby, Jellyfin) answers in PascalCase; Jellyfin's
    setup server (``ServerSetupApp/SetupServer.cs``) answers with ASP.NET's
    default camelCase while the real server is not up yet.
    """
    product = str(info_value(info, "ProductName") or "")
    kind = "jellyfin" if "jellyfin" in product.lower() else "emby"
    pascal = any(isinstance(key, str) and key[:1].isupper() for key in info)
    return Detected(kind, final=pascal)


def server_kind(info: dict[str, Any]) -> str:
    return detect(info).kind


def public_info(client: Client) -> dict[str, Any]:
    response = client.request("GET", INFO_PATH)
    try:
        info = response.json()
    except ValueError:
        raise FailedError(
            f"{INFO_PATH} answered {answered(response)}, not JSON: is [emby] url a media server?"
        ) from None
    if not isinstance(info, dict):
        raise FailedError(f"{INFO_PATH} did not answer a JSON object: is [emby] url a media server?")
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


def send(
    config: EmbyConfig,
    rows: list[Queued],
    tree_root: bytes | None,
    budget: Budget,
    deadline: float = REQUEST_DEADLINE,
    use_plugin: bool = False,
) -> tuple[DeliveryResult, list[int]]:
    """Tell the server about ``rows``: network only (thread-safe). Returns the result and the rows acknowledged.

    ``use_plugin``: try the Targeted Scans plugin's ``POST /Library/ScanPaths`` first (its per-path
    answer confirms the changes at once); a 404 says there is none, and ``Media/Updated`` goes out instead.
    """
    mode, entries = plan_request(config, ((row.path, row.op) for row in rows), tree_root)
    result = DeliveryResult(mode=mode, entries=len(entries), server=config.server if config.server != "auto" else "")
    if not config.api_key:
        result.error = f"[emby] api_key is not set; {len(rows)} updates kept for the next run"
        result.refused = True
        return result, []
    client = Client(config.url, config.api_key, deadline, budget.should_stop)
    try:
        _send(client, config, mode, entries, result, budget, use_plugin and mode == "targeted" and bool(entries))
    except RequestStopped:
        result.error = f"delivery to {safe_url(config.url)} stopped on request; updates kept for the next run"
        result.stopped = True
    finally:
        client.close()
    if not result.ok:
        return result, []
    result.sent = len(rows)
    return result, [row.id for row in rows]


def _send(
    client: Client,
    config: EmbyConfig,
    mode: str,
    entries: list[Entry],
    result: DeliveryResult,
    budget: Budget,
    plugin: bool = False,
) -> None:
    url = safe_url(config.url)
    path = UPDATED_PATH if mode == "targeted" else REFRESH_PATH
    body = {"Updates": [entry.as_json() for entry in entries]} if mode == "targeted" else None
    known = Detected(config.server, final=True) if config.server != "auto" else None

    def attempt() -> None:
        nonlocal known, plugin
        if known is None:
            known = detect(public_info(client))
            result.server = known.kind
        headers = auth_headers(known.kind, config.api_key)
        try:
            if plugin:
                try:
                    answer = client.request(
                        "POST", SCAN_PATHS_PATH, headers=headers, body={"Paths": [e.path for e in entries]}
                    )
                except FailedError as exc:  # 404: no plugin (405/400: not the plugin graylink knows)
                    log.debug("no Targeted Scans plugin (%s): sending %s", exc, UPDATED_PATH)
                    plugin, result.plugin = False, "absent"
                else:
                    result.plugin, result.scanned = "used", _scanned(answer)
                    return
            client.request("POST", path, headers=headers, body=body)
        except TransientError:
            if not known.final:
                known = None  # a starting Jellyfin: ask again what answers
            raise

    try:
        with_tries(client, budget, f"media server at {url}", attempt)
    except RefusedError as exc:
        kind = known.kind if known is not None else result.server
        name = "Jellyfin" if kind == "jellyfin" else "Emby"
        hint = (
            "check [emby] api_key"
            if kind == "jellyfin" or config.server == "auto"
            else "check [emby] api_key, and [emby] server (Jellyfin 12 answers 401 to Emby's header)"
        )
        result.error = f"{name} refused the API key ({exc} from {url}): {hint}; {KEPT}"
        result.refused = True
    except FailedError as exc:
        result.error = f"{url}: {scrub(str(exc), config.api_key)}; {KEPT}"
    except GaveUpError as exc:
        result.error = f"{exc}; {KEPT}"
    if known is not None:
        result.server = known.kind


def _scanned(answer: Any) -> dict[str, tuple[str, str]]:
    """The plugin's answer per path: (Status, ItemId)."""
    try:
        doc = answer.json()
    except ValueError:
        return {}
    results = doc.get("Results") if isinstance(doc, dict) else None
    return {
        str(r.get("Path")): (str(r.get("Status") or ""), str(r.get("ItemId") or ""))
        for r in results or []
        if isinstance(r, dict) and r.get("Path")
    }


def report(label: str, url: str, result: DeliveryResult) -> None:
    if result.ok:
        what = f"{result.entries} entries" if result.mode == "targeted" else "a library refresh"
        log.info("%s: delivered %d queued changes as %s to %s", label, result.sent, what, safe_url(url))
    elif result.stopped:
        log.warning("%s", result.error)
    else:
        log.error("%s", result.error)


def label_of(config: EmbyConfig, result: DeliveryResult) -> str:
    return "Jellyfin" if (result.server or config.server) == "jellyfin" else "Emby"


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
    """Send everything queued for ``[emby]`` as one request; keep it queued unless the server answers 2xx.

    ``tree_root`` (the link tree's root) bounds how far changes collapse into
    folders. Each request ends within ``deadline`` seconds and the delivery,
    tries and pauses included, within ``budget``; ``should_stop`` ends it at
    once (the queue is kept). Never raises for the server's sake: failures
    are in the result and logged once at ERROR.
    """
    rows = queue.queued(store, "emby")
    if not rows or not config.url:
        return DeliveryResult(pending=len(rows))
    root = os.fsencode(tree_root) if tree_root is not None else None
    result, done = send(config, rows, root, Budget(budget, sleep, should_stop), deadline)
    queue.finish(store, "emby", done, result, rows)
    report(label_of(config, result), config.url, result)
    return result
