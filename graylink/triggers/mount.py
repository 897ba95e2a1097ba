"""Mount health, remount, and rclone's remote control.

A dropped rclone mount looks like an empty folder (after ``fusermount -u``) or
fails with ENOTCONN (the rclone process died), and a tool that believes it
prunes the whole library. Health is therefore checked before every reconcile,
and an unhealthy source withholds every prune (ARCHITECTURE §4).
"""

from __future__ import annotations

import errno
import logging
import os
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from graylink.config import Config
from graylink.links import ownership
from graylink.store.db import Mark, Store
from graylink.system import deadline, fsinfo
from graylink.triggers.mount_record import META_DOWN_SINCE as META_DOWN_SINCE
from graylink.triggers.mount_record import META_LAST_FAILURE as META_LAST_FAILURE
from graylink.triggers.mount_record import Health as Health
from graylink.triggers.mount_record import outage, tell_failure, tell_recovery
from graylink.triggers.mount_record import record_health as record_health

log = logging.getLogger(__name__)

LIST_TIMEOUT = 10.0  # a hung FUSE mount must not block a cycle forever

# Check names, as reported in the one ERROR line and in status/doctor.
LISTABLE = "source-listable"
MOUNTPOINT = "source-mountpoint"
ANCHOR = "anchor"
NOT_EMPTY = "source-not-empty"

# DB meta keys (the drop itself is kept by mount_record).
META_WAS_MOUNTPOINT = ownership.META_WAS_MOUNTPOINT

_DEAD_ERRNOS = {errno.ENOTCONN, errno.EIO, errno.ESTALE, errno.ECONNABORTED}

StopFn = Callable[[], bool]


HEALTHY = Health(ok=True)
STOPPED = Health(False, "stopped", "stopped on request before the source answered")


# ------------------------------------------------------------------ health


@dataclass(frozen=True)
class _Probe:
    """What one look at the source found (taken off the caller's thread)."""

    error: OSError | None = None
    has_entries: bool = False
    anchor_found: bool = True


def _probe(source: str, anchor: str) -> _Probe:
    try:
        with os.scandir(source) as entries:
            has_entries = next(entries, None) is not None
    except OSError as exc:
        return _Probe(error=exc)
    anchor_found = True
    if anchor:
        try:
            os.stat(os.path.join(source, anchor))
        except FileNotFoundError:
            anchor_found = False
        except OSError as exc:
            return _Probe(error=exc)
    return _Probe(has_entries=has_entries, anchor_found=anchor_found)


def _probe_with_timeout(source: str, anchor: str, timeout: float, should_stop: StopFn | None = None) -> _Probe | None:
    """``_probe`` under a deadline; None when it did not answer in time (or a stop came).

    A thread blocked in the kernel on a hung FUSE mount cannot be cancelled;
    being a daemon thread it at least does not keep the process alive.
    """
    try:
        return deadline.call(lambda: _probe(source, anchor), timeout, "mount-probe", should_stop)
    except deadline.NoAnswer:
        return None


def _index_has_files(store: Store) -> bool:
    return store.execute("SELECT 1 FROM file LIMIT 1").fetchone() is not None


def must_be_mountpoint(config: Config, store: Store) -> bool:
    if config.mount.require_mountpoint:
        return True
    # What was remembered is the recorded source's: a rebase onto another source judges it afresh.
    return ownership.is_recorded_source(config, store) and store.get_meta(META_WAS_MOUNTPOINT) == "1"


def check_health(
    config: Config, store: Store, *, timeout: float = LIST_TIMEOUT, should_stop: StopFn | None = None
) -> Health:
    """Whether the source can be trusted to show the library as it is."""
    source = config.paths.source
    anchor = config.mount.anchor
    probe = _probe_with_timeout(source, anchor, timeout, should_stop)
    if probe is None and should_stop is not None and should_stop():
        return STOPPED
    if probe is None:
        message = f"the mount does not answer: listing the source {source} took more than {timeout:g}s"
        return Health(False, LISTABLE, message, dead=True)
    if probe.error is not None:
        exc = probe.error
        reason = exc.strerror or str(exc)
        if isinstance(exc, FileNotFoundError):
            return Health(False, LISTABLE, f"the source {source} does not exist")
        dead = exc.errno in _DEAD_ERRNOS
        return Health(False, LISTABLE, f"cannot list the source {source}: {reason}", dead=dead)
    if must_be_mountpoint(config, store) and not fsinfo.is_mountpoint(source):
        why = (
            "[mount] require_mountpoint is set"
            if config.mount.require_mountpoint
            else ("it was one when graylink first indexed it")
        )
        return Health(False, MOUNTPOINT, f"the source {source} is not a mount point ({why})")
    if not probe.anchor_found:
        return Health(False, ANCHOR, f"the anchor file {anchor} is missing from the source {source}")
    if not probe.has_entries and _index_has_files(store):
        return Health(False, NOT_EMPTY, f"the source {source} is empty but the index holds files")
    return HEALTHY


def note_first_index(config: Config, store: Store, should_stop: StopFn | None = None) -> None:
    """Remember, once, whether the source is a mount point, so that a later
    unmount (which leaves an ordinary empty folder) is seen as a drop.

    Only a source that shows content counts: a first run against a mount that
    is already down must not teach graylink that the folder is a plain one.
    """
    if store.get_meta(META_WAS_MOUNTPOINT) is not None or store.readonly:
        return
    source = config.paths.source

    def shows_content() -> bool:
        with os.scandir(source) as entries:
            return next(entries, None) is not None

    try:
        # A stop request ends the wait: SIGTERM while the mount froze right after its check.
        if not deadline.call(shows_content, LIST_TIMEOUT, "mount-probe", should_stop):
            return
    except (OSError, deadline.NoAnswer):
        return
    store.set_meta(META_WAS_MOUNTPOINT, "1" if fsinfo.is_mountpoint(config.paths.source) else "0")


# ------------------------------------------------------------------ remount


def _lazy_unmount(path: str) -> None:
    for tool in ("fusermount3", "fusermount", "umount"):
        argv = [tool, "-uz", path] if tool != "umount" else [tool, "-l", path]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        except FileNotFoundError:
            continue
        except subprocess.TimeoutExpired:
            log.error("%s did not finish unmounting %s within 30s", tool, path)
            return
        if done.returncode == 0:
            log.info("lazily unmounted the dead mount at %s", path)
        else:
            log.error("%s could not unmount %s: %s", tool, path, _last_line(done.stderr))
        return
    log.error("no fusermount3, fusermount or umount found to unmount %s", path)


def _mount_to_detach(source: str) -> str:
    """The mount point to lazily unmount for a dead source: the source itself when
    it is a mount point, else the FUSE mount holding it (never a local disk)."""
    entry = fsinfo.mount_of(source)
    if entry is None or entry.mount_point == "/":
        return ""
    if entry.mount_point == fsinfo.real(source) or entry.fs_type.startswith("fuse"):
        return entry.mount_point
    return ""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def run_remount_command(config: Config) -> bool:
    """Run ``[mount] remount_command`` (argv, no shell); True when it exited 0."""
    command = config.mount.remount_command
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        log.error("[mount] remount_command cannot be split into arguments: %s", exc)
        return False
    if not argv:
        return False
    program = os.path.basename(argv[0])
    timeout = config.mount.remount_timeout
    # Output goes to a file, not a pipe: a command that daemonizes (rclone
    # --daemon) leaves a child holding the pipe, and we would wait for it.
    # A new session keeps that child alive when graylink is interrupted.
    with tempfile.TemporaryFile(mode="w+") as output:
        try:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                start_new_session=True,
                check=False,
            )
        except FileNotFoundError:
            log.error("remount command not found: %s", argv[0])
            return False
        except PermissionError:
            log.error("remount command is not executable: %s", argv[0])
            return False
        except subprocess.TimeoutExpired:
            log.error(
                "remount command (%s) did not finish within %gs; a command that stays in the foreground "
                "needs --daemon or a service manager (see docs/rclone.md)",
                program,
                timeout,
            )
            return False
        output.seek(0)
        text = output.read()
    if done.returncode != 0:
        log.error("remount command (%s) failed with exit code %d: %s", program, done.returncode, _last_line(text))
        return False
    log.info("remount command (%s) finished", program)
    return True


def wait_for_health(
    config: Config,
    store: Store,
    wait: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    should_stop: StopFn | None = None,
) -> Health:
    until = clock() + wait
    while True:
        health = check_health(config, store, timeout=min(LIST_TIMEOUT, max(wait, 1.0)), should_stop=should_stop)
        if health.ok or clock() >= until or (should_stop is not None and should_stop()):
            return health
        sleep(min(0.5, max(0.0, until - clock())))


def remount(config: Config, store: Store, health: Health | None = None, should_stop: StopFn | None = None) -> bool:
    """Bring the mount back with ``[mount] remount_command``; True once healthy."""
    if not config.mount.remount_command or (should_stop is not None and should_stop()):
        return False
    source = config.paths.source
    health = health if health is not None else check_health(config, store, should_stop=should_stop)
    if health.ok:
        return True
    # A dead or hung FUSE mount must be detached first: until then the mount
    # point answers ENOTCONN (or nothing), and a new mount cannot go there.
    if health.dead:
        dead_mount = _mount_to_detach(source)
        if dead_mount:
            _lazy_unmount(dead_mount)
    log.info("running the remount command for %s", source)
    if not run_remount_command(config):
        return False
    after = wait_for_health(config, store, config.mount.remount_wait, should_stop=should_stop)
    if after.ok:
        log.info("the source %s is healthy again", source)
        return True
    log.error("the source is still unhealthy %gs after the remount: %s", config.mount.remount_wait, after.message)
    return False


@dataclass
class Backoff:
    """Delays between remount attempts in the loop: 1m, 2m, 4m … capped at 30m."""

    base: float = 60.0
    cap: float = 1800.0
    failures: int = 0
    next_at: float = 0.0

    def ready(self, now: float) -> bool:
        return now >= self.next_at

    def delay(self) -> float:
        if self.failures == 0:
            return 0.0
        return float(min(self.cap, self.base * 2 ** min(self.failures - 1, 32)))

    def failed(self, now: float) -> float:
        self.failures += 1
        wait = self.delay()
        self.next_at = now + wait
        return wait

    def succeeded(self) -> None:
        self.failures = 0
        self.next_at = 0.0


# ------------------------------------------------------------------- gate

RECOVERED_REASON = "mount-recovered"


def ensure_healthy(
    config: Config,
    store: Store,
    *,
    allow_remount: bool = True,
    should_stop: StopFn | None = None,
    quiet_repeats: bool = False,
    now: float | None = None,
) -> Health:
    """The health gate run before every reconcile (and by the loop's mount check).

    Unhealthy: an ERROR line naming the failed check (``quiet_repeats``, the
    loop: once per drop and reason, then a reminder at most every half hour;
    see mount_record), the failure kept in the DB, and the remount command run
    when allowed. Healthy after a remembered drop: the whole tree is marked for
    verification, since what changed while the mount was down went unseen.
    ``now``: the wall-clock time of the check.
    """
    # An outage counts from the start of its first failed check (a hung check
    # can take its whole deadline), and ends when the check that saw it back ended.
    now = time.time() if now is None else now
    started = time.monotonic()
    health = check_health(config, store, should_stop=should_stop)
    if health is STOPPED:
        return health  # not a verdict on the mount: nothing to record
    if not health.ok:
        tell_failure(outage(store), health, now, quiet_repeats=quiet_repeats)
        record_health(store, health, now)
        if allow_remount and config.mount.remount_command and remount(config, store, health, should_stop):
            health = check_health(config, store, should_stop=should_stop)
    if health.ok:
        before = outage(store)
        at = now + (time.monotonic() - started)
        if record_health(store, health, at):
            health = replace(health, down_s=tell_recovery(before, at))
            store.add_marks([Mark(b"", RECOVERED_REASON)])
        note_first_index(config, store, should_stop)
    return health


@dataclass
class MountWatch:
    """The loop's mount check: remount attempts spaced by the backoff.

    Its first check tells a drop that the database remembers from before the
    loop started; the later ones tell only what changed (mount_record)."""

    backoff: Backoff = field(default_factory=Backoff)
    checked: bool = False

    def tick(self, config: Config, store: Store, now: float | None = None, should_stop: StopFn | None = None) -> Health:
        now = time.monotonic() if now is None else now
        health = ensure_healthy(
            config, store, allow_remount=self.backoff.ready(now), should_stop=should_stop, quiet_repeats=self.checked
        )
        self.checked = self.checked or health is not STOPPED
        if health.ok:
            self.backoff.succeeded()
        elif config.mount.remount_command and self.backoff.ready(now):
            wait = self.backoff.failed(now)
            # The remount's own failure was the ERROR line.
            log.warning("the mount is still down; next remount attempt in %gs", wait)
        return health
