"""The servers' libraries protected while the mount is down, and put back as they were on recovery.

While graylink holds the source unhealthy, its links dangle, and a media
server's own library scan would remove their items (a missing file since
Jellyfin 10.8; Plex with "Empty trash automatically after every scan"). So,
at every mount check while the mount is down, for each server whose
``protect`` is not ``no``: a running library scan is stopped (this changes no
setting: on by default); with ``protect = yes`` also the scan's scheduled
triggers are emptied (Emby/Jellyfin) or ``autoEmptyTrash`` turned off (Plex).

Every setting is written to the database (``server_hold``, state
``planned``) BEFORE it is changed, then marked ``held``; on recovery each is
put back to the user's value and only then forgotten, so a crash or a
SIGKILL in between loses nothing: the next healthy mount check, in any
process, restores it. The row ``engaged`` marks an active protection: its
insertion and its removal are the two alerts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from graylink.config import Config
from graylink.notify import protect_steps
from graylink.notify.http import Client, FailedError, RefusedError, TransientError, safe_url
from graylink.notify.queue import configured
from graylink.notify.shared_holds import SharedHolds
from graylink.store.db import Store
from graylink.system.http_deadline import RequestStopped

log = logging.getLogger(__name__)

ENGAGED = "engaged"
DEADLINE = 10.0  # seconds per request: the mount check must not wait long on a server
PLANNED, HELD = "planned", "held"


@dataclass
class Changes:
    engaged: dict[str, str] = field(default_factory=dict)  # server -> what was done (newly engaged)
    released: list[str] = field(default_factory=list)  # servers whose protection ended
    failed: dict[str, str] = field(default_factory=dict)  # server -> why a step failed (retried next check)


def mode_of(config: Config, name: str) -> str:
    return config.server(name).settings.protect


def _client(config: Config, name: str) -> Client:
    server = config.server(name)
    return Client(server.url, server.secret, DEADLINE)


def holds(store: Store, name: str) -> dict[str, tuple[str, str]]:
    rows = store.execute("SELECT what, saved, state FROM server_hold WHERE server = ?", (name,)).fetchall()
    return {str(r[0]): (str(r[1]), str(r[2])) for r in rows}


def engaged(store: Store) -> set[str]:
    rows = store.execute("SELECT server FROM server_hold WHERE what = ?", (ENGAGED,)).fetchall()
    return {str(r[0]) for r in rows}


def engage(config: Config, store: Store, shared: SharedHolds | None = None) -> Changes:
    """The mount is down: protect each server's library (every check: a scan may start during the outage).

    With ``shared`` (a service of several libraries), only the library that
    holds a server saves and changes its settings; another one stops its
    running scans (:mod:`graylink.notify.shared_holds`)."""
    out = Changes()
    for name in configured(config):
        mode = mode_of(config, name)
        if mode == "no":
            continue
        settings = mode == "yes" and (shared is None or shared.claim(name, config.name))
        held = holds(store, name)
        first = ENGAGED not in held
        if first:
            with store.atomic():
                store.execute(
                    "INSERT INTO server_hold (server, what, saved, state, at) VALUES (?, ?, '', ?, ?)",
                    (name, ENGAGED, HELD, time.time()),
                )

        def plan(what: str, saved: str, server: str = name) -> None:
            with store.atomic():  # committed before the request that changes the setting
                store.execute(
                    "INSERT OR REPLACE INTO server_hold (server, what, saved, state, at) VALUES (?, ?, ?, ?, ?)",
                    (server, what, saved, PLANNED, time.time()),
                )

        client = _client(config, name)
        try:
            server = config.server(name)
            if server.kind == "plex":
                result = protect_steps.plex_engage(client, server.plex, settings, set(held), plan)
            else:
                result = protect_steps.emby_engage(client, server.emby, settings, set(held), plan)
        except (FailedError, RefusedError, TransientError, RequestStopped) as exc:
            out.failed[name] = _why(exc)
            log.error("%s: could not protect its library while the mount is down: %s", name, out.failed[name])
            result = protect_steps.Held([], [])
        finally:
            client.close()
        with store.atomic():
            store.executemany(
                "UPDATE server_hold SET state = ? WHERE server = ? AND what = ?",
                ((HELD, name, what) for what in result.settings),
            )
        for done in result.done:
            log.warning("%s (%s): %s while the mount is down", name, safe_url(_url(config, name)), done)
        if first:
            out.engaged[name] = "; ".join(result.done) or "watching for a library scan to stop"
    return out


def release(config: Config, store: Store, shared: SharedHolds | None = None) -> Changes:
    """The mount is healthy: put back every setting held, in this process or one that died; then forget it.

    With ``shared``, a server stays held while another library that it sees is down."""
    out = Changes()
    servers = {str(r[0]) for r in store.execute("SELECT DISTINCT server FROM server_hold").fetchall()}
    for name in sorted(servers):
        if shared is not None and not shared.may_release(name):
            log.debug("%s stays held: the mount of %s is down", name, ", ".join(shared.down(name)))
            continue
        held = holds(store, name)
        if not _url(config, name):
            log.error("%s is no longer configured: cannot put back %s", name, ", ".join(sorted(held)))
            continue
        client = _client(config, name)
        try:
            for what, (saved, _state) in sorted(held.items()):
                if what == ENGAGED:
                    continue
                server = config.server(name)
                if server.kind == "plex":
                    protect_steps.plex_restore(client, server.plex, what, saved)
                else:
                    protect_steps.emby_restore(client, server.emby, what, saved)
                with store.atomic():
                    store.execute("DELETE FROM server_hold WHERE server = ? AND what = ?", (name, what))
                log.info("%s: %s put back as it was before the mount went down", name, what)
        except (FailedError, RefusedError, TransientError, RequestStopped) as exc:
            out.failed[name] = _why(exc)
            log.error(
                "%s: could not put its settings back yet (%s); trying again at the next check", name, out.failed[name]
            )
            continue
        finally:
            client.close()
        with store.atomic():
            store.execute("DELETE FROM server_hold WHERE server = ? AND what = ?", (name, ENGAGED))
        if shared is not None:
            shared.released(name, config.name)
        if ENGAGED in held:
            out.released.append(name)
    return out


def _url(config: Config, name: str) -> str:
    return next((server.url for server in config.servers if server.key == name), "")


def _why(exc: Exception) -> str:
    return exc.reason if isinstance(exc, TransientError) else str(exc) or type(exc).__name__
