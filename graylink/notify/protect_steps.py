"""What protecting a server's library means for each protocol (network; the DB bookkeeping is the caller's).

Read in upstream's source before use:

- Jellyfin ``Jellyfin.Api/Controllers/ScheduledTasksController.cs`` (elevated):
  ``GET /ScheduledTasks`` → ``TaskInfo[]`` (``State`` Idle|Running|Cancelling,
  ``Id``, ``Key``, ``Triggers``), ``DELETE /ScheduledTasks/Running/{taskId}``
  stops a running task, ``POST /ScheduledTasks/{taskId}/Triggers`` with a
  ``TaskTriggerInfo[]`` body replaces its triggers; the library scan is
  ``RefreshMediaLibraryTask`` (``Key`` ``RefreshLibrary``). Emby's OpenAPI
  ``ScheduledTaskService`` has the same routes.
- python-plexapi ``plexapi/server.py`` (``activities``: ``GET /activities``,
  ``Activity.type``), ``plexapi/library.py`` (``LibrarySection.cancelUpdate``:
  ``DELETE /library/sections/{key}/refresh``), ``plexapi/settings.py``
  (``GET /:/prefs``: ``Setting`` ``id`` / ``value``; ``Settings.save``: ``PUT
  /:/prefs?id=value``) and ``docs/settingslist.rst`` (``autoEmptyTrash``:
  "Empty trash automatically after every scan", default on).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graylink.config import EmbyConfig, PlexConfig
from graylink.notify import emby, plex
from graylink.notify.emby_confirm import SCAN_TASK_KEY, TASKS_PATH
from graylink.notify.http import Client, FailedError
from graylink.notify.plex_confirm import SCAN_ACTIVITY, parse_container

TRASH_PREF = "autoEmptyTrash"

# Called before a setting is changed: (what, the user's value) -> written to the DB.
Plan = Callable[[str, str], None]


@dataclass
class Held:
    done: list[str]  # what was done now, in words
    settings: list[str]  # the settings now held (``what`` keys), for the caller to mark 'held'


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        raise FailedError("the answer was not JSON") from None


def emby_headers(client: Client, config: EmbyConfig) -> dict[str, str]:
    kind = config.server
    if kind not in ("emby", "jellyfin"):
        kind = emby.detect(emby.public_info(client)).kind
    return emby.auth_headers(kind, config.api_key)


def emby_engage(client: Client, config: EmbyConfig, hold_settings: bool, held: set[str], plan: Plan) -> Held:
    """Stop a running library scan; with ``hold_settings``, empty its scheduled triggers (saved first)."""
    out = Held([], [])
    headers = emby_headers(client, config)
    tasks = _json(client.request("GET", TASKS_PATH, headers=headers, params={"isHidden": "false"}))
    task = next((t for t in tasks if isinstance(t, dict) and t.get("Key") == SCAN_TASK_KEY), None)
    if task is None:
        return out
    task_id = str(task.get("Id") or "")
    if task.get("State") == "Running":
        client.request("DELETE", f"{TASKS_PATH}/Running/{task_id}", headers=headers)
        out.done.append("stopped its running library scan")
    what = f"triggers:{task_id}"
    triggers = task.get("Triggers") or []
    if hold_settings and what not in held and triggers:
        plan(what, json.dumps(triggers))
        client.request("POST", f"{TASKS_PATH}/{task_id}/Triggers", headers=headers, body=[])
        out.settings.append(what)
        out.done.append(f"held the library scan's {len(triggers)} scheduled triggers")
    return out


def emby_restore(client: Client, config: EmbyConfig, what: str, saved: str) -> None:
    task_id = what.partition(":")[2]
    body = json.loads(saved)
    client.request("POST", f"{TASKS_PATH}/{task_id}/Triggers", headers=emby_headers(client, config), body=body)


def _prefs(client: Client, headers: dict[str, str]) -> dict[str, str]:
    response = client.request("GET", "/:/prefs", headers=headers)
    settings = parse_container(response.headers.get("Content-Type", ""), response.content)
    return {str(s.get("id")): str(s.get("value")).lower() for s in settings}


def plex_engage(client: Client, config: PlexConfig, hold_settings: bool, held: set[str], plan: Plan) -> Held:
    """Cancel a running section scan; with ``hold_settings``, turn autoEmptyTrash off (saved first)."""
    out = Held([], [])
    headers = plex.token_headers(config.token)
    response = client.request("GET", "/activities", headers=headers)
    activities = parse_container(response.headers.get("Content-Type", ""), response.content)
    if any(str(a.get("type") or "").startswith(SCAN_ACTIVITY) for a in activities):
        for section in plex.sections(client, config.token):
            client.request("DELETE", f"{plex.SECTIONS_PATH}/{section.key}/refresh", headers=headers)
        out.done.append("cancelled its running library scan")
    what = f"pref:{TRASH_PREF}"
    if hold_settings and what not in held and _prefs(client, headers).get(TRASH_PREF) in ("1", "true"):
        plan(what, "1")
        client.request("PUT", "/:/prefs", headers=headers, params={TRASH_PREF: "0"})
        out.settings.append(what)
        out.done.append("turned 'Empty trash automatically after every scan' off")
    return out


def plex_restore(client: Client, config: PlexConfig, what: str, saved: str) -> None:
    name = what.partition(":")[2]
    client.request("PUT", "/:/prefs", headers=plex.token_headers(config.token), params={name: saved})
