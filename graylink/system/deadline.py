"""Calls that may block forever, run where a deadline can end the wait.

A stopped or hung FUSE daemon (rclone under ``kill -STOP``, a wedged network
filesystem) blocks every system call on the mount in the kernel, where no
signal can get a Python thread out. So any touch of the source that can block
runs on a daemon thread, and the caller waits for it only up to a deadline,
looking at its stop request while it waits. A thread left behind stays
blocked until the mount answers or the process exits; being a daemon, it
never keeps the process alive.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

SLICE_S = 0.25  # how often a wait looks at the stop request


class NoAnswer(Exception):
    """The call did not return within its deadline (or a stop was requested)."""

    def __init__(self, what: str, timeout: float, stopped: bool = False) -> None:
        self.what = what
        self.timeout = timeout
        self.stopped = stopped
        reason = "a stop was requested" if stopped else f"did not answer within {timeout:g}s"
        super().__init__(f"{what}: {reason}")


class _Box(Generic[T]):
    __slots__ = ("error", "value")

    def __init__(self) -> None:
        self.value: T | None = None
        self.error: BaseException | None = None


def call(
    fn: Callable[[], T],
    timeout: float,
    what: str,
    should_stop: Callable[[], bool] | None = None,
) -> T:
    """``fn()`` on a daemon thread: its result or exception, or NoAnswer after ``timeout`` s."""
    box: _Box[T] = _Box()
    done = threading.Event()

    def run() -> None:
        try:
            box.value = fn()
        except BaseException as exc:  # handed to the caller, who decides
            box.error = exc
        finally:
            done.set()

    threading.Thread(target=run, name=f"graylink-deadline:{what[:40]}", daemon=True).start()
    wait_done(done, timeout, what, should_stop)
    if box.error is not None:
        raise box.error
    return box.value  # type: ignore[return-value]  # set when fn returned


def wait_done(done: threading.Event, timeout: float, what: str, should_stop: Callable[[], bool] | None = None) -> None:
    """Wait for ``done`` in short slices; NoAnswer on the deadline or a stop request."""
    deadline = time.monotonic() + timeout
    # A call that answers at once never looks at the stop request.
    while not done.wait(max(0.0, min(SLICE_S, deadline - time.monotonic()))):
        if time.monotonic() >= deadline:
            raise NoAnswer(what, timeout)
        if should_stop is not None and should_stop():
            raise NoAnswer(what, timeout, stopped=True)
