"""doctor's judgement of a running rclone mount's flags (graylink/rclone/duration.py, mountflags.py).

Durations are checked against the real rclone binary: its ``--max-age`` flag is
read with ``fs.ParseDuration`` (fs/parseduration.go), the parser newer rclones
use for ``--dir-cache-time`` and ``--poll-interval``, and ``-vv`` logs the value
it read. The flag checks read real rclone processes through /proc.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from rclone_support import Rclone

from graylink.cli import cli
from graylink.config import Config, parse_raw
from graylink.rclone.duration import parse_duration
from graylink.rclone.mountflags import RcloneProcess, flag_checks, rclone_processes_serving, subcommand
from graylink.system import fsinfo

RCLONE = shutil.which("rclone")
FUSE = RCLONE is not None and os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None
needs_rclone = pytest.mark.skipif(RCLONE is None, reason="RCLONE TESTS SKIPPED: rclone is not installed")
needs_fuse = pytest.mark.skipif(not FUSE, reason="FUSE TESTS SKIPPED: rclone, /dev/fuse or fusermount3 missing")


def config(tmp_path: Path, **mount_keys: str) -> Config:
    raw = {
        "paths": {
            "source": str(tmp_path / "mnt"),
            "target": str(tmp_path / "links"),
            "database": str(tmp_path / "g.db"),
        },
        "mount": dict(mount_keys),
    }
    return parse_raw(raw)


# ------------------------------------------------------------------ durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1000h", 3_600_000.0),
        ("1h30m", 5400.0),
        ("1h30m0s", 5400.0),
        ("90s", 90.0),
        ("300ms", 0.3),
        ("90", 90.0),  # a plain number is seconds
        ("1.5", 1.5),
        ("0", 0.0),
        ("1d", 86400.0),
        ("1.5d", 129_600.0),
        ("2w", 14 * 86400.0),
        ("1M", 30 * 86400.0),  # a month is 30 days
        ("1y", 365 * 86400.0),  # a year is 365 days
        (".5h", 1800.0),
        ("-5m", -300.0),
        ("off", math.inf),
    ],
)
def test_rclone_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["1d12h", "1H", "5x", "", "m", ".h", "1 h", "1h 30m"])
def test_what_rclone_refuses_is_unreadable(text: str) -> None:
    assert parse_duration(text) is None


def test_a_date_is_the_time_since_then() -> None:
    now = datetime(2026, 1, 2, 12, 0, 0).timestamp()
    assert parse_duration("2026-01-01", clock=lambda: now) == 36 * 3600.0
    assert parse_duration("2026-01-02 11:00:00", clock=lambda: now) == 3600.0


def rclone_reads(text: str, rclone: str | None = RCLONE) -> float | None:
    """What real rclone makes of a duration (seconds), None when it refuses it."""
    assert rclone is not None
    # --dump filters prints the cut-off date (rclone 1.60 and 1.75 alike; 1.75 no longer logs it at -vv).
    run = subprocess.run(
        [rclone, "lsf", "--config", "/dev/null", "--dump", "filters", "--max-age", text, os.devnull + "-nothing"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if "invalid argument" in run.stderr:
        return None
    logged = re.search(
        r"greater than: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.(\d+))? ([+-]\d{4})", run.stdout + run.stderr
    )
    if logged is None:
        return math.inf  # "off": no limit, nothing printed
    fraction = (logged.group(2) or "0")[:6]
    since = datetime.strptime(f"{logged.group(1)}.{fraction} {logged.group(3)}", "%Y-%m-%d %H:%M:%S.%f %z")
    return time.time() - since.timestamp()


@pytest.mark.parametrize(
    "text", ["1d", "1.5d", "2w", "1M", "1y", "90", "1h30m", "1d12h", "1H", "5x", "off", "2020-01-01"]
)
def test_durations_read_as_rclone_reads_them(text: str, rclone_binary: Rclone) -> None:
    ours, theirs = parse_duration(text), rclone_reads(text, rclone_binary.path)
    if theirs is None or ours is None or math.isinf(theirs):
        assert ours == theirs, f"{text!r}: graylink reads {ours}, rclone {theirs}"
    else:
        assert abs(ours - theirs) < 30, f"{text!r}: graylink reads {ours} s, rclone {theirs} s"


# ------------------------------------------------------------- the command line

MOUNT = ("rclone", "mount", "gdrive:", "/mnt/g")


def messages(config_: Config, argv: tuple[str, ...], environ: dict[str, str] | None = None) -> list[str]:
    checks = flag_checks(config_, RcloneProcess(1, argv, environ or {}))
    return [c.message for c in checks if not c.ok]


@pytest.mark.parametrize(
    "flags",
    [
        ("--dir-cache-time", "30m"),
        ("--dir-cache-time=30m",),
        ("--dir-cache-time", "30m", "--poll-interval", "1m"),  # polling does not make a short cache long
        ("--dir-cache-time", "1000h", "--dir-cache-time", "59m"),  # the last one wins
        (),  # rclone's default, 5m
    ],
)
def test_a_dir_cache_shorter_than_an_hour_warns(tmp_path: Path, flags: tuple[str, ...]) -> None:
    found = messages(config(tmp_path), (*MOUNT, *flags))
    assert len(found) == 1 and "shorter than an hour" in found[0], found


@pytest.mark.parametrize(
    "flags",
    [
        ("--dir-cache-time", "1000h"),  # --poll-interval defaults to 1m
        ("--dir-cache-time=1000h", "--poll-interval=1m"),
        ("--dir-cache-time", "1d"),
        ("--dir-cache-time", "1h30m"),
        ("--dir-cache-time", "1M"),
        ("--dir-cache-time", "3600"),
        ("--dir-cache-time", "off"),
    ],
)
def test_a_long_dir_cache_with_polling_suits(tmp_path: Path, flags: tuple[str, ...]) -> None:
    assert messages(config(tmp_path), (*MOUNT, *flags)) == []


def test_polling_off_with_a_long_cache_warns(tmp_path: Path) -> None:
    found = messages(config(tmp_path), (*MOUNT, "--dir-cache-time", "1000h", "--poll-interval", "0"))
    assert len(found) == 1 and "turns polling off" in found[0]


def test_global_flags_before_mount(tmp_path: Path) -> None:
    argv = (
        "/usr/bin/rclone",
        "--config",
        "/etc/rclone.conf",
        "-v",
        "mount",
        "gdrive:",
        "/mnt/g",
        "--dir-cache-time",
        "5m",
    )
    assert subcommand(argv) == "mount"
    assert subcommand(("rclone", "--fast-list", "mount", "gdrive:", "/mnt/g")) == "mount"
    assert subcommand(("rclone", "--config", "x", "copy", "a:", "/mnt/g")) == "copy"
    assert subcommand(("rclone", "--unknown-flag", "x", "mount", "a:", "/mnt/g")) == "mount"
    assert "shorter than an hour" in messages(config(tmp_path), argv)[0]


def test_rc_addr_alone_is_not_rc(tmp_path: Path) -> None:
    with_rc = config(tmp_path, rclone_rc="http://127.0.0.1:5572")
    long = ("--dir-cache-time", "1000h")
    alone = messages(with_rc, (*MOUNT, *long, "--rc-addr", "127.0.0.1:5572"))
    assert len(alone) == 1 and "without --rc (--rc-addr alone does not start it)" in alone[0]
    assert messages(with_rc, (*MOUNT, *long, "--rc", "--rc-addr", "127.0.0.1:5572")) == []
    assert messages(with_rc, (*MOUNT, *long, "--rc=true")) == []
    assert "without --rc" in messages(with_rc, (*MOUNT, *long, "--rc=false"))[0]
    # A value that merely reads "--rc" is not the flag.
    assert "without --rc" in messages(with_rc, (*MOUNT, *long, "--rc-pass", "--rc"))[0]


def test_flags_from_rclone_environment_variables(tmp_path: Path) -> None:
    with_rc = config(tmp_path, rclone_rc="http://127.0.0.1:5572")
    env = {"RCLONE_DIR_CACHE_TIME": "1000h", "RCLONE_RC": "true"}
    assert messages(with_rc, MOUNT, env) == []
    short = messages(with_rc, MOUNT, {"RCLONE_DIR_CACHE_TIME": "10m", "RCLONE_RC": "true"})
    assert short and "(from RCLONE_DIR_CACHE_TIME)" in short[0]
    # The command line wins over the environment, as in rclone.
    assert (
        messages(with_rc, (*MOUNT, "--dir-cache-time", "1000h"), {"RCLONE_DIR_CACHE_TIME": "1m", "RCLONE_RC": "1"})
        == []
    )


# ------------------------------------------------------------ real processes


@pytest.fixture
def real_mount(tmp_path: Path, rclone_binary: Rclone) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    src, mnt = tmp_path / "src", tmp_path / "mnt"
    (src / "Show").mkdir(parents=True)
    (src / "Show" / "e01.mkv").write_bytes(b"video")
    mnt.mkdir()
    (tmp_path / "links").mkdir()

    def start(*argv: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        full = [rclone_binary.path, *argv]
        process = subprocess.Popen(
            full, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})}
        )
        started.append(process)
        deadline = time.monotonic() + 20
        while not fsinfo.is_mountpoint(str(mnt)):
            assert process.poll() is None, f"rclone exited with {process.returncode}"
            assert time.monotonic() < deadline, "gave up waiting for the rclone mount"
            time.sleep(0.1)
        return process

    yield start
    for process in started:
        subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True, check=False)
        process.kill()
        process.wait(timeout=10)


@needs_fuse
def test_doctor_reads_a_real_mount_started_with_global_flags(
    tmp_path: Path, real_mount: Callable[..., subprocess.Popen[bytes]]
) -> None:
    mnt = str(tmp_path / "mnt")
    process = real_mount(
        "--config", "/dev/null", "mount", str(tmp_path / "src"), mnt,
        "--dir-cache-time=30m", "--poll-interval", "10s", "--rc-addr", "127.0.0.1:0",
    )  # fmt: skip
    found = rclone_processes_serving(mnt)
    assert [p.pid for p in found] == [process.pid]
    ini = tmp_path / "graylink.ini"
    ini.write_text(
        f"[paths]\nsource = {mnt}\ntarget = {tmp_path / 'links'}\ndatabase = {tmp_path / 'g.db'}\n"
        "[mount]\nrclone_rc = http://127.0.0.1:9\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["-c", str(ini), "doctor"])
    flags = [line for line in result.output.splitlines() if "rclone flags:" in line]
    assert any("--dir-cache-time 30m is shorter than an hour" in line for line in flags), result.output
    assert any("--rc-addr alone does not start it" in line for line in flags), result.output


@needs_fuse
def test_a_real_mount_with_flags_from_its_environment(
    tmp_path: Path, real_mount: Callable[..., subprocess.Popen[bytes]]
) -> None:
    mnt = str(tmp_path / "mnt")
    real_mount(
        "mount", str(tmp_path / "src"), mnt, "--config", "/dev/null", "--rc-addr", "127.0.0.1:0", "--rc-no-auth",
        env={"RCLONE_DIR_CACHE_TIME": "1000h", "RCLONE_RC": "true"},
    )  # fmt: skip
    (process,) = rclone_processes_serving(mnt)
    assert process.environ == {"RCLONE_DIR_CACHE_TIME": "1000h", "RCLONE_RC": "true"}
    checks = flag_checks(config(tmp_path, rclone_rc="http://127.0.0.1:5572"), process)
    assert [c.ok for c in checks] == [True], [c.message for c in checks]


def test_polling_as_slow_as_a_long_cache_warns(tmp_path: Path) -> None:
    found = messages(config(tmp_path), (*MOUNT, "--dir-cache-time", "2h", "--poll-interval", "3h"))
    assert len(found) == 1 and "is not shorter than --dir-cache-time 2h" in found[0]


@needs_fuse
def test_doctor_tells_a_real_mount_with_rc_and_no_auth_flag_what_its_rclone_needs(
    tmp_path: Path, real_mount: Callable[..., subprocess.Popen[bytes]], rclone_binary: Rclone
) -> None:
    """rclone >= 1.74 refuses vfs/refresh (403) on --rc without an auth flag; rc/noop still answers."""
    from tests.test_mount import free_port

    mnt, port = str(tmp_path / "mnt"), free_port()
    real_mount(
        "mount", str(tmp_path / "src"), mnt, "--config", "/dev/null", "--dir-cache-time", "1000h",
        "--rc", "--rc-addr", f"127.0.0.1:{port}",
    )  # fmt: skip
    ini = tmp_path / "graylink.ini"
    ini.write_text(
        f"[paths]\nsource = {mnt}\ntarget = {tmp_path / 'links'}\ndatabase = {tmp_path / 'g.db'}\n"
        f"[mount]\nrclone_rc = http://127.0.0.1:{port}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["-c", str(ini), "doctor"])
    flags = [line for line in result.output.splitlines() if "rclone flags:" in line]
    rc_lines = [line for line in result.output.splitlines() if "rclone rc:" in line]
    warned = any("without --rc-no-auth, --rc-user or --rc-htpasswd" in line for line in flags)
    refused = any("(403)" in line and "--rc-no-auth" in line for line in rc_lines)
    if rclone_binary.at_least(1, 74):
        assert warned and refused and result.exit_code == 1, result.output
    else:
        assert not warned and not refused and result.exit_code == 0, result.output


@pytest.mark.parametrize("flags", [("--fast-list",), ("--fast-list=true",)])
def test_fast_list_on_a_mount_is_told_to_do_nothing_not_recommended(tmp_path: Path, flags: tuple[str, ...]) -> None:
    """rclone cmd/mountlib: "--fast-list does nothing on a mount"; the recursive refresh takes ListR anyway."""
    argv = (*MOUNT, "--dir-cache-time", "1000h", "--rc", "--rc-no-auth", *flags)
    checks = flag_checks(config(tmp_path, rclone_rc="http://127.0.0.1:5572"), RcloneProcess(1, argv))
    assert [c.ok for c in checks] == [True, True]
    assert checks[1].message.startswith("--fast-list does nothing on a mount (rclone logs so)")
    plain = flag_checks(config(tmp_path), RcloneProcess(1, (*MOUNT, "--dir-cache-time", "1000h")))
    assert all("fast-list" not in c.message + c.hint for c in plain)
