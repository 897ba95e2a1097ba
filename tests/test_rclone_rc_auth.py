"""rclone's remote control and its auth, against every rclone found (tests/rclone_support.py).

Since rclone 1.74 (fs/rc/rcserver/rcserver.go, "rc: flip auth default") a
call not marked ``NoAuth`` — ``vfs/refresh`` among them; ``rc/noop``,
``core/version`` and ``vfs/list`` are marked — answers 403 unless the rc
server has ``--rc-user`` / ``--rc-htpasswd`` or ``--rc-no-auth``. Before 1.74
only calls marked ``AuthRequired`` (``rc/noopauth``) needed it. A server with
a user answers 401 to any request without the right user and password.

A real rclone serves a VFS for the rc without FUSE: ``rclone serve http``
with ``--rc``.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from rclone_support import Rclone

from graylink.config import Config, parse_raw
from graylink.rclone import rc
from graylink.rclone.mountflags import RcloneProcess, flag_checks
from graylink.store.db import Store
from graylink.triggers import mount_checks
from tests.test_mount import free_port

PASS = "made-up-rc-pass-5"


@pytest.fixture
def rc_server(tmp_path: Path, rclone_binary: Rclone) -> Iterator[Callable[..., int]]:
    """``rclone serve http SRC --rc …``: returns the rc port once rclone answers."""
    started: list[subprocess.Popen[bytes]] = []
    (tmp_path / "src" / "S1").mkdir(parents=True)

    def start(*extra: str) -> int:
        port = free_port()
        argv = [
            rclone_binary.path, "serve", "http", str(tmp_path / "src"), "--config", "/dev/null",
            "--addr", "127.0.0.1:0", "--rc", "--rc-addr", f"127.0.0.1:{port}", *extra,
        ]  # fmt: skip
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(process)
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, f"rclone serve exited with {process.returncode}"
            try:
                requests.post(f"http://127.0.0.1:{port}/rc/noop", json={}, timeout=2)
                return port
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "gave up waiting for rclone's rc"
                time.sleep(0.1)

    yield start
    for process in started:
        process.kill()
        process.wait(timeout=10)


def _config(tmp_path: Path, port: int, **mount: str) -> Config:
    raw = {
        "paths": {
            "source": str(tmp_path / "src"),
            "target": str(tmp_path / "links"),
            "database": str(tmp_path / "g.db"),
        },
        "mount": {"rclone_rc": f"http://127.0.0.1:{port}", **mount},
    }
    return parse_raw(raw)


def _rc_check(config: Config) -> tuple[bool, str, str]:
    with Store(config.paths.database) as store:
        (check,) = [c for c in mount_checks.doctor_checks(config, store) if c.name == "rclone rc"]
    return check.ok, check.message, check.hint


def test_rc_without_an_auth_flag_is_refused_from_174_and_doctor_says_so(
    tmp_path: Path, rc_server: Callable[..., int], rclone_binary: Rclone, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config(tmp_path, rc_server())
    ok, message, _ = _rc_check(config)
    caplog.set_level(logging.ERROR)
    refreshed = rc.vfs_refresh(config, [b"S1"])
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    if rclone_binary.at_least(1, 74):
        assert not ok, message
        assert "(403)" in message and "no rc auth set up" in message and "--rc-no-auth" in message, message
        assert not refreshed
        assert any("refused vfs/refresh (403)" in e and "--rc-no-auth" in e for e in errors), errors
    else:
        assert ok, message  # vfs/refresh needs no auth before 1.74 (rc/noopauth would have said 403)
        # The call went through: rclone answered about the folder itself. This rcd serves no
        # mount of the source, so the folder is not found; the refresh no longer climbs to the
        # root of a VFS that is not the source's and calls that a success (issue 27 item 5).
        assert not any("refused" in e for e in errors), errors
        assert not refreshed and any("does not exist" in e for e in errors), errors


def test_rc_no_auth_answers_every_call(
    tmp_path: Path, rc_server: Callable[..., int], rclone_binary: Rclone
) -> None:
    config = _config(tmp_path, rc_server("--rc-no-auth"))
    ok, message, _ = _rc_check(config)
    assert ok, message
    assert f"rclone {rclone_binary.version[0]}.{rclone_binary.version[1]}." in message
    assert rc._refresh_once(config, ["S1"], False) == {"S1": "OK"}  # S1 at the root of rclone serve's VFS


def test_a_wrong_or_missing_rc_password_is_told_from_a_missing_auth_setup(
    tmp_path: Path, rc_server: Callable[..., int], caplog: pytest.LogCaptureFixture
) -> None:
    port = rc_server("--rc-user", "graylink", "--rc-pass", PASS)
    ok, message, _ = _rc_check(_config(tmp_path, port, rclone_rc_user="graylink", rclone_rc_pass="x" + PASS))
    assert not ok and "(401)" in message and "wrong user or password" in message, message
    ok, message, _ = _rc_check(_config(tmp_path, port))
    assert not ok and "(401)" in message and "rclone_rc_user is empty" in message, message
    right = _config(tmp_path, port, rclone_rc_user="graylink", rclone_rc_pass=PASS)
    ok, message, _ = _rc_check(right)
    assert ok, message
    assert rc._refresh_once(right, ["S1"], False) == {"S1": "OK"}
    caplog.set_level(logging.DEBUG)
    assert not rc.vfs_refresh(_config(tmp_path, port, rclone_rc_user="graylink", rclone_rc_pass="y"), [b"S1"])
    assert any("refused vfs/refresh (401): wrong user or password" in r.getMessage() for r in caplog.records)
    assert all(PASS not in r.getMessage() for r in caplog.records)


def test_nothing_listening_keeps_the_start_the_mount_hint(tmp_path: Path) -> None:
    ok, message, hint = _rc_check(_config(tmp_path, free_port()))
    assert not ok and "cannot reach rclone rc" in message and "--rc --rc-addr" in hint


# ---------------------------------------------------------------- the mount's flags

MOUNT = ("rclone", "mount", "gdrive:", "/mnt/g", "--dir-cache-time", "1000h", "--rc")


@pytest.mark.parametrize(
    ("extra", "environ", "version", "warns"),
    [
        ((), {}, (1, 75, 2), True),
        ((), {}, (1, 74, 0), True),
        ((), {}, (1, 73, 5), False),
        ((), {}, None, False),  # the version is not known: the rc check says what rclone answers
        (("--rc-no-auth",), {}, (1, 75, 2), False),
        (("--rc-no-auth=false",), {}, (1, 75, 2), True),
        (("--rc-user", "graylink", "--rc-pass", "p"), {}, (1, 75, 2), False),
        (("--rc-htpasswd=/etc/rclone.htpasswd",), {}, (1, 75, 2), False),
        ((), {"RCLONE_RC_NO_AUTH": "true"}, (1, 75, 2), False),
        ((), {"RCLONE_RC_USER": "graylink"}, (1, 75, 2), False),
    ],
)
def test_rc_without_an_auth_flag_warns_from_174(
    tmp_path: Path,
    extra: tuple[str, ...],
    environ: dict[str, str],
    version: tuple[int, int, int] | None,
    warns: bool,
) -> None:
    checks = flag_checks(_config(tmp_path, 5572), RcloneProcess(1, (*MOUNT, *extra), environ), version)
    said = [c.message for c in checks if not c.ok]
    assert any("without --rc-no-auth, --rc-user or --rc-htpasswd" in m for m in said) == warns, said
