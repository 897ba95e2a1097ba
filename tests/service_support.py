"""The service loop as a real process, for the tests that drive it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from conftest import REPO, Library, links_in

WAIT_S = 60.0  # generous: a deadline for waiting, never an assertion about speed


def wait_for(what: str, condition: Callable[[], bool], proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the loop exited ({proc.returncode}) while waiting for {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Loop:
    """``graylink reconcile --loop`` in its own process, stderr to a file."""

    def __init__(self, lib: Library) -> None:
        self.lib = lib
        self.log = lib.root / "loop.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "graylink", "-c", str(lib.ini), "reconcile", "--loop"],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_log(self, needle: str, count: int = 1) -> None:
        wait_for(f"{needle!r} in the log", lambda: self.text().count(needle) >= count, self.proc)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=WAIT_S)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def linked(lib: Library, rel: str) -> Callable[[], bool]:
    return lambda: os.fsencode(rel) in links_in(lib.target)
