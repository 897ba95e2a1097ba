"""``graylink doctor`` for ``[plex]``: reachable (``GET /identity``), token accepted, link tree covered."""

from __future__ import annotations

from graylink.checks import N_, Check, said
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
    with_client,
)
from graylink.notify.plex import IDENTITY_PATH, REFUSED_HINT, SECTIONS_PATH, sections


def doctor_checks(config: Config, *, deadline: float = REQUEST_DEADLINE) -> list[Check]:
    plex = config.plex
    if not plex.url:
        return [Check("plex", True, said(N_("no [plex] url: Plex is not told")))]
    return with_client(plex.url, plex.token, deadline, lambda client, url: _doctor(client, config, url))


def _identity(client: Client, url: str, token: str) -> Check:
    try:
        response = client.request("GET", IDENTITY_PATH)
    except (TransientError, FailedError, RefusedError) as exc:
        reason = said(N_("%(url)s: %(reason)s"), url=url + IDENTITY_PATH, reason=failure_reason(exc, token))
        return Check("plex.reachable", False, reason, said(N_("check [plex] url")))
    try:
        doc = response.json()
    except ValueError:
        doc = None
    container = doc.get("MediaContainer") if isinstance(doc, dict) else None
    if not isinstance(container, dict) or "machineIdentifier" not in container:
        what = N_("%(url)s answered %(answer)s, which is not Plex's answer: is [plex] url a Plex server?")
        if doc is None:
            what = N_("%(url)s answered %(answer)s, which is not JSON: is [plex] url a Plex server?")
        shown = said(what, url=url + IDENTITY_PATH, answer=answered(response))
        return Check("plex.reachable", False, shown, said(N_("check [plex] url")))
    version = container.get("version", "?")
    machine = container["machineIdentifier"]
    shown = said(
        N_("Plex Media Server %(version)s (%(machine)s) at %(url)s"), version=version, machine=machine, url=url
    )
    return Check("plex.reachable", True, shown)


def _doctor(client: Client, config: Config, url: str) -> list[Check]:
    plex = config.plex
    first = _identity(client, url, plex.token)
    if first.status != "ok":
        return [first]
    checks = [first]
    if not plex.token:
        checks.append(Check("plex.token", False, said(N_("[plex] token is not set")), REFUSED_HINT))
        return checks
    try:
        found = sections(client, plex.token)
    except RefusedError as exc:
        checks.append(
            Check("plex.token", False, said(N_("Plex refused the token (%(reason)s)"), reason=str(exc)), REFUSED_HINT)
        )
        return checks
    except (TransientError, FailedError) as exc:
        reason = said(N_("%(url)s: %(reason)s"), url=SECTIONS_PATH, reason=failure_reason(exc, plex.token))
        checks.append(Check("plex.token", False, reason))
        return checks
    checks.append(Check("plex.token", True, said(N_("token accepted; %(count)s sections"), count=len(found))))
    locations = [location for section in found for location in section.locations]
    checks.extend(coverage_checks("plex", config.paths.target, plex.path_map, locations, "plex"))
    return checks
