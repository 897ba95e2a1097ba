"""Mount health, remount, and rclone's remote control.

A dropped rclone mount looks like an empty folder (after ``fusermount -u``) or
fails with ENOTCONN (the rclone process died), and a tool that believes it
prunes the whole library. Health is therefore checked before every reconcile,
and an unhealthy source withholds every prune (ARCHITECTURE §4).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from graylink import deadline, fsinfo
from graylink.checks import Check
from graylink.config import Config
from graylink.db import Mark, Store, StoredMark
from graylink.rclone import mountflags
from graylink.rclone.vfs import MANY_VFS, serving_fs

log = logging.getLogger(__name__)

LIST_TIMEOUT = 10.0  # a hung FUSE mount must not block a cycle forever
RC_DEADLINE = 120.0  # seconds for a whole rc call: a recursive refresh lists through the Drive API
RC_NOOP_DEADLINE = 10.0  # doctor's rc/noop: rclone answers it at once when it answers at all

# Check names, as reported in the one ERROR line and in status/doctor.
LISTABLE = "source-listable"
MOUNTPOINT = "source-mountpoint"
ANCHOR = "anchor"
NOT_EMPTY = "source-not-empty"

# DB meta keys.
META_WAS_MOUNTPOINT = "source_was_mountpoint"
META_DOWN_SINCE = "mount_down_since"
META_LAST_FAILURE = "mount_last_failure"

_DEAD_ERRNOS = {errno.ENOTCONN, errno.EIO, errno.ESTALE, errno.ECONNABORTED}

StopFn = Callable[[], bool]


@dataclass(frozen=True)
class Health:
    ok: bool
    failed_check: str = ""
    message: str = ""
    dead: bool = False  # a mount point that errors or hangs: needs a lazy unmount before a remount


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
    return config.mount.require_mountpoint or store.get_meta(META_WAS_MOUNTPOINT) == "1"


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


def note_first_index(config: Config, store: Store) -> None:
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
        if not deadline.call(shows_content, LIST_TIMEOUT, "mount-probe"):
            return
    except (OSError, deadline.NoAnswer):
        return
    store.set_meta(META_WAS_MOUNTPOINT, "1" if fsinfo.is_mountpoint(config.paths.source) else "0")


def record_health(store: Store, health: Health, now: float | None = None) -> bool:
    """Keep the drop and its last failure in the DB; True when this is a recovery.

    A recovery (healthy after a remembered drop) is the caller's cue to verify
    the whole tree: whatever changed while the mount was down went unseen.
    """
    now = time.time() if now is None else now
    if not health.ok:
        store.set_meta(
            META_LAST_FAILURE, json.dumps({"at": now, "check": health.failed_check, "message": health.message})
        )
        if store.get_meta(META_DOWN_SINCE) is None:
            store.set_meta(META_DOWN_SINCE, repr(now))
        return False
    if store.get_meta(META_DOWN_SINCE) is None:
        return False
    store.execute("DELETE FROM meta_value WHERE key = ?", (META_DOWN_SINCE,))
    return True


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
    config: Config, store: Store, *, allow_remount: bool = True, should_stop: StopFn | None = None
) -> Health:
    """The health gate run before every reconcile (and by the loop's mount check).

    Unhealthy: one ERROR line naming the failed check, the failure kept in the
    DB, and the remount command run when allowed. Healthy after a remembered
    drop: the whole tree is marked for verification, since what changed
    while the mount was down went unseen.
    """
    health = check_health(config, store, should_stop=should_stop)
    if health is STOPPED:
        return health  # not a verdict on the mount: nothing to record
    if not health.ok:
        log.error(
            "mount check %s failed: %s; nothing will be pruned and dirty marks are kept",
            health.failed_check,
            health.message,
        )
        record_health(store, health)
        if allow_remount and config.mount.remount_command and remount(config, store, health, should_stop):
            health = check_health(config, store, should_stop=should_stop)
    if health.ok:
        if record_health(store, health):
            log.info("the source is back after a drop: every folder will be verified")
            store.add_marks([Mark(b"", RECOVERED_REASON)])
        note_first_index(config, store)
    return health


@dataclass
class MountWatch:
    """The loop's mount check: remount attempts spaced by the backoff."""

    backoff: Backoff = field(default_factory=Backoff)

    def tick(self, config: Config, store: Store, now: float | None = None, should_stop: StopFn | None = None) -> Health:
        now = time.monotonic() if now is None else now
        health = ensure_healthy(config, store, allow_remount=self.backoff.ready(now), should_stop=should_stop)
        if health.ok:
            self.backoff.succeeded()
        elif config.mount.remount_command and self.backoff.ready(now):
            wait = self.backoff.failed(now)
            log.error("the mount is still down; next remount attempt in %gs", wait)
        return health


# Marks that say "the Drive changed here" (the feed, the web triggers, Sonarr / Radarr):
# rclone's directory cache may not show the change yet, so those folders are re-read first.
REMOTE_REASONS = frozenset({"drive", "api", "webhook", "sonarr", "radarr"})


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


def _rc_endpoint(config: Config) -> str:
    # Only scheme, host and port reach a log line: never userinfo.
    parts = urlsplit(config.mount.rclone_rc)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"


class RcError(Exception):
    """A failed call to rclone's remote control (message carries no secret)."""


def rc_call(config: Config, method: str, params: dict[str, Any], *, deadline: float = RC_DEADLINE) -> dict[str, Any]:
    # Only when rclone's rc is used: keeps status and --help fast.
    import requests

    from graylink.http_deadline import DeadlineSession

    url = f"{config.mount.rclone_rc}/{method}"
    auth = (config.mount.rclone_rc_user, config.mount.rclone_rc_pass) if config.mount.rclone_rc_user else None
    try:
        with DeadlineSession(deadline) as session:  # the whole call ends by the deadline, however rclone answers
            response = session.post(url, json=params, auth=auth, timeout=deadline)
    except requests.Timeout:
        raise RcError(f"rclone rc at {_rc_endpoint(config)} did not answer {method} in time") from None
    except requests.RequestException as exc:
        kind = type(exc).__name__
        raise RcError(f"cannot reach rclone rc at {_rc_endpoint(config)} ({kind})") from None
    if response.status_code in (401, 403):
        raise RcError(
            f"rclone rc at {_rc_endpoint(config)} refused {method} ({response.status_code}): "
            "check [mount] rclone_rc_user / rclone_rc_pass"
        )
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


def vfs_refresh(config: Config, dirs: list[bytes], recursive: bool = False, budget: float = RC_DEADLINE) -> bool:
    """Ask rclone to re-read ``dirs`` (relative to the source) now.

    A folder the VFS does not know yet (new on the Drive) answers "file does
    not exist"; its parent is refreshed instead, which is what makes it
    appear. All rounds together end within ``budget`` seconds. Failures are
    logged and reported as False: the walk goes on and sees the change once
    rclone's directory cache expires.
    """
    if not config.mount.rclone_rc or not dirs:
        return bool(not dirs)
    prefix = vfs_path_prefix(config.paths.source)
    pending = sorted({_vfs_dir(prefix, d) for d in dirs})
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
            if "" in pending:
                answers = _refresh_once(config, [""], recursive, left, fs)
                answers = {"": answers.get("", "OK")}
                rest = [d for d in pending if d]
                if rest:
                    answers.update(_refresh_once(config, rest, recursive, max(1.0, end - time.monotonic()), fs))
            else:
                answers = _refresh_once(config, pending, recursive, left, fs)
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
            elif "does not exist" in answer and path:
                missing.add(os.path.dirname(path))
            else:
                log.error("vfs/refresh %s: %s", path or "/", answer)
                ok = False
        pending = sorted(missing - tried)
    if ok:
        log.info("asked rclone to refresh %d folder(s)", len(dirs))
    return ok


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


def health_check(config: Config, store: Store) -> Check:
    health = check_health(config, store)
    if health.ok:
        fstype = fsinfo.fs_type(config.paths.source) or "unknown filesystem"
        return Check("mount", True, f"the source {config.paths.source} is healthy ({fstype})")
    hint = _HINTS.get(health.failed_check, "").format(source=config.paths.source)
    return Check("mount", False, f"{health.failed_check}: {health.message}", hint)


def doctor_checks(config: Config, store: Store) -> list[Check]:
    """Mount health (fails when unhealthy) and the serving rclone's flags (warnings)."""
    checks = [health_check(config, store)]
    source = config.paths.source
    entry = fsinfo.mount_of(source)
    if entry is not None and entry.fs_type == "fuse.rclone":
        processes = mountflags.rclone_processes_serving(entry.mount_point)
        if processes:
            checks.extend(mountflags.flag_checks(config, processes[0]))
        else:
            checks.append(
                Check(
                    "rclone flags",
                    True,
                    f"the rclone process serving {entry.mount_point} is not visible from here (another "
                    "container or user?): its flags were not checked",
                )
            )
    if config.mount.rclone_rc:
        try:
            rc_call(config, "rc/noop", {}, deadline=RC_NOOP_DEADLINE)
            checks.append(Check("rclone rc", True, f"rclone rc answers at {_rc_endpoint(config)}"))
        except RcError as exc:
            checks.append(
                Check(
                    "rclone rc",
                    False,
                    str(exc),
                    "start the mount with --rc --rc-addr matching [mount] rclone_rc, or unset rclone_rc",
                )
            )
    return checks
