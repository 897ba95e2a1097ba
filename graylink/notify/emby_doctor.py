"""``graylink doctor`` for ``[emby]``: reachable, which server, key accepted, link tree covered.

Library folders are read where each server documents them: Jellyfin's
``GET /Library/VirtualFolders`` (``[{Name, Locations, …}]``,
``LibraryStructureController``); Emby's ``GET /Library/SelectableMediaFolders``
(``[{Name, SubFolders: [{Path, …}], …}]``, Emby's OpenAPI ``LibraryService``),
since the plain ``GET /Library/VirtualFolders`` is not in Emby's document.
"""

from __future__ import annotations

from typing import Any

from graylink.checks import N_, Check, said
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
    with_client,
)


def doctor_checks(config: Config, *, deadline: float = REQUEST_DEADLINE) -> list[Check]:
    """``graylink doctor``'s view of the Emby / Jellyfin server."""
    emby = config.emby
    if not emby.url:
        return [Check("emby", True, said(N_("no [emby] url: no refresh is sent (links are still kept in sync)")))]
    return with_client(emby.url, emby.api_key, deadline, lambda client, url: _doctor(client, config, url))


def _doctor(client: Client, config: Config, url: str) -> list[Check]:
    emby = config.emby
    try:
        info = public_info(client)
    except (TransientError, FailedError, RefusedError) as exc:
        hint = said(N_("check [emby] url and that the server runs"))
        reason = said(N_("%(url)s: %(reason)s"), url=url + INFO_PATH, reason=failure_reason(exc, emby.api_key))
        return [Check("emby.reachable", False, reason, hint)]
    seen = detect(info)
    if not seen.final:
        return [
            Check(
                "emby.reachable",
                False,
                said(
                    N_("%(url)s is still starting (Jellyfin's startup server answered %(path)s)"),
                    url=url,
                    path=INFO_PATH,
                ),
                said(N_("run graylink doctor again once the server has started")),
            )
        ]
    product = str(info_value(info, "ProductName") or ("Jellyfin Server" if seen.kind == "jellyfin" else "Emby Server"))
    version, name = info_value(info, "Version") or "?", info_value(info, "ServerName") or "unnamed"
    checks = [
        Check(
            "emby.reachable",
            True,
            said(
                N_("%(product)s %(version)s (%(name)s) at %(url)s"),
                product=product,
                version=version,
                name=name,
                url=url,
            ),
        )
    ]
    server = emby.server if emby.server != "auto" else seen.kind
    if emby.server != "auto" and emby.server != seen.kind:
        checks.append(
            Check(
                "emby.server",
                False,
                said(
                    N_("[emby] server = %(server)s, but %(url)s is %(product)s"),
                    server=emby.server,
                    url=url,
                    product=product,
                ),
                said(N_("set [emby] server = %(kind)s or auto"), kind=seen.kind),
            )
        )
    if not emby.api_key:
        hint = said(N_("create an API key in the dashboard"))
        checks.append(Check("emby.api_key", False, said(N_("[emby] api_key is not set")), hint))
        return checks
    path = FOLDERS_PATH if server == "jellyfin" else SELECTABLE_PATH
    try:
        response = client.request("GET", path, headers=auth_headers(server, emby.api_key))
        folders = response.json()
    except RefusedError as exc:
        hint = said(N_("create an API key in the server's dashboard (Advanced → API keys) and set [emby] api_key"))
        if server == "jellyfin":
            hint = said(
                N_(
                    "create an API key in the server's dashboard (Advanced → API keys) and set [emby] api_key;"
                    " graylink sends it as Authorization: MediaBrowser Token, which Jellyfin 12 requires"
                )
            )
        label = "Jellyfin" if server == "jellyfin" else "Emby"
        refused = said(N_("%(server)s refused the API key (%(reason)s)"), server=label, reason=str(exc))
        checks.append(Check("emby.api_key", False, refused, hint))
        return checks
    except (TransientError, FailedError) as exc:
        reason = said(N_("%(url)s: %(reason)s"), url=path, reason=failure_reason(exc, emby.api_key))
        checks.append(Check("emby.api_key", False, reason))
        return checks
    except ValueError:
        what = said(N_("%(url)s answered %(answer)s, not JSON"), url=path, answer=answered(response))
        checks.append(Check("emby.api_key", False, what))
        return checks
    locations = library_locations(folders, server)
    count = len(folders) if isinstance(folders, list) else 0
    checks.append(Check("emby.api_key", True, said(N_("API key accepted; %(count)s libraries"), count=count)))
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
