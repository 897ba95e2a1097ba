"""Did Emby / Jellyfin take the changes? Cheap, typed, bounded questions (network only).

Read in upstream's source (Jellyfin ``Jellyfin.Api/Controllers/ItemsController.cs``,
``BaseItemRepository.TranslateQuery.cs``, ``LibraryManager.cs``,
``ScheduledTasksController.cs``, ``RefreshMediaLibraryTask.cs``; Emby's OpenAPI
``ItemsService getItems``, ``ScheduledTaskService``):

- ``GET /Items`` with ``Recursive``, ``IncludeItemTypes`` (video kinds only),
  ``Fields=Path``, ``MinDateLastSaved`` (an item's ``DateLastSaved`` is set
  when the server saves it, so every item made since a change was sent
  passes; ``DateCreated`` is the FILE's creation time, useless for "new in
  the library"), sorted, with ``Limit`` and at most :data:`MAX_PAGES` pages:
  a handful of requests however large the library.
- ``GET /Items?Ids=…`` for the items graylink already knows (a deletion, a
  repaired link): what the server no longer returns is gone.
- Only when a change is due for a re-send: the libraries' folders (a path
  under none never comes) and ``GET /ScheduledTasks`` (while the
  ``RefreshLibrary`` task runs, the item may still come).

Paths are compared in the server's view (``[emby] path_map``).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from typing import Any

from graylink.config import EmbyConfig
from graylink.notify.changes import ABSENT, PRESENT, SENT, Lookup, Tracked, answers_into, asked_of
from graylink.notify.http import Budget, Client, FailedError, with_tries
from graylink.notify.pathmap import is_under, map_path

ITEMS_PATH = "/Items"
TASKS_PATH = "/ScheduledTasks"
SCAN_TASK_KEY = "RefreshLibrary"  # RefreshMediaLibraryTask.Key (Jellyfin and Emby)
VIDEO_TYPES = "Movie,Episode,Video,MusicVideo"
PAGE = 200  # items per page of recently saved items
MAX_PAGES = 3  # pages per cycle: what a cycle may cost, whatever the library's size
IDS_PER_REQUEST = 100
MAX_ID_REQUESTS = 2
CLOCK_SLACK = 300.0  # seconds: the server's clock may differ from ours


def server_path(path: bytes, config: EmbyConfig) -> str:
    return map_path(os.fsdecode(path), config.path_map)


def _iso(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _items(doc: Any) -> list[dict[str, Any]]:
    items = doc.get("Items") if isinstance(doc, dict) else None
    return [item for item in items or [] if isinstance(item, dict)]


def lookup(
    client: Client,
    config: EmbyConfig,
    headers: dict[str, str],
    rows: Sequence[Tracked],
    budget: Budget,
    now: float,
    library_locations: Any,
) -> Lookup:
    """What the server's library says of ``rows`` (changes sent and not yet confirmed)."""
    found = Lookup()
    asked = asked_of(rows)
    if not asked:
        return found

    def get(path: str, params: dict[str, str]) -> Any:
        found.requests += 1
        response = with_tries(
            client, budget, "media server", lambda: client.request("GET", path, headers=headers, params=params)
        )
        try:
            return response.json()
        except ValueError:
            raise FailedError(f"{path} did not answer JSON") from None

    with answers_into(found, config.api_key, "API key"):
        _by_id(get, config, [r for r in asked if r.item], found)
        _recent(get, config, [r for r in asked if r.expect == PRESENT and r.path not in found.seen], found)
        due = [r for r in asked if found.due(r, now, config.confirm_wait)]
        if due:
            locations = library_locations(get)
            for row in due:
                where = server_path(row.path, config)
                if row.expect == PRESENT and not any(is_under(where, loc) for loc in locations):
                    found.outside[row.path] = where
            if any(r.state == SENT for r in due):
                found.scanning = _scanning(get(TASKS_PATH, {"isHidden": "false"}))
    return found


def _recent(get: Any, config: EmbyConfig, rows: list[Tracked], found: Lookup) -> None:
    """Items saved since the oldest of ``rows`` was sent, newest first, page by page (bounded)."""
    if not rows:
        return
    wanted = {server_path(r.path, config): r.path for r in rows}
    since = min(r.sent_at or 0.0 for r in rows) - CLOCK_SLACK
    for page in range(MAX_PAGES):
        items = _items(
            get(
                ITEMS_PATH,
                {
                    "Recursive": "true",
                    "IncludeItemTypes": VIDEO_TYPES,
                    "Fields": "Path,DateCreated",
                    "MinDateLastSaved": _iso(since),
                    "SortBy": "DateCreated,SortName",
                    "SortOrder": "Descending",
                    "StartIndex": str(page * PAGE),
                    "Limit": str(PAGE),
                    "EnableTotalRecordCount": "false",
                    "EnableImages": "false",
                    "EnableUserData": "false",
                },
            )
        )
        for item in items:
            link = wanted.pop(str(item.get("Path") or ""), None)
            if link is not None:
                found.seen[link] = str(item.get("Id") or "")
        if not wanted or len(items) < PAGE:
            return


def _by_id(get: Any, config: EmbyConfig, rows: list[Tracked], found: Lookup) -> None:
    """The known items, asked by ID: present ones must still have their path, deleted ones must be gone."""
    rows = rows[: IDS_PER_REQUEST * MAX_ID_REQUESTS]
    for start in range(0, len(rows), IDS_PER_REQUEST):
        chunk = rows[start : start + IDS_PER_REQUEST]
        doc = get(
            ITEMS_PATH,
            {
                "Ids": ",".join(str(r.item) for r in chunk),
                "Recursive": "true",
                "Fields": "Path",
                "EnableTotalRecordCount": "false",
                "EnableImages": "false",
                "EnableUserData": "false",
            },
        )
        listed = {str(item.get("Id")): str(item.get("Path") or "") for item in _items(doc)}
        for row in chunk:
            where = server_path(row.path, config)
            there = listed.get(str(row.item)) == where
            if row.expect == ABSENT and not there:
                found.gone.add(row.path)
            elif row.expect == PRESENT and there:
                found.seen[row.path] = str(row.item)


def _scanning(tasks: Any) -> bool:
    """Whether the library scan task runs (``TaskInfo.State``)."""
    for task in tasks if isinstance(tasks, list) else []:
        if isinstance(task, dict) and task.get("Key") == SCAN_TASK_KEY:
            return str(task.get("State") or "") in ("Running", "Cancelling")
    return False
