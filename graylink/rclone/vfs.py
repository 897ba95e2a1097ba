"""Which of an rclone process's VFSes serves the source, for rc calls that need ``fs``.

One rclone process may serve several mounts (``rclone rcd`` with
``mount/mount``, or a mount that was given more through rc). Then
``vfs/refresh`` without ``fs`` answers "more than one VFS active - need "fs"
parameter" (rclone ``vfs/rc.go`` ``getVFS``). ``vfs/list`` names the VFSes
(``fs.ConfigString`` of each remote); ``mount/listmounts`` maps the mounts made
through rc to theirs (``cmd/mountlib/rc.go``); a mount started on the command
line is found by its remote argument in ``/proc/PID/cmdline``, which rclone
maps to the same name itself (``fs/cache`` ``Canonicalize``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from graylink.rclone import mountflags

MANY_VFS = "more than one VFS active"

Call = Callable[[str, dict[str, Any]], dict[str, Any]]


def _names(call: Call) -> list[str]:
    found = call("vfs/list", {}).get("vfses") or []
    return [str(n) for n in found] if isinstance(found, list) else []


def _from_rc_mounts(call: Call, mount_point: str) -> str | None:
    try:
        mounts = call("mount/listmounts", {}).get("mountPoints") or []
    except Exception:  # an rclone without mount support (or older): the command line tells
        return None
    for entry in mounts if isinstance(mounts, list) else []:
        if isinstance(entry, dict) and os.path.realpath(str(entry.get("MountPoint", ""))) == mount_point:
            return str(entry.get("Fs", "")) or None
    return None


def _from_command_line(mount_point: str, proc: str) -> str | None:
    for process in mountflags.rclone_processes_serving(mount_point, proc):
        command, words = mountflags.command_words(process.argv)
        if command in mountflags.MOUNT_COMMANDS and words:
            return words[0]
    return None


def serving_fs(call: Call, mount_point: str, proc: str = "/proc") -> str | None:
    """The ``fs`` name of the VFS behind ``mount_point``, None when rclone's answers do not tell."""
    mount_point = os.path.realpath(mount_point)
    names = _names(call)
    found = _from_rc_mounts(call, mount_point)
    if found is not None and found in names:
        return found
    remote = _from_command_line(mount_point, proc)
    if remote is None:
        return None
    local = os.path.abspath(remote) if ":" not in remote else None
    for candidate in (remote, remote.rstrip("/"), local):
        if candidate in names:
            return candidate
    return remote  # rclone maps the name the mount was started with to its VFS
