"""``graylink doctor`` for ``[plex]``: reachable (``GET /identity``), token accepted, link tree covered."""

from __future__ import annotations

from graylink.checks import Check
from graylink.config import Config
from graylink.notify.coverage import coverage_checks
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
from graylink.notify.plex import IDENTITY_PATH, REFUSED_HINT, SECTIONS_PATH, sections


def doctor_checks(config: Config, *, deadline: float = REQUEST_DEADLINE) -> list[Check]:
    plex = config.plex
    if not plex.url:
        return [Check("plex", True, "no [plex] url: Plex is not told")]
    client = Client(plex.url, plex.token, deadline)
    try:
        return _doctor(client, config, safe_url(plex.url))
    finally:
        client.close()


def _identity(client: Client, url: str, token: str) -> Check:
    try:
        response = client.request("GET", IDENTITY_PATH)
    except (TransientError, FailedError, RefusedError) as exc:
        return Check("plex.reachable", False, f"{url}{IDENTITY_PATH}: {failure_reason(exc, token)}", "check [plex] url")
    try:
        doc = response.json()
    except ValueError:
        doc = None
    container = doc.get("MediaContainer") if isinstance(doc, dict) else None
    if not isinstance(container, dict) or "machineIdentifier" not in container:
        what = "is not Plex's answer" if doc is not None else "is not JSON"
        return Check(
            "plex.reachable",
            False,
            f"{url}{IDENTITY_PATH} answered {answered(response)}, which {what}: is [plex] url a Plex server?",
            "check [plex] url",
        )
    version = container.get("version", "?")
    return Check("plex.reachable", True, f"Plex Media Server {version} ({container['machineIdentifier']}) at {url}")


def _doctor(client: Client, config: Config, url: str) -> list[Check]:
    plex = config.plex
    first = _identity(client, url, plex.token)
    if first.status != "ok":
        return [first]
    checks = [first]
    if not plex.token:
        checks.append(Check("plex.token", False, "[plex] token is not set", REFUSED_HINT))
        return checks
    try:
        found = sections(client, plex.token)
    except RefusedError as exc:
        checks.append(Check("plex.token", False, f"Plex refused the token ({exc})", REFUSED_HINT))
        return checks
    except (TransientError, FailedError) as exc:
        checks.append(Check("plex.token", False, f"{SECTIONS_PATH}: {failure_reason(exc, plex.token)}"))
        return checks
    checks.append(Check("plex.token", True, f"token accepted; {len(found)} sections"))
    locations = [location for section in found for location in section.locations]
    checks.extend(coverage_checks("plex", config.paths.target, plex.path_map, locations, "plex"))
    return checks
