"""Before a full walk through an rclone mount: rclone re-reads the whole source first.

A full walk (the first run, the daily verification, the first cycle after
the mount came back or rclone restarted) is the one that must see the Drive
as it is, and the one that would cost one backend listing per folder rclone
has not cached. With ``[mount] rclone_rc`` set, rclone is asked to re-read
the whole source in one recursive refresh (:mod:`graylink.rclone.refresh`)
before the walk lists it; without it, or when that fails, the walk goes on
as before, with one line saying why.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from graylink.config import Config
from graylink.rclone import mountflags
from graylink.store.db import Mark, Store, StoredMark
from graylink.system import fsinfo

log = logging.getLogger(__name__)

RCLONE_FS = "fuse.rclone"
RESTARTED = "rclone-restarted"  # the reason of the whole-source mark after a new rclone mount
META_MOUNT = "rclone_mount_seen"  # the mount (boot, mount id) the last cycle listed
_BOOT_ID = "/proc/sys/kernel/random/boot_id"


def mount_identity(source: str, proc: str = "/proc") -> str | None:
    """This boot, the mount's id and the rclone process serving it (pid and start time).

    The kernel gives a new mount the lowest free id, so a mount stopped and
    started again usually gets its old one back: the serving process's start
    time is what tells a restart, where that process is visible. Read from
    /proc alone (never the mount itself, which may hang)."""
    entry = fsinfo.mount_of(source)
    if entry is None or entry.fs_type != RCLONE_FS:
        return None
    boot = _read(_BOOT_ID)
    processes = sorted(f"{pid}@{_start_time(proc, pid)}" for pid in _serving(entry.mount_point, proc))
    return " ".join([boot, str(entry.mount_id), *processes])


def _serving(mount_point: str, proc: str) -> list[int]:
    """The rclone mount processes whose mount point argument is ``mount_point``.

    Each argument is taken relative to that process's working directory, as
    it was given; none is resolved through the filesystem, where a hung
    mount (anyone's) would hold every cycle."""
    try:
        pids = [int(name) for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        return []
    found = []
    for pid in pids:
        argv = [os.fsdecode(a) for a in _read_bytes(f"{proc}/{pid}/cmdline").split(b"\0") if a]
        if not argv or not os.path.basename(argv[0]).startswith("rclone"):
            continue
        command, words = mountflags.command_words(tuple(argv))
        if command not in mountflags.MOUNT_COMMANDS:
            continue
        try:
            cwd = os.readlink(f"{proc}/{pid}/cwd")
        except OSError:
            cwd = "/"
        if any(os.path.normpath(os.path.join(cwd, word)) == mount_point for word in words):
            found.append(pid)
    return found


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def _start_time(proc: str, pid: int) -> str:
    """Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot."""
    stat = _read(f"{proc}/{pid}/stat")
    fields = stat.rpartition(")")[2].split()  # the name in parentheses may hold spaces
    return fields[19] if len(fields) > 19 else ""


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def mark_restart(config: Config, store: Store) -> None:
    """With the rc set: a mount other than the one the last cycle saw marks the whole source.

    rclone started again has an empty directory cache and missed whatever
    changed while it was down; the full walk after one refresh is cheap and
    sees it. The first look only remembers the mount."""
    if not config.mount.rclone_rc:
        return
    seen = mount_identity(config.paths.source)
    if seen is None:
        return
    before = store.get_meta(META_MOUNT)
    if before == seen:
        return
    with store.atomic():
        if before is not None:
            log.info("the rclone mount is new since the last cycle (rclone restarted): every folder will be verified")
            store.add_marks([Mark(b"", RESTARTED)])
        store.set_meta(META_MOUNT, seen)


def full_walk_coming(marks: list[StoredMark]) -> bool:
    return any(m.path == b"" and m.recursive and not m.indexed for m in marks)


def reread_before_full_walk(
    config: Config,
    marks: list[StoredMark],
    *,
    dry_run: bool,
    should_stop: Callable[[], bool] | None = None,
    note: Callable[[str], None] | None = None,
) -> bool:
    """True when the refresh of marked folders is settled here: a full walk with the rc set.

    After a whole re-read no folder needs one; after a failed one (told in
    one line) or in a dry run (which asks rclone for nothing) refreshing the
    marked folders one by one would only repeat the failure or do the work."""
    if not full_walk_coming(marks):
        return False
    on_rclone = fsinfo.fs_type(config.paths.source) == RCLONE_FS
    if not config.mount.rclone_rc:
        if on_rclone:
            log.info(
                "full walk through rclone's directory cache: [mount] rclone_rc is not set, so rclone is not "
                "asked to re-read the source first (each folder it has not cached costs one backend listing)"
            )
        return False
    if dry_run:
        log.info(
            "dry run: a real run would first ask rclone to re-read the whole source "
            "(vfs/refresh recursive); this one does not, and walks rclone's cache as it is"
        )
        return True
    from graylink.rclone.refresh import refresh_source  # loaded only with an rc to call

    done = refresh_source(config, should_stop=should_stop, note=note)
    if not done.ok and not done.stopped:
        log.error("rclone did not re-read the source before the full walk: %s; the walk goes on without it", done.why)
    return True
