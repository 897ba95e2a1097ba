"""What kind of filesystem holds a path, read from /proc/self/mountinfo.

Directory mtimes are only a reliable change signal on local filesystems; on
an rclone FUSE mount they do not move when files are added (ARCHITECTURE §4).

Resolving a path touches every component of it, the mount point included,
and blocks for as long as a hung FUSE daemon does: it runs under a deadline
(``graylink.system.deadline``) and falls back to the path as written.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from graylink.system import deadline

MOUNTINFO = "/proc/self/mountinfo"
RESOLVE_TIMEOUT = 2.0  # realpath is a few lstat calls, answered from memory: seconds mean a hung mount

# Local filesystems whose directory mtime changes whenever an entry is added,
# removed or renamed.
TRUSTED_FS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "tmpfs", "overlay", "ramfs", "jfs"})

_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class MountEntry:
    mount_point: str
    fs_type: str
    source: str
    mount_id: int = 0  # unique per mount while the system runs: a remount gets a new one


def _unescape(field: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[MountEntry]:
    entries = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split(" ")
        tail = right.split(" ")
        if len(fields) < 5 or len(tail) < 2:
            continue
        mount_id = int(fields[0]) if fields[0].isdigit() else 0
        entries.append(MountEntry(_unescape(fields[4]), tail[0], _unescape(tail[1]), mount_id))
    return entries


def real(path: str, timeout: float = RESOLVE_TIMEOUT) -> str:
    """``os.path.realpath`` under a deadline; the absolute path as written when it hangs."""
    try:
        return deadline.call(lambda: os.path.realpath(path), timeout, f"resolving {path}")
    except deadline.NoAnswer:
        return os.path.normpath(os.path.abspath(path))


def read_mountinfo() -> str | None:
    try:
        with open(MOUNTINFO, encoding="utf-8", errors="surrogateescape") as handle:
            return handle.read()
    except OSError:
        return None


def mount_of(path: str, mountinfo: str | None = None) -> MountEntry | None:
    """The deepest mount holding ``path`` (the last one mounted wins on ties)."""
    if mountinfo is None:
        mountinfo = read_mountinfo()
        if mountinfo is None:
            return None
    return _deepest(real(path), mountinfo)


def locate(path: str, *, resolve: bool = True) -> tuple[str, MountEntry | None]:
    """``path`` resolved and the deepest mount holding it, resolving at most once.

    ``resolve`` false: the path as written (for a mount known not to answer,
    where each resolve would wait out its deadline and leave a thread behind).
    """
    resolved = real(path) if resolve else os.path.normpath(os.path.abspath(path))
    mountinfo = read_mountinfo()
    return resolved, (_deepest(resolved, mountinfo) if mountinfo is not None else None)


def _deepest(resolved: str, mountinfo: str) -> MountEntry | None:
    best: MountEntry | None = None
    for entry in parse_mountinfo(mountinfo):
        mp = entry.mount_point
        inside = resolved == mp or mp == "/" or resolved.startswith(mp.rstrip("/") + "/")
        if inside and (best is None or len(mp) >= len(best.mount_point)):
            best = entry
    return best


def fs_type(path: str, mountinfo: str | None = None) -> str:
    entry = mount_of(path, mountinfo)
    return entry.fs_type if entry else "unknown"


def mtime_trusted(path: str, setting: str = "auto", mountinfo: str | None = None) -> bool:
    """Whether an unchanged directory mtime proves an unchanged listing."""
    if setting in ("yes", "no"):
        return setting == "yes"
    return fs_type(path, mountinfo) in TRUSTED_FS


def trusts(fstype: str, setting: str = "auto") -> bool:
    """:func:`mtime_trusted` for a filesystem type already known."""
    return setting == "yes" if setting in ("yes", "no") else fstype in TRUSTED_FS


def is_mountpoint(path: str, mountinfo: str | None = None) -> bool:
    """Whether ``path`` itself is a mount point, a dead FUSE mount included.

    ``os.path.ismount`` stats the path, which fails with ENOTCONN on a dead
    FUSE mount and so calls it "not a mount point": the one case where the
    answer matters most (it must be lazily unmounted before a remount).
    """
    entry = mount_of(path, mountinfo)
    if entry is not None:
        return entry.mount_point == real(path)
    try:
        return deadline.call(lambda: os.path.ismount(path), RESOLVE_TIMEOUT, f"looking at {path}")
    except (OSError, deadline.NoAnswer):
        return False


def describe(path: str) -> str:
    """``tmpfs at /data``: the filesystem that holds ``path``, for one line of error."""
    entry = mount_of(path)
    if entry is None:
        return f"the one holding {path}"
    return f"{entry.fs_type} at {entry.mount_point}"
