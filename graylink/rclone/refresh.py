"""rclone re-reads the whole source before a full walk: one recursive ``vfs/refresh``, as an rc job.

A full walk through a mount lists rclone's directory cache. Where the cache
is cold (a first run, rclone restarted) every folder is one backend listing
(one Drive ``files.list`` call); where it is warm (``--dir-cache-time
1000h``) the walk sees rclone's memory, not the Drive, and misses what
rclone's change polling missed. ``vfs/refresh recursive=true`` re-reads the
tree from the backend with its recursive listing where the backend has one
(rclone ``walk.NewDirTree`` uses ``ListR`` whenever the backend offers it:
Drive asks for up to 50 folders per query, S3 lists 1000 keys per request),
and the walk that follows costs no backend call.

On a big Drive that takes minutes, beyond any single request's deadline, so
it runs as an rc job (``_async=true``, rclone ``fs/rc/jobs/job.go``) whose
``job/status`` is asked every second, each ask under a short deadline: a
frozen rclone, a stop request (SIGTERM) or the whole budget spent ends the
wait. rclone's refresh reads with the VFS's own context (``vfs/dir.go``
``readDirTree``), which ``job/stop`` does not cancel: graylink stops waiting
and rclone finishes in the background.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graylink.config import Config
from graylink.rclone.rc import RcError, rc_call, rc_endpoint, vfs_path_prefix
from graylink.rclone.vfs import MANY_VFS, serving_fs
from graylink.system import fsinfo

log = logging.getLogger(__name__)

BUDGET = 1800.0  # seconds for the whole re-read: Drive's own measure is ~1 min per 10k folders
ASK_DEADLINE = 10.0  # one rc call: rclone answers job/status at once when it answers at all
ASK_EVERY = 1.0  # seconds between two job/status
TELL_EVERY = 30.0  # a progress line in the log this often
_NAP = 0.1  # how often a stop request is looked at while waiting

StopFn = Callable[[], bool]
NoteFn = Callable[[str], None]  # a progress line for a terminal


@dataclass(frozen=True)
class Refreshed:
    """What became of the re-read: done, or why not (one line)."""

    ok: bool
    why: str = ""
    seconds: float = 0.0
    listed: int | None = None  # directory entries rclone listed meanwhile (rclone >= 1.69 counts them)
    stopped: bool = False


@dataclass
class _Job:
    id: int
    execute_id: str
    fs: str | None


def refresh_source(
    config: Config,
    *,
    should_stop: StopFn | None = None,
    note: NoteFn | None = None,
    budget: float = BUDGET,
    ask_deadline: float = ASK_DEADLINE,
    ask_every: float = ASK_EVERY,
) -> Refreshed:
    """Ask rclone to re-read the whole source from the backend, and wait until it has."""
    started = time.monotonic()
    end = started + budget
    stop = should_stop or (lambda: False)
    prefix = vfs_path_prefix(config.paths.source)
    where = f"{prefix!r} in the VFS" if prefix else "the VFS root"

    def ask(method: str, params: dict[str, Any]) -> dict[str, Any]:
        return rc_call(config, method, params, deadline=max(1.0, min(ask_deadline, end - time.monotonic())))

    try:
        job = _start(ask, prefix, None)
        log.info(
            "asking rclone (%s) to re-read the whole source (%s) before the full walk: job %d",
            rc_endpoint(config),
            where,
            job.id,
        )
        listed_before = _listed(ask)
        told = started
        pause = min(0.05, ask_every)  # a small tree is re-read in milliseconds: ask soon, then every ask_every
        while True:
            if not _nap(pause, end, stop):
                return _gave_up(started, stop(), budget, listed_before, ask)
            pause = min(pause * 2, ask_every)
            status = ask("job/status", {"jobid": job.id})
            if str(status.get("executeId", job.execute_id)) != job.execute_id:
                return Refreshed(False, "rclone restarted while it re-read the source", _since(started))
            if status.get("finished"):
                error = str(status.get("error") or "")
                if error and MANY_VFS in error and job.fs is None:
                    job = _start(ask, prefix, _fs_of(config, ask))
                    continue
                return _finished(status, error, started, listed_before, ask)
            now = time.monotonic()
            listed = _delta(listed_before, ask) if note is not None or now - told >= TELL_EVERY else None
            text = _progress(now - started, listed)
            if note is not None:
                note(text)
            if now - told >= TELL_EVERY:
                told = now
                log.info("%s", text)
    except RcError as exc:
        return Refreshed(False, str(exc), _since(started))


def _start(ask: Callable[[str, dict[str, Any]], dict[str, Any]], prefix: str, fs: str | None) -> _Job:
    params: dict[str, Any] = {"recursive": "true", "_async": True}  # rclone 1.60 takes recursive only as a string
    if prefix:
        params["dir"] = prefix
    if fs:
        params["fs"] = fs
    answer = ask("vfs/refresh", params)
    try:
        return _Job(int(answer["jobid"]), str(answer.get("executeId", "")), fs)
    except (KeyError, TypeError, ValueError):
        raise RcError("rclone rc vfs/refresh started no job (an rclone without _async?)") from None


def _fs_of(config: Config, ask: Callable[[str, dict[str, Any]], dict[str, Any]]) -> str:
    entry = fsinfo.mount_of(config.paths.source)
    mount_point = entry.mount_point if entry is not None else config.paths.source
    fs = serving_fs(ask, mount_point)
    if fs is None:
        raise RcError(
            f"rclone serves several VFSes and none is known to serve {mount_point} "
            "(give each mount its own rclone process, or its own --rc-addr)"
        )
    return fs


def _finished(
    status: dict[str, Any], error: str, started: float, listed_before: int | None, ask: Callable[..., dict[str, Any]]
) -> Refreshed:
    seconds = _since(started)
    if error or not status.get("success", False):
        return Refreshed(False, f"rclone's refresh failed: {error or 'no reason given'}", seconds)
    output = status.get("output")
    result = output.get("result") if isinstance(output, dict) else None
    answers = [str(v) for v in result.values()] if isinstance(result, dict) else []
    bad = [a for a in answers if a != "OK"]
    if bad:
        return Refreshed(False, f"rclone's refresh failed: {bad[0]}", seconds)
    listed = _delta(listed_before, ask)
    log.info("rclone re-read the whole source in %.1fs%s", seconds, _entries(listed))
    return Refreshed(True, seconds=seconds, listed=listed)


def _gave_up(
    started: float, stopped: bool, budget: float, listed_before: int | None, ask: Callable[..., dict[str, Any]]
) -> Refreshed:
    seconds = _since(started)
    if stopped:
        return Refreshed(False, "stopped on request (rclone finishes its re-read by itself)", seconds, stopped=True)
    listed = _delta(listed_before, ask)
    return Refreshed(
        False,
        f"rclone did not finish re-reading the source within {budget:g}s{_entries(listed)} (it goes on by itself)",
        seconds,
        listed,
    )


def _nap(seconds: float, end: float, stop: StopFn) -> bool:
    """Wait ``seconds``, looking at ``stop`` meanwhile; False on a stop request or past ``end``."""
    until = min(time.monotonic() + seconds, end)
    while True:
        if stop():
            return False
        left = until - time.monotonic()
        if left <= 0:
            return time.monotonic() < end
        time.sleep(min(_NAP, left))


def _listed(ask: Callable[[str, dict[str, Any]], dict[str, Any]]) -> int | None:
    """rclone's count of directory entries listed (``core/stats`` ``listed``); None where it has none."""
    try:
        value = ask("core/stats", {}).get("listed")
    except RcError:
        return None  # progress only: an rclone that refuses it still refreshes
    return value if isinstance(value, int) else None


def _delta(before: int | None, ask: Callable[[str, dict[str, Any]], dict[str, Any]]) -> int | None:
    if before is None:
        return None
    now = _listed(ask)
    return None if now is None else max(0, now - before)


def _progress(seconds: float, listed: int | None) -> str:
    return f"rclone is re-reading the source: {seconds:.0f}s{_entries(listed)}"


def _entries(listed: int | None) -> str:
    return "" if listed is None else f", {listed:,} entries listed"


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
