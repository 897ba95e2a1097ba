"""Who keeps links in a link tree, as ``status`` and ``doctor`` show it.

The claims themselves (one file per database under ``TARGET/.graylink``) are
written and read by :mod:`graylink.links.ownership`; this adds whether a
graylink holds each claim's database now (its lock), so a second owner beside
a running service is seen.
"""

from __future__ import annotations

import os

from graylink.checks import N_, Check, said
from graylink.config import Config
from graylink.errors import GraylinkError
from graylink.links.ownership import MARKER_DIR, claims, database_id
from graylink.store.db import Store
from graylink.store.lock import holder


def claim_report(config: Config, store: Store | None) -> list[dict[str, object]]:
    """The claims on the link tree, for ``status`` and ``doctor``: which database,
    which source, whether it is this one, and whether a graylink holds it now."""
    mine = database_id(store) if store is not None else None
    found = claims(config.paths.target)
    if found is None:
        return [{"database_id": "unknown", "database": "", "source": "", "mine": False, "running": None}]
    out: list[dict[str, object]] = []
    for claim in found:
        pid = holder(claim.database) if claim.database else None
        out.append(
            {
                "database_id": claim.database_id,
                "database": claim.database,
                "source": claim.source,
                "mine": claim.database_id == mine,
                "running": pid,
            }
        )
    return out


def claims_line(report: list[dict[str, object]]) -> str:
    """One line naming the link tree's claims (``status``, ``doctor``)."""
    if not report:
        return said(N_("no graylink claims it yet"))
    parts = []
    for claim in report:
        if claim["database_id"] == "unknown":
            parts.append(f"unreadable ({MARKER_DIR})")
            continue
        who = said(N_("this database")) if claim["mine"] else f"database {claim['database']} (source {claim['source']})"
        running = claim["running"]
        if running is not None:
            who += f", held by a running graylink (pid {running or 'unknown'})"
        parts.append(who)
    owners = parts[0] if len(parts) == 1 else "; ".join(parts)  # one: still translatable
    if len(report) == 1:
        return said(N_("1 owner: %(owners)s"), owners=owners)
    return said(N_("%(n)s owners: %(owners)s"), n=len(report), owners=owners)


def claims_check(config: Config) -> Check | None:
    """``graylink doctor``: who keeps links in the link tree; another owner is a warning."""
    if not os.path.isdir(config.paths.target):
        return None
    store: Store | None = None
    try:
        if os.path.exists(config.paths.database):
            store = Store(config.paths.database, readonly=True)
        report = claim_report(config, store)
    except GraylinkError:
        return None  # the database check reports an unusable database
    finally:
        if store is not None:
            store.close()
    others = [c for c in report if not c["mine"]]
    line = claims_line(report)
    if others:
        return Check(
            "claims",
            False,
            said(N_("the link tree is shared: %(owners)s"), owners=line),
            said(
                N_(
                    "fine when meant (each database keeps only its own links);"
                    " else run with the other database's config"
                )
            ),
            warn=True,
        )
    return Check("claims", True, line)
