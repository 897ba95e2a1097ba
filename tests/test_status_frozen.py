"""Status on a frozen rclone mount (rclone under SIGSTOP): answered without waiting on the mount."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import requests
from prometheus_client.parser import text_string_to_metric_families

from graylink.config import load_config
from graylink.report.status import collect_status
from graylink.store.db import Store
from graylink.triggers.mount import LIST_TIMEOUT
from tests.test_mount import REPO, Mounted, free_port, rclone_mount, wait_until  # noqa: F401  (the fixture)
from tests.test_mount import pytestmark as fuse_marks

pytestmark = fuse_marks

TOKEN = "made-up-web-token-5678"


@contextmanager
def frozen(m: Mounted) -> Iterator[None]:
    """rclone stopped: every system call on the mount blocks in the kernel until it continues."""
    os.kill(m.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(m.process.pid, signal.SIGCONT)


def resolves_waiting() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("graylink-deadline:resolving"))


def test_status_on_a_frozen_mount_resolves_nothing_on_it(rclone_mount: Callable[..., Mounted]) -> None:  # noqa: F811
    m = rclone_mount()
    assert m.graylink("reconcile").returncode == 0
    config = load_config(str(m.ini))
    before = resolves_waiting()
    with frozen(m), Store(config.paths.database, readonly=True) as store:
        doc = collect_status(config, store)
        left = resolves_waiting() - before
    assert doc["mount"]["healthy"] is False and doc["mount"]["failed_check"] == "source-listable"
    assert doc["mount"]["fs_type"] == "fuse.rclone" and doc["mount"]["is_mountpoint"] is True
    # The listing did not answer: resolving the path (fs type, mount point) would block the same way.
    assert left == 0, f"{left} threads left blocked resolving paths on the frozen mount"


def _metrics(url: str) -> tuple[float, dict[str, float]]:
    start = time.monotonic()
    body = requests.get(url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60).text
    took = time.monotonic() - start
    values = {s.name: s.value for f in text_string_to_metric_families(body) for s in f.samples if not s.labels}
    return took, values


def test_metrics_of_the_service_answer_at_once_on_a_frozen_mount(rclone_mount: Callable[..., Mounted]) -> None:  # noqa: F811
    """A Prometheus scrape (default timeout 10 s) must see graylink_mount_up 0, not time out."""
    m = rclone_mount()
    port = free_port()
    m.write_config(check_interval="1s")
    with m.ini.open("a") as ini:
        ini.write(f"[web]\nlisten = 127.0.0.1:{port}\ntoken = {TOKEN}\n")
    loop = subprocess.Popen(
        [sys.executable, "-m", "graylink", "-c", str(m.ini), "reconcile", "--loop"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def mount_up() -> bool:
            try:
                return _metrics(url)[1].get("graylink_mount_up") == 1.0
            except requests.ConnectionError:
                return False

        wait_until(mount_up, "the service to find the mount healthy", limit=60)
        with frozen(m):
            wait_until(lambda: _metrics(url)[1].get("graylink_mount_up") == 0.0, "the drop to show", limit=60)
            took, _ = _metrics(url)
            assert took < LIST_TIMEOUT, f"/metrics took {took:.1f}s on a frozen mount"
            start = time.monotonic()
            doc = requests.get(url + "/api/status", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60).json()
            took = time.monotonic() - start
            assert took < LIST_TIMEOUT, f"/api/status took {took:.1f}s on a frozen mount"
            assert doc["mount"]["healthy"] is False and doc["mount"]["failed_check"] == "source-listable"
    finally:
        loop.send_signal(signal.SIGTERM)
        try:
            loop.wait(30)
        except subprocess.TimeoutExpired:
            loop.kill()
            loop.wait()
    assert loop.returncode is not None


def test_doctor_on_a_frozen_mount_says_it_does_not_answer_within_its_deadline(
    rclone_mount: Callable[..., Mounted],  # noqa: F811
) -> None:
    """issue 27 item 1: doctor hung forever in os.path.isdir(source) on a SIGSTOPped rclone."""
    m = rclone_mount()
    assert m.graylink("reconcile").returncode == 0
    with frozen(m):
        began = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "graylink", "-c", str(m.ini), "doctor"],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"doctor still ran after 60s on a frozen mount:\n{out}{err}") from None
        took = time.monotonic() - began
    assert proc.returncode == 1, out + err
    assert "Traceback" not in err
    source_lines = [line for line in out.splitlines() if line.startswith("✘ source:")]
    assert source_lines and "the mount does not answer" in source_lines[0], out
    assert "filesystem: " + str(m.mnt) + " is on fuse.rclone" in out  # read from mountinfo, not by a look
    # One deadline for the source (LIST_TIMEOUT), not one per check that looks at it.
    assert took < LIST_TIMEOUT + 10, f"doctor took {took:.1f}s on a frozen mount:\n{out}"
