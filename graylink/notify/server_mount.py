"""The mount as the media server sees it: a server in a container can keep a stale FUSE mount.

After rclone restarts, a container that mounted the source without
``rslave`` propagation still holds the dead mount ("Transport endpoint is not
connected") until it is restarted: graylink's links are right and the server
cannot read them. At each healthy mount check, graylink asks each Emby /
Jellyfin server that sees the library (``[emby]`` and every ``[emby NAME]``)
to list the source's top folder as the server sees it
(``[paths] link_root``, through that server's ``path_map``) with ``GET
/Environment/DirectoryContents`` (Jellyfin ``Jellyfin.Api/Controllers/
EnvironmentController.cs``, elevated: ``path``, ``includeFiles``,
``includeDirectories`` → ``FileSystemEntryInfo[]`` with ``Name``, ``Path``,
``Type``; an unreadable folder fails the request; Emby's OpenAPI
``EnvironmentService getEnvironmentDirectorycontents``: the same, admin) and compares with its own
listing. Plex has no such call in its API: not checked.

Each server's verdict is kept in the library's database (``emby.server_mount``,
``emby NAME.server_mount``), logged and alerted once per change, shown by
``status`` and ``/metrics``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from graylink.config import Config, Server
from graylink.notify.http import Client, FailedError, RefusedError, TransientError
from graylink.notify.pathmap import map_path
from graylink.notify.protect_steps import emby_headers
from graylink.store.db import Store
from graylink.system.http_deadline import RequestStopped

log = logging.getLogger(__name__)

PATH = "/Environment/DirectoryContents"
DEADLINE = 10.0
FIX = (
    "restart the server's container, and bind the folder that holds the rclone mount into it with "
    "propagation rslave (docker: -v /mnt:/mnt:ro,rslave) so that a new rclone mount reaches it"
)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str
    changed: bool  # differs from the last verdict recorded
    server: str = "emby"  # the server's key


def meta_key(server: str) -> str:
    return f"{server}.server_mount"


def last(store: Store, server: str = "emby") -> dict[str, Any] | None:
    raw = store.get_meta(meta_key(server))
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _ours(source: str) -> set[str]:
    try:
        with os.scandir(source) as listing:
            return {entry.name for entry in listing if not entry.name.startswith(".")}
    except OSError:
        return set()


def check_all(config: Config, store: Store) -> list[Verdict]:
    """Each Emby / Jellyfin server of this library's view, asked in turn; those that gave a verdict."""
    verdicts = (check(config, store, server) for server in config.servers if server.kind == "emby")
    return [verdict for verdict in verdicts if verdict is not None]


def check(config: Config, store: Store, server: Server | None = None) -> Verdict | None:
    """Ask an Emby / Jellyfin server (default: ``[emby]``) to list the source's top folder; None when nothing
    can be compared."""
    if server is None:
        server = next((s for s in config.servers if s.key == "emby"), None)
        if server is None:
            return None
    emby = server.emby
    if not emby.url or not emby.api_key:
        return None
    ours = _ours(config.paths.source)
    if not ours:
        return None  # an empty source says nothing of the server's view
    where = map_path(config.link_root.rstrip("/") or "/", emby.path_map)
    client = Client(emby.url, emby.api_key, DEADLINE)
    try:
        headers = emby_headers(client, emby)
        params = {"path": where, "includeFiles": "true", "includeDirectories": "true"}
        entries = client.request("GET", PATH, headers=headers, params=params).json()
        names = {str(e.get("Name")) for e in entries if isinstance(e, dict)} if isinstance(entries, list) else set()
        if not names:
            ok, message = False, f"the server sees {where} empty, graylink sees {len(ours)} entries there"
        elif not names & ours:
            ok, message = False, f"the server sees other entries in {where} than graylink does"
        else:
            ok, message = True, f"the server reads {where}"
    except (FailedError, TransientError) as exc:
        reason = exc.reason if isinstance(exc, TransientError) else str(exc)
        ok, message = False, f"the server cannot list {where} ({reason})"
    except ValueError:
        ok, message = False, f"the server answered no listing for {where}"
    except (RefusedError, RequestStopped):
        return None  # a refused key is the delivery's alert; a stop is no verdict
    finally:
        client.close()
    before = last(store, server.key)
    changed = before is None or bool(before.get("ok")) != ok
    store.set_meta(meta_key(server.key), json.dumps({"ok": ok, "message": message, "at": time.time()}))
    if changed and not ok:
        log.warning("%s: media server's view of the mount: %s. Fix: %s", server.section, message, FIX)
    elif changed and before is not None:
        log.info("%s: media server's view of the mount: %s again", server.section, message)
    return Verdict(ok, message, changed, server.key)
