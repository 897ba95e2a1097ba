"""rclone's remote control: ``vfs/refresh`` of the folders a trigger marked.

With ``[mount] rclone_rc`` set, folders that the Drive feed or a webhook
marked are re-read by rclone before they are listed, so a new file shows at
once instead of after ``--dir-cache-time``. Every call has a deadline for the
whole request.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any
from urllib.parse import urlsplit

from graylink import story
from graylink.checks import N_, Check, said
from graylink.config import Config
from graylink.rclone import mountflags
from graylink.rclone.vfs import MANY_VFS, serving_fs
from graylink.store.db import StoredMark
from graylink.system import fsinfo
from graylink.words import count

log = logging.getLogger(__name__)

RC_DEADLINE = 120.0  # seconds for a whole rc call: a recursive refresh lists through the Drive API
RC_NOOP_DEADLINE = 10.0  # doctor's probes: rclone answers them at once when it answers at all
RC_CHECK = "rclone rc"
SERVES_CHECK = "rclone rc source"


# Marks that say "the Drive changed here" (the feed, the web triggers, Sonarr / Radarr,
# and --path, where the user says so): rclone's directory cache may not show the change
# yet, so those folders are re-read first.
REMOTE_REASONS = frozenset({"drive", "api", "webhook", "sonarr", "radarr", "path"})


def refresh_marked(config: Config, marks: list[StoredMark], reasons: frozenset[str] = REMOTE_REASONS) -> bool:
    """vfs/refresh the folders that the Drive feed or a webhook marked, before they are re-listed.

    A whole-root mark (an activity that could not be resolved) refreshes the
    root alone: a recursive refresh of a whole Drive would list every folder
    through the API, which the full walk does anyway.
    """
    if not config.mount.rclone_rc:
        return True
    wanted = [m for m in marks if m.reason in reasons and not m.indexed]
    flat = sorted({m.path for m in wanted if not m.recursive or not m.path})
    deep = sorted({m.path for m in wanted if m.recursive and m.path})
    ok = True
    if flat:
        ok = vfs_refresh(config, flat) and ok
    if deep:
        ok = vfs_refresh(config, deep, recursive=True) and ok
    return ok


# ------------------------------------------------------------- rclone rc


def vfs_path_prefix(source: str) -> str:
    """Where the source sits inside its mount: rclone rc paths are relative to the mount root."""
    entry = fsinfo.mount_of(source)
    if entry is None:
        return ""
    rel = os.path.relpath(fsinfo.real(source), entry.mount_point)
    return "" if rel == "." else rel


def rc_endpoint(config: Config) -> str:
    # Only scheme, host and port reach a log line: never userinfo.
    parts = urlsplit(config.mount.rclone_rc)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"


class RcError(Exception):
    """A failed call to rclone's remote control (message carries no secret)."""


class RcAuthError(RcError):
    """rclone refused the call: 401 (wrong or missing user and password) or 403 (no rc auth set up)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# rclone 1.74 flipped the default (fs/rc/rcserver/rcserver.go, "rc: flip auth default"): a call not
# marked NoAuth (vfs/refresh among them; rc/noop, core/version and vfs/list are) answers 403 unless
# the server has --rc-user / --rc-htpasswd or --rc-no-auth. A server with a user answers 401 to any
# request without the right user and password, before it looks at the call.
NO_AUTH_FIX = (
    "add --rc-user/--rc-pass to the mount and set [mount] rclone_rc_user / rclone_rc_pass to them "
    "(docs/rclone.md); --rc-no-auth also works, but lets any local program call every rc command"
)


def refusal(config: Config, method: str, status: int) -> str:
    """What a 401 or 403 from rclone's rc means, and the fix, in one line."""
    where = f"rclone rc at {rc_endpoint(config)} refused {method} ({status})"
    if status == 403:
        return (
            f"{where}: rclone has no rc auth set up, and rclone 1.74 and later refuse vfs/refresh without it: "
            + NO_AUTH_FIX
        )
    if not config.mount.rclone_rc_user:
        return (
            f"{where}: rclone asks for a user and password (--rc-user / --rc-htpasswd) and [mount] "
            "rclone_rc_user is empty: set rclone_rc_user / rclone_rc_pass to the mount's --rc-user / --rc-pass"
        )
    return (
        f"{where}: wrong user or password: set [mount] rclone_rc_user / rclone_rc_pass to the mount's "
        "--rc-user / --rc-pass"
    )


def parse_version(answer: dict[str, Any]) -> tuple[int, int, int] | None:
    """core/version's answer → (major, minor, patch); None when it is not one."""
    parts = answer.get("decomposed")
    if isinstance(parts, list) and len(parts) >= 3 and all(isinstance(p, int) for p in parts[:3]):
        return (parts[0], parts[1], parts[2])
    found = re.match(r"v?(\d+)\.(\d+)\.(\d+)", str(answer.get("version", "")))
    return (int(found.group(1)), int(found.group(2)), int(found.group(3))) if found else None


def version_text(version: tuple[int, int, int] | None) -> str:
    return "rclone" if version is None else f"rclone {version[0]}.{version[1]}.{version[2]}"


def probe(config: Config) -> tuple[Check, tuple[int, int, int] | None]:
    """doctor's check of rclone's rc: reachable, its version, and a call gated as vfs/refresh is.

    rc/noop needs no auth in any version, so it cannot show what vfs/refresh
    will meet. From 1.74 on rc/noopauth is gated exactly as vfs/refresh is
    (neither is NoAuth); before 1.74 vfs/refresh needed no auth while
    rc/noopauth did (AuthRequired), so there rc/noop is the fair probe.
    """
    version: tuple[int, int, int] | None = None
    try:
        version = parse_version(rc_call(config, "core/version", {}, deadline=RC_NOOP_DEADLINE))
        method = "rc/noopauth" if version is not None and version[:2] >= mountflags.AUTH_SINCE else "rc/noop"
        rc_call(config, method, {}, deadline=RC_NOOP_DEADLINE)
    except RcAuthError as exc:
        return Check(RC_CHECK, False, str(exc)), version
    except RcError as exc:
        hint = said(N_("start the mount with --rc --rc-addr matching [mount] rclone_rc, or unset rclone_rc"))
        return Check(RC_CHECK, False, str(exc), hint), version
    answers = said(
        N_("%(version)s answers at %(url)s (%(method)s)"),
        version=version_text(version),
        url=rc_endpoint(config),
        method=method,
    )
    return Check(RC_CHECK, True, answers), version


def rc_call(config: Config, method: str, params: dict[str, Any], *, deadline: float = RC_DEADLINE) -> dict[str, Any]:
    # Only when rclone's rc is used: keeps status and --help fast.
    import requests

    from graylink.system.http_deadline import DeadlineSession

    url = f"{config.mount.rclone_rc}/{method}"
    story.request("POST", url, ", ".join(f"{k}={v}" for k, v in params.items()))
    auth = (config.mount.rclone_rc_user, config.mount.rclone_rc_pass) if config.mount.rclone_rc_user else None
    try:
        with DeadlineSession(deadline) as session:  # the whole call ends by the deadline, however rclone answers
            response = session.post(url, json=params, auth=auth, timeout=deadline)
    except requests.Timeout:
        raise RcError(f"rclone rc at {rc_endpoint(config)} did not answer {method} in time") from None
    except requests.RequestException as exc:
        kind = type(exc).__name__
        raise RcError(f"cannot reach rclone rc at {rc_endpoint(config)} ({kind})") from None
    if response.status_code in (401, 403):
        raise RcAuthError(response.status_code, refusal(config, method, response.status_code))
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict):
        detail = body.get("error") if isinstance(body, dict) else response.text[:200].strip()
        raise RcError(f"rclone rc {method} answered {response.status_code}: {detail}")
    return body


def _refresh_once(
    config: Config, dirs: list[str], recursive: bool, deadline: float = RC_DEADLINE, fs: str | None = None
) -> dict[str, str]:
    """One vfs/refresh call; rclone's answer per directory ("OK" or an error)."""
    params: dict[str, Any] = {"fs": fs} if fs else {}
    if dirs != [""]:  # the root is refreshed by naming no dir at all
        for i, path in enumerate(dirs):
            params["dir" if i == 0 else f"dir{i + 1}"] = path
    if recursive:
        params["recursive"] = "true"  # rclone 1.60 accepts only the string form
    result = rc_call(config, "vfs/refresh", params, deadline=deadline).get("result", {})
    return {str(k): str(v) for k, v in result.items()} if isinstance(result, dict) else {}


# rclone's answers for a folder its VFS cannot find: one it never knew ("file does not
# exist", vfs.Stat) and one it knew but the remote no longer has ("directory not found",
# fs.ErrorDirNotFound from the backend's listing: a folder deleted on the Drive).
NOT_FOUND = ("does not exist", "directory not found")


def vfs_refresh(config: Config, dirs: list[bytes], recursive: bool = False, budget: float = RC_DEADLINE) -> bool:
    """Ask rclone to re-read ``dirs`` (relative to the source) now.

    A folder the VFS cannot find (new on the Drive, or deleted from it) is
    answered "not found"; its parent is refreshed instead, **never
    recursively** and never above the source: that re-reads the parent's
    listing alone, which shows the new folder or drops the gone one. (Climbing
    with ``recursive`` once made a deleted movie folder refresh its whole top
    folder, and a wrong rc port the remote's root: thousands of Drive calls.)
    All rounds together end within ``budget`` seconds. Failures are logged and
    reported as False: the walk goes on and sees the change once rclone's
    directory cache expires.
    """
    if not config.mount.rclone_rc or not dirs:
        return bool(not dirs)
    prefix = vfs_path_prefix(config.paths.source)
    pending = {_vfs_dir(prefix, d): recursive for d in dirs}
    tried: set[str] = set()
    ok = True
    # Each round moves missing folders one level up, so a path of depth N
    # needs at most N+1 rounds.
    end = time.monotonic() + budget
    fs: str | None = None
    while pending:
        left = end - time.monotonic()
        if left < 1.0:
            log.error("vfs/refresh: rclone used the %gs this run gives it; the walk goes on without it", budget)
            return False
        try:
            answers = _refresh_round(config, pending, end, fs)
        except RcError as exc:
            if fs is None and MANY_VFS in str(exc):
                fs = _serving_fs(config)
                if fs is not None:
                    continue  # the same round again, naming the source's VFS
            log.error("vfs/refresh failed: %s", exc)
            return False
        tried.update(pending)
        missing: set[str] = set()
        for path, answer in answers.items():
            if answer == "OK":
                log.debug("vfs/refresh %s: OK", path or "/")
            elif any(text in answer for text in NOT_FOUND) and _inside_source(path, prefix):
                log.debug("vfs/refresh %s: %s; its parent is re-read instead", path or "/", answer)
                missing.add(os.path.dirname(path))
            else:
                log.error("vfs/refresh %s: %s", path or "/", answer)
                ok = False
        pending = {path: False for path in sorted(missing - tried)}
    if ok:
        log.info("asked rclone to refresh %s", count(len(dirs), "folder"))
    return ok


def _inside_source(path: str, prefix: str) -> bool:
    """Whether ``path`` (relative to the mount root) lies below the source, so that its parent is still in it."""
    return bool(path) and path != prefix and (not prefix or path.startswith(prefix + "/"))


def _refresh_round(config: Config, pending: dict[str, bool], end: float, fs: str | None) -> dict[str, str]:
    """One vfs/refresh call per kind (recursive or not); the root alone, as it is named by no dir."""
    answers: dict[str, str] = {}
    for recursive in (False, True):
        group = sorted(path for path, deep in pending.items() if deep is recursive)
        if "" in group:
            root = _refresh_once(config, [""], recursive, max(1.0, end - time.monotonic()), fs)
            answers[""] = root.get("", "OK")
            group.remove("")
        if group:
            answers.update(_refresh_once(config, group, recursive, max(1.0, end - time.monotonic()), fs))
    return answers


def _serving_fs(config: Config) -> str | None:
    """The VFS of the source's mount when one rclone serves several; logged when it cannot be told."""
    entry = fsinfo.mount_of(config.paths.source)
    mount_point = entry.mount_point if entry is not None else config.paths.source
    try:
        fs = serving_fs(lambda method, params: rc_call(config, method, params), mount_point)
    except RcError as exc:
        log.error("vfs/refresh: rclone serves several VFSes and vfs/list failed: %s", exc)
        return None
    if fs is None:
        log.error(
            "vfs/refresh: rclone serves several VFSes and none is known to serve %s "
            "(give each mount its own rclone process, or its own --rc-addr)",
            mount_point,
        )
    else:
        log.info("vfs/refresh: rclone serves several VFSes; %s is the one at %s", fs, mount_point)
    return fs


def _vfs_dir(prefix: str, rel: bytes) -> str:
    path = os.fsdecode(rel).strip("/")
    return f"{prefix}/{path}".strip("/") if prefix else path


def serving_check(config: Config, mount_point: str | None = None) -> Check:
    """doctor's and the service start's look: does the configured rc serve the mount holding the source?

    A wrong ``rclone_rc`` port (another rclone, another remote) refreshes
    folders of a remote that is not the source's: each call then changes
    nothing here, and its "not found" answers used to climb to that remote's
    root. rclone names its VFSes in ``vfs/list`` (no auth needed); the
    source's is found by ``mount/listmounts`` or the mount's command line.
    """
    if mount_point is None:
        entry = fsinfo.mount_of(config.paths.source)
        mount_point = entry.mount_point if entry is not None else config.paths.source

    def call(method: str, params: dict[str, Any]) -> dict[str, Any]:
        return rc_call(config, method, params, deadline=RC_NOOP_DEADLINE)

    try:
        names = call("vfs/list", {}).get("vfses") or []
        fs = serving_fs(call, mount_point)
    except RcError as exc:
        hint = said(N_("start the mount with --rc --rc-addr matching [mount] rclone_rc"))
        return Check(SERVES_CHECK, False, str(exc), hint)
    where = rc_endpoint(config)
    if not names:
        return Check(
            SERVES_CHECK,
            False,
            said(
                N_("rclone rc at %(url)s serves no mount, so it cannot refresh %(mount)s"), url=where, mount=mount_point
            ),
            said(N_("set [mount] rclone_rc to the --rc-addr of the rclone that mounts the source")),
        )
    if fs is not None and fs in names:
        serves = said(
            N_("rclone rc at %(url)s serves the mount at %(mount)s (%(fs)s)"), url=where, mount=mount_point, fs=fs
        )
        return Check(SERVES_CHECK, True, serves)
    served = ", ".join(str(n) for n in names[:5])
    if fs is not None:
        return Check(
            SERVES_CHECK,
            False,
            said(
                N_("rclone rc at %(url)s serves %(served)s, not %(fs)s mounted at %(mount)s"),
                url=where,
                served=served,
                fs=fs,
                mount=mount_point,
            ),
            said(N_("set [mount] rclone_rc to the --rc-addr of the rclone that mounts the source")),
        )
    return Check(
        SERVES_CHECK,
        False,
        said(
            N_("rclone rc at %(url)s serves %(served)s; which rclone mounts %(mount)s is not visible from here"),
            url=where,
            served=served,
            mount=mount_point,
        ),
        said(N_("make sure [mount] rclone_rc is the --rc-addr of the rclone that mounts the source")),
        warn=True,
    )
