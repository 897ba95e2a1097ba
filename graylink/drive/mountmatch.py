"""doctor: the remote the rclone mount serves is the one the Drive feed watches.

The mount's remote comes from the command line of the rclone process serving
the source (``/proc/PID/cmdline``: ``rclone mount REMOTE:PATH MOUNTPOINT``, with
``--drive-root-folder-id`` / ``--drive-team-drive``, which override the
remote's options as rclone's ``fs/configmap.go`` orders them); a source that is
a folder inside the mount adds its path. Both sides are resolved the same way
(aliases, connection strings, a crypt layer) and compared.
"""

from __future__ import annotations

import os
from dataclasses import replace

from graylink.checks import N_, Check, said
from graylink.config import Config
from graylink.drive.remote import Remote, read_remote
from graylink.errors import ConfigError
from graylink.rclone import fspath, mountflags
from graylink.system import fsinfo

NAME = "drive mount remote"


def _key(remote: Remote) -> tuple[str, str, str, str, str]:
    crypt = remote.crypt.path if remote.crypt is not None else "-"
    return remote.name, remote.path, remote.root_folder_id, remote.team_drive, crypt


def _describe(remote: Remote) -> str:
    where = f"[{remote.name}]" + (f" path {remote.path!r}" if remote.path else " root")
    for option in ("root_folder_id", "team_drive"):
        value = getattr(remote, option)
        if value:
            where += f" {option}={value}"
    if remote.crypt is not None:
        where = f"crypt {remote.crypt.spec}{remote.crypt.path} over {where}"
    return where


def _with_prefix(spec: str, prefix: str) -> str:
    parsed = fspath.parse(spec)
    if not parsed.name or not prefix:
        return spec
    return spec.rstrip("/") + ("/" if spec.rstrip("/")[-1:] != ":" else "") + prefix


def compare(config: Config, ours: Remote, argv: tuple[str, ...], environ: dict[str, str], prefix: str) -> Check:
    """The check for one rclone command line serving the source (``prefix``: the source inside the mount)."""
    command, words = mountflags.command_words(argv)
    if command not in mountflags.MOUNT_COMMANDS or not words:
        return Check(NAME, True, said(N_("the rclone process's remote could not be read; not compared")))
    served = words[0]
    fix = said(
        N_("set [drive] remote to the remote the mount serves (%(remote)s), or mount it"),
        remote=served + ("/" + prefix if prefix else ""),
    )
    try:
        parsed = fspath.parse(served)
    except fspath.RemotePathError:
        parsed = fspath.RemotePath("", served)
    if not parsed.name:
        local = said(N_("the mount serves the local path %(path)s, not a Drive remote"), path=served)
        return Check(NAME, False, local, fix)
    try:
        theirs = read_remote(replace(config.drive, remote=_with_prefix(served, prefix)))
    except ConfigError as exc:
        unread = said(
            N_("the mount serves %(remote)s, which graylink cannot read: %(reason)s"), remote=served, reason=str(exc)
        )
        return Check(NAME, False, unread, fix)
    process = mountflags.RcloneProcess(0, argv, environ)
    root = process.flag("--drive-root-folder-id")
    team = process.flag("--drive-team-drive")
    theirs = replace(
        theirs,
        root_folder_id=root[0] if root and root[0] else theirs.root_folder_id,
        team_drive=team[0] if team and team[0] else theirs.team_drive,
    )
    if config.drive.folder_id:
        unchecked = said(
            N_("the mount serves %(remote)s; [drive] folder_id is set, so not compared"), remote=_describe(theirs)
        )
        return Check(NAME, True, unchecked)
    if _key(theirs) != _key(ours):
        other = said(
            N_("the mount serves %(remote)s but the Drive feed watches %(ours)s"),
            remote=_describe(theirs),
            ours=_describe(ours),
        )
        return Check(NAME, False, other, fix)
    same = said(N_("the mount serves %(remote)s, the remote the Drive feed watches"), remote=_describe(theirs))
    return Check(NAME, True, same)


def mount_check(config: Config, ours: Remote, proc: str = "/proc") -> Check | None:
    """Compare with the rclone process serving the source; None when there is none to read."""
    entry = fsinfo.mount_of(config.paths.source)
    if entry is None or not entry.fs_type.startswith("fuse.rclone"):
        return None
    processes = mountflags.rclone_processes_serving(entry.mount_point, proc)
    if not processes:
        return None
    rel = os.path.relpath(os.path.realpath(config.paths.source), entry.mount_point)
    prefix = "" if rel == "." else rel
    return compare(config, ours, processes[0].argv, dict(processes[0].environ), prefix)
