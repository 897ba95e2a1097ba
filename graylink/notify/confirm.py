"""One server's confirmation step of a cycle: ask (network, on the delivery's thread), then record (DB).

The questions are the protocol modules' (:mod:`graylink.notify.emby_confirm`,
:mod:`graylink.notify.plex_confirm`); what their answers mean is
:func:`graylink.notify.changes.decide`; this module connects them to a
server's config and its delivery, and logs what changed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from graylink.config import Config, EmbyConfig, Server
from graylink.notify import changes as tracking
from graylink.notify import emby, emby_confirm, plex, plex_confirm
from graylink.notify.changes import Lookup, Tracked
from graylink.notify.emby_doctor import library_locations
from graylink.notify.http import Budget, Client, FailedError, GaveUpError, RefusedError, scrub, with_tries
from graylink.notify.queue import DeliveryResult
from graylink.store.db import Store
from graylink.system.http_deadline import RequestStopped

log = logging.getLogger(__name__)


def wait_of(config: Config, name: str) -> float:
    return config.server(name).settings.confirm_wait


def label(server: Server, result: DeliveryResult | None = None) -> str:
    """How the log names a server: Emby, Jellyfin or Plex, with its section's name when it has one."""
    if server.kind == "plex":
        base = "Plex"
    else:
        base = emby.label_of(server.emby, result) if result is not None else "Emby/Jellyfin"
    return f"{base} [{server.key}]" if server.name else base


def ask(config: Config, name: str, rows: Sequence[Tracked], budget: Budget, deadline: float, kind: str) -> Lookup:
    """What the server's library says of ``rows`` (network only; never raises for the server's sake)."""
    if not any(row.sent_at is not None for row in rows) or budget.stop_requested():
        return Lookup()
    server = config.server(name)
    secret, url = server.secret, server.url
    if not secret:
        return Lookup(error=f"[{name}] has no credentials")
    client = Client(url, secret, deadline, budget.should_stop)
    try:
        if server.kind == "plex":
            settings = server.plex
            found = with_tries(client, budget, "Plex", lambda: plex.sections(client, settings.token))
            return plex_confirm.lookup(client, settings, rows, found, budget, time.time())
        return _ask_emby(client, server.emby, rows, budget, kind)
    except RefusedError as exc:
        return Lookup(error=f"refused the credentials ({exc})", requests=1)
    except (FailedError, GaveUpError) as exc:
        return Lookup(error=scrub(str(exc), secret), requests=1)
    except RequestStopped:
        return Lookup()
    finally:
        client.close()


def _ask_emby(client: Client, config: EmbyConfig, rows: Sequence[Tracked], budget: Budget, kind: str) -> Lookup:
    cost = 0
    if kind not in ("emby", "jellyfin"):
        kind = config.server
    if kind not in ("emby", "jellyfin"):
        cost += 1
        kind = emby.detect(with_tries(client, budget, "media server", lambda: emby.public_info(client))).kind
    headers = emby.auth_headers(kind, config.api_key)

    def locations(get: Any) -> list[str]:
        path = emby.FOLDERS_PATH if kind == "jellyfin" else emby.SELECTABLE_PATH
        return library_locations(get(path, {}), kind)

    found = emby_confirm.lookup(client, config, headers, rows, budget, time.time(), locations)
    found.requests += cost
    return found


PLUGIN_RECHECK = 86400.0  # a server found without the plugin is asked again after a day


def _plugin_meta(name: str) -> str:
    return f"{name}.scan_plugin"


def plugin_wanted(store: Store, name: str) -> bool:
    """Whether to try the Targeted Scans plugin this cycle (not when a 404 said "none" within a day)."""
    seen = store.get_meta(_plugin_meta(name)) or ""
    state, _, at = seen.partition(" ")
    try:
        return state != "absent" or time.time() - float(at) > PLUGIN_RECHECK
    except ValueError:
        return True


def settle_plugin(config: Config, store: Store, name: str, result: DeliveryResult) -> None:
    """Record what the plugin said of each path (after the delivery's rows were marked sent)."""
    if not result.plugin:
        return
    server = config.server(name)
    before = (store.get_meta(_plugin_meta(name)) or "").partition(" ")[0]
    store.set_meta(_plugin_meta(name), f"{result.plugin} {time.time()}")
    if result.plugin != before:
        if result.plugin == "absent":
            log.info(
                "no Targeted Scans plugin on the server (POST /Library/ScanPaths: 404): using /Library/Media/Updated"
            )
        else:
            log.info("the server's Targeted Scans plugin takes the changes (POST /Library/ScanPaths)")
    if not result.scanned:
        return
    now = time.time()
    decision = tracking.Decision()
    for row in tracking.awaiting(store, name):
        where = emby_confirm.server_path(row.path, server.emby)
        status, item = result.scanned.get(where, ("", ""))
        if status in ("Created", "Refreshed") and row.expect == tracking.PRESENT:
            decision.confirmed.append((row.path, item or None, max(0.0, now - row.linked_at)))
        elif status in ("Removed", "PathNotFound") and row.expect == tracking.ABSENT:
            decision.confirmed.append((row.path, None, max(0.0, now - row.linked_at)))
        elif status == "ParentNotFound":
            decision.stuck.append(
                (row.path, f"no library of the server holds {where} (Targeted Scans: ParentNotFound)")
            )
    stuck = tracking.record(store, name, decision, now)
    result.confirmed += len(decision.confirmed)
    result.stuck.extend(os.fsdecode(path) for path in stuck)
    if decision.confirmed:
        log.info(
            "%s: %d changes confirmed by the Targeted Scans plugin", label(server, result), len(decision.confirmed)
        )


def settle(
    config: Config, store: Store, name: str, rows: Sequence[Tracked], found: Lookup, result: DeliveryResult
) -> None:
    """Record what ``found`` means for ``rows`` and report it (DB, on the caller's thread)."""
    named = label(config.server(name), result)
    if found.error:
        log.warning(
            "%s: could not check which changes reached its library (%s); asking again next run", named, found.error
        )
    now = time.time()
    down = result.error if not result.ok and not result.stopped else ""
    decision = tracking.decide(rows, found, now, wait_of(config, name), down)
    stuck = tracking.record(store, name, decision, now)
    result.confirmed += len(decision.confirmed)
    result.stuck.extend(os.fsdecode(path) for path in stuck)
    if decision.confirmed:
        log.info("%s: %d changes confirmed in its library", named, len(decision.confirmed))
    if decision.resend:
        log.info(
            "%s: %d changes not in its library after [%s] confirm_wait: their folders are sent once more",
            named,
            len(decision.resend),
            name,
        )
    for path, reason in decision.stuck:
        log.warning("%s: stuck: %s (%s)", named, os.fsdecode(path), reason)
