"""Mount health for ``graylink status`` and ``graylink doctor`` (reads only)."""

from __future__ import annotations

import json
from typing import Any

from graylink.checks import N_, Check, said
from graylink.config import Config
from graylink.rclone import mountflags
from graylink.rclone.rc import probe as rc_probe
from graylink.rclone.rc import serving_check as rc_serving_check
from graylink.store.db import Store
from graylink.system import fsinfo
from graylink.triggers.mount import (
    ANCHOR,
    HEALTHY,
    LISTABLE,
    META_DOWN_SINCE,
    META_LAST_FAILURE,
    MOUNTPOINT,
    NOT_EMPTY,
    Health,
    check_health,
    must_be_mountpoint,
)

# ---------------------------------------------------- status and doctor


def mount_status(config: Config, store: Store, *, probe: bool = True) -> dict[str, Any]:
    """Mount health for ``graylink status`` (reads only).

    ``probe`` false (the service runs and checks the mount every check_interval):
    the health it recorded is shown, so that a status read (the page, a
    Prometheus scrape) never waits on a hung mount. A mount that does not answer
    is not touched again to learn its filesystem type: each try would wait out
    its deadline on a thread that then stays blocked.
    """
    source = config.paths.source
    last: Any = None
    raw = store.get_meta(META_LAST_FAILURE)
    if raw:
        try:
            last = json.loads(raw)
        except ValueError:
            last = None
    down = store.get_meta(META_DOWN_SINCE)
    if probe:
        health = check_health(config, store)
    elif down is None:
        health = HEALTHY
    else:
        seen = last if isinstance(last, dict) else {}
        check, message = str(seen.get("check", "")), str(seen.get("message", ""))
        health = Health(False, check, message, dead=check == LISTABLE)
    resolved, entry = fsinfo.locate(source, resolve=not health.dead)
    fstype = entry.fs_type if entry else "unknown"
    if entry is not None:
        mountpoint = entry.mount_point == resolved
    else:
        mountpoint = not health.dead and fsinfo.is_mountpoint(source)
    return {
        "healthy": health.ok,
        "failed_check": health.failed_check,
        "message": health.message,
        "source": source,
        "fs_type": fstype,
        "trusted_mtimes": fsinfo.trusts(fstype, config.scan.trust_dir_mtime),
        "is_mountpoint": mountpoint,
        "must_be_mountpoint": must_be_mountpoint(config, store),
        "down_since": float(down) if down else None,
        "last_failure": last,
    }


_HINTS = {
    LISTABLE: "the mount is dead or hung: restart it (e.g. 'fusermount3 -uz {source}' then your rclone mount "
    "command), or set [mount] remount_command so graylink does it",
    MOUNTPOINT: "the mount is down: start your rclone mount again, or set [mount] remount_command",
    ANCHOR: "create the anchor file in the remote, or fix [mount] anchor; if the mount is down, start it again",
    NOT_EMPTY: "the mount is probably down: start it again; if the library really is empty now, "
    "move the database away so graylink starts over",
}


def health_check(config: Config, store: Store, *, answered: bool = True) -> Check:
    """``answered`` false: the caller's bounded look at the source found no answer (a hung
    mount); judged from that, not by another look that would wait out its deadline again."""
    if answered:
        health = check_health(config, store)
    else:
        message = f"the mount does not answer: listing the source {config.paths.source} timed out"
        health = Health(False, LISTABLE, message, dead=True)
    if health.ok:
        fstype = fsinfo.fs_type(config.paths.source) or said(N_("unknown filesystem"))
        return Check(
            "mount",
            True,
            said(N_("the source %(source)s is healthy (%(kind)s)"), source=config.paths.source, kind=fstype),
        )
    hint = _HINTS.get(health.failed_check, "").format(source=config.paths.source)
    return Check("mount", False, f"{health.failed_check}: {health.message}", hint)


def doctor_checks(config: Config, store: Store, *, answered: bool = True) -> list[Check]:
    """Mount health (fails when unhealthy), the serving rclone's flags (warnings) and its rc."""
    checks = [health_check(config, store, answered=answered)]
    rc_check, version = rc_probe(config) if config.mount.rclone_rc else (None, None)
    source = config.paths.source
    _, entry = fsinfo.locate(source, resolve=answered)
    if entry is not None and entry.fs_type == "fuse.rclone":
        processes = mountflags.rclone_processes_serving(entry.mount_point)
        if processes:
            checks.extend(mountflags.flag_checks(config, processes[0], version))
        else:
            checks.append(
                Check(
                    "rclone flags",
                    True,
                    said(
                        N_(
                            "the rclone process serving %(mount)s is not visible from here (another "
                            "container or user?): its flags were not checked"
                        ),
                        mount=entry.mount_point,
                    ),
                )
            )
    if rc_check is not None:
        checks.append(rc_check)
        if rc_check.ok:
            checks.append(rc_serving_check(config, entry.mount_point if entry is not None else None))
    return checks
