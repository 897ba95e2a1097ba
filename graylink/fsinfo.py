"""Which filesystem holds a path, read from ``/proc/self/mountinfo``.

Nothing here touches the path itself beyond resolving it, because the path may
sit on a dead FUSE mount where every ``stat`` fails with ENOTCONN or hangs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

MOUNTINFO = "/proc/self/mountinfo"

# Filesystems whose directory mtimes do not reliably move when an entry is
# added behind our back (ARCHITECTURE §4): FUSE remotes and network shares.
# ``fuseblk`` is a local block device driven through FUSE (ntfs-3g, exfat):
# its mtimes are kept like any local disk's.
_UNTRUSTED_EXACT = frozenset(
    {
        "fuse", "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs",
        "lustre", "gpfs", "davfs", "ncpfs", "coda", "virtiofs", "vboxsf", "prl_fs", "vmhgfs",
    }
)  # fmt: skip

_OCTAL_RE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class MountEntry:
    mount_point: str
    fs_type: str
    device: str  # the mount source, e.g. "gdrive:" for rclone


def _unescape(field: str) -> str:
    # The kernel writes space, tab, newline and backslash as \ooo octal.
    return _OCTAL_RE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """The mounts of a mountinfo text, in the kernel's order (later mounts stack on top)."""
    entries: list[MountEntry] = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)
            mount_point = _unescape(fields[4])
            fs_type = fields[sep + 1]
            device = _unescape(fields[sep + 2]) if len(fields) > sep + 2 else ""
        except (ValueError, IndexError):
            continue
        entries.append(MountEntry(mount_point, fs_type, device))
    return entries


def read_mounts(mountinfo: str = MOUNTINFO) -> list[MountEntry]:
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as handle:
            return parse_mountinfo(handle.read())
    except OSError:
        return []


def _resolve(path: str) -> str:
    # Non-strict realpath swallows ENOTCONN from a dead mount point, which is
    # exactly the case where we still need to know which mount it was.
    return os.path.realpath(os.path.abspath(path))


def _contains(mount_point: str, path: str) -> bool:
    if mount_point == "/":
        return True
    return path == mount_point or path.startswith(mount_point.rstrip("/") + "/")


def mount_of(path: str, mounts: list[MountEntry] | None = None) -> MountEntry | None:
    """The deepest mount holding ``path`` (the topmost one when mounts are stacked)."""
    resolved = _resolve(path)
    best: MountEntry | None = None
    for entry in read_mounts() if mounts is None else mounts:
        if _contains(entry.mount_point, resolved) and (
            best is None or len(entry.mount_point) >= len(best.mount_point)
        ):
            best = entry
    return best


def fs_type(path: str) -> str:
    """The filesystem type holding ``path`` (``ext4``, ``fuse.rclone``, …), "" when unknown."""
    entry = mount_of(path)
    return entry.fs_type if entry else ""


def is_mountpoint(path: str) -> bool:
    """Whether ``path`` itself is a mount point, even a dead one."""
    entry = mount_of(path)
    return entry is not None and entry.mount_point == _resolve(path)


def is_trusted(fstype: str) -> bool:
    """Whether directory mtimes on ``fstype`` move when entries are added."""
    if not fstype:
        return True  # no mountinfo (not Linux): assume a local disk
    return not (fstype in _UNTRUSTED_EXACT or fstype.startswith(("fuse.", "nfs")))
