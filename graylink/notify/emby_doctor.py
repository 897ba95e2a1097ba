"""``graylink doctor`` for ``[emby]``: reachable, which server, key accepted, link tree covered.

Library folders are read where each server documents them: Jellyfin's
``GET /Library/VirtualFolders`` (``[{Name, Locations, …}]``,
``LibraryStructureController``); Emby's ``GET /Library/SelectableMediaFolders``
(``[{Name, SubFolders: [{Path, …}], …}]``, Emby's OpenAPI ``LibraryService``),
since the plain ``GET /Library/VirtualFolders`` is not in Emby's document.
"""

from __future__ import annotations

from typing import Any

from graylink.checks import Check
from graylink.config import Config
from graylink.notify.coverage import coverage_checks
from graylink.notify.emby import (
    FOLDERS_PATH,
    INFO_PATH,
    SELECTABLE_PATH,
    auth_headers,
    detect,
    info_value,
    public_info,
)
from graylink.notify.http import (
    REQUEST_DEADLINE,
    Client,
    FailedError,
    RefusedError,
    TransientError,
    answered,
    failure_reason,
    safe_url,
)


def doctor_checks(config: Config, *, deadline: float = REQUEST_DEADLINE) -> list[Check]:
    """``graylink doctor``'s view of the Emby / Jellyfin server."""
    emby = config.emby
    if not emby.url:
        return [Check("emby", True, "no [emby] url: no refresh is sent (links are still kept in sync)")]
    client = Client(emby.url, emby.api_key, deadline)
    try:
        return _doctor(client, config, safe_url(emby.url))
    finally:
        client.close()


def _doctor(client: Client, config: Config, url: str) -> list[Check]:
    emby = config.emby
    try:
        info = public_info(client)
    except (TransientError, FailedError, RefusedError) as exc:
        hint = "check [emby] url and that the server runs"
        return [Check("emby.reachable", False, f"{url}{INFO_PATH}: {failure_reason(exc, emby.api_key)}", hint)]
    seen = detect(info)
    if not seen.final:
        return [
            Check(
                "emby.reachable",
                False,
                f"{url} is still starting (Jellyfin's startup server answered {INFO_PATH})",
                "run graylink doctor again once the server has started",
            )
        ]
    product = str(info_value(info, "ProductName") or ("Jellyfin Server" if seen.kind == "jellyfin" else "Emby Server"))
    version, name = info_value(info, "Version") or "?", info_value(info, "ServerName") or "unnamed"
    checks = [Check("emby.reachable", True, f"{product} {version} ({name}) at {url}")]
    server = emby.server if emby.server != "auto" else seen.kind
    if emby.server != "auto" and emby.server != seen.kind:
        checks.append(
            Check(
                "emby.server",
                False,
                f"[emby] server = {emby.server}, but {url} is {product}",
                f"set [emby] server = {seen.kind} or auto",
            )
        )
    if not emby.api_key:
        checks.append(Check("emby.api_key", False, "[emby] api_key is not set", "create an API key in the dashboard"))
        return checks
    path = FOLDERS_PATH if server == "jellyfin" else SELECTABLE_PATH
    try:
        response = client.request("GET", path, headers=auth_headers(server, emby.api_key))
        folders = response.json()
    except RefusedError as exc:
        hint = "create an API key in the server's dashboard (Advanced → API keys) and set [emby] api_key"
        if server == "jellyfin":
            hint += "; graylink sends it as Authorization: MediaBrowser Token, which Jellyfin 12 requires"
        label = "Jellyfin" if server == "jellyfin" else "Emby"
        checks.append(Check("emby.api_key", False, f"{label} refused the API key ({exc})", hint))
        return checks
    except (TransientError, FailedError) as exc:
        checks.append(Check("emby.api_key", False, f"{path}: {failure_reason(exc, emby.api_key)}"))
        return checks
    except ValueError:
        checks.append(Check("emby.api_key", False, f"{path} answered {answered(response)}, not JSON"))
        return checks
    locations = library_locations(folders, server)
    count = len(folders) if isinstance(folders, list) else 0
    checks.append(Check("emby.api_key", True, f"API key accepted; {count} libraries"))
    checks.extend(coverage_checks("emby", config.paths.target, emby.path_map, locations, "emby"))
    return checks


def library_locations(folders: Any, server: str) -> list[str]:
    """The folders of every library: Jellyfin's ``Locations``, Emby's ``SubFolders[].Path``."""
    out: list[str] = []
    if not isinstance(folders, list):
        return out
    for folder in folders:
        if not isinstance(folder, dict):
            continue
        if server == "jellyfin":
            out.extend(loc for loc in folder.get("Locations") or [] if isinstance(loc, str))
        else:
            subs = folder.get("SubFolders") or []
            out.extend(s["Path"] for s in subs if isinstance(s, dict) and isinstance(s.get("Path"), str))
    return out
