"""What ``graylink init`` finds on this host instead of asking: rclone mounts, media servers, path maps.

- rclone mounts: ``/proc/self/mountinfo`` entries of type ``fuse.rclone``; the
  rclone process serving each (its ``/proc/PID/cmdline``, read as
  :mod:`graylink.rclone.mountflags` reads it) names the remote, the rclone
  config (``--config``) and whether the remote control is on (``--rc``,
  ``--rc-addr``, default ``localhost:5572``).
- Media servers on this host: Emby / Jellyfin answer ``GET /System/Info/Public``
  anonymously (port 8096), Plex answers ``GET /identity`` (port 32400).
- Keys are checked at once with the same checks as ``graylink doctor``, and a
  ``path_map`` is proposed from the server's library folders when the server
  sees the link tree elsewhere (a container).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from graylink.checks import Check
from graylink.config import parse_raw
from graylink.notify.emby import FOLDERS_PATH, SELECTABLE_PATH, auth_headers, detect, info_value, public_info
from graylink.notify.emby_doctor import doctor_checks as emby_doctor
from graylink.notify.emby_doctor import library_locations
from graylink.notify.http import Client, FailedError, RefusedError, TransientError
from graylink.notify.plex import IDENTITY_PATH, sections
from graylink.notify.plex_doctor import doctor_checks as plex_doctor
from graylink.rclone import mountflags
from graylink.system import fsinfo

EMBY_URL = "http://127.0.0.1:8096"
PLEX_URL = "http://127.0.0.1:32400"
PROBE_DEADLINE = 3.0
DEFAULT_RC = "localhost:5572"


@dataclass(frozen=True)
class RcloneMount:
    mount_point: str
    remote: str  # "gdrive:" or "gdrive:Media"; "" when no rclone process could be seen
    rclone_config: str  # the mount's --config, "" for rclone's own search
    rc_url: str  # "" when the remote control is off
    rc_user: str = ""  # the remote control's --rc-user (its password is never read from the process)


def rclone_mounts(mountinfo: str | None = None, proc: str = "/proc") -> list[RcloneMount]:
    """Every rclone mount visible here, with what its process's command line says."""
    text = mountinfo if mountinfo is not None else fsinfo.read_mountinfo()
    found: list[RcloneMount] = []
    for entry in fsinfo.parse_mountinfo(text or ""):
        if entry.fs_type != "fuse.rclone":
            continue
        remote, config, rc, user = entry.source, "", "", ""  # mountinfo's source is the remote for rclone
        for process in mountflags.rclone_processes_serving(entry.mount_point, proc):
            _, words = mountflags.command_words(process.argv)
            remote = words[0] if words else remote
            config = _config_flag(process.argv)
            enabled = process.flag("--rc")
            if enabled is not None and enabled[0] in ("1", "t", "T", "TRUE", "true", "True"):
                addr = (process.flag("--rc-addr") or (DEFAULT_RC, ""))[0]
                rc = "http://" + (("127.0.0.1" + addr) if addr.startswith(":") else addr)
                user = (process.flag("--rc-user") or ("", ""))[0]
            break
        found.append(RcloneMount(entry.mount_point, remote, "" if config == "/dev/null" else config, rc, user))
    return found


def _config_flag(argv: tuple[str, ...]) -> str:
    """``--config X`` / ``--config=X`` of an rclone command line (the last one wins, as in pflag)."""
    found = ""
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--config" and index + 1 < len(argv):
            found = argv[index + 1]
        elif arg.startswith("--config="):
            found = arg.partition("=")[2]
    return found


def is_drive_remote(remote: str, rclone_config: str) -> bool:
    """The remote (through aliases) is a Google Drive remote: the Drive feed can watch it."""
    from graylink.drive.remote import read_remote

    try:
        drive = {"enabled": "yes", "remote": remote, "rclone_config": rclone_config}
        config = parse_raw({"paths": {"source": "/", "target": "/nonexistent"}, "drive": drive})
        read_remote(config.drive)
    except Exception:  # not a Drive remote, or no rclone.conf to tell: the feed is not offered
        return False
    return True


@dataclass(frozen=True)
class Found:
    url: str
    label: str  # "Jellyfin Server 10.10.7 (nas)", "Plex Media Server 1.41"
    kind: str  # emby | jellyfin | plex


def probe_emby(url: str = EMBY_URL) -> Found | None:
    """An Emby or Jellyfin server answering at ``url`` (anonymous; no key needed)."""
    client = Client(url, "", PROBE_DEADLINE)
    try:
        info = public_info(client)
    except (TransientError, FailedError, RefusedError, OSError):
        return None
    finally:
        client.close()
    seen = detect(info)
    product = str(info_value(info, "ProductName") or ("Jellyfin Server" if seen.kind == "jellyfin" else "Emby Server"))
    name = info_value(info, "ServerName") or "unnamed"
    return Found(url, f"{product} {info_value(info, 'Version') or '?'} ({name})", seen.kind)


def probe_plex(url: str = PLEX_URL) -> Found | None:
    client = Client(url, "", PROBE_DEADLINE)
    try:
        doc = client.request("GET", IDENTITY_PATH).json()
    except (TransientError, FailedError, RefusedError, OSError, ValueError):
        return None
    finally:
        client.close()
    container = doc.get("MediaContainer") if isinstance(doc, dict) else None
    if not isinstance(container, dict) or "machineIdentifier" not in container:
        return None
    return Found(url, f"Plex Media Server {container.get('version', '?')}", "plex")


def check_emby(url: str, key: str, source: str, target: str) -> tuple[list[Check], list[str]]:
    """doctor's checks of this server and key, and the server's library folders (for a path_map)."""
    config = parse_raw({"paths": {"source": source, "target": target}, "emby": {"url": url, "api_key": key}})
    checks = emby_doctor(config, deadline=PROBE_DEADLINE * 2)
    if any(c.failed for c in checks):
        return checks, []
    client = Client(url, key, PROBE_DEADLINE * 2)
    try:
        kind = detect(public_info(client)).kind
        path = FOLDERS_PATH if kind == "jellyfin" else SELECTABLE_PATH
        folders = client.request("GET", path, headers=auth_headers(kind, key)).json()
        return checks, library_locations(folders, kind)
    except (TransientError, FailedError, RefusedError, OSError, ValueError):
        return checks, []
    finally:
        client.close()


def check_plex(url: str, token: str, source: str, target: str) -> tuple[list[Check], list[str]]:
    config = parse_raw({"paths": {"source": source, "target": target}, "plex": {"url": url, "token": token}})
    checks = plex_doctor(config, deadline=PROBE_DEADLINE * 2)
    if any(c.failed for c in checks):
        return checks, []
    client = Client(url, token, PROBE_DEADLINE * 2)
    try:
        found = sections(client, token)
        return checks, [loc for section in found for loc in section.locations]
    except (TransientError, FailedError, RefusedError, OSError, ValueError):
        return checks, []
    finally:
        client.close()


def propose_path_map(target: str, source: str, locations: list[str]) -> str:
    """``target=VIEW`` when the server's library folders are the link tree's top folders seen under
    VIEW (a container mounting the tree there); "" when they lie in the tree already or do not match."""
    target = target.rstrip("/") or "/"
    if not locations or any(loc == target or loc.startswith(target + "/") for loc in locations):
        return ""
    try:
        tops = {name for name in os.listdir(source) if not name.startswith(".")}
    except OSError:
        return ""
    parents = {os.path.dirname(loc.rstrip("/")) for loc in locations}
    names = {os.path.basename(loc.rstrip("/")) for loc in locations}
    if len(parents) == 1 and names <= tops:
        return f"{target}={parents.pop()}"
    return ""
