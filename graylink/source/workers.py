"""Listing threads that a hung mount cannot hold hostage.

``concurrent.futures`` joins its threads when the pool closes and again when
the interpreter exits, so one listing blocked on a stopped FUSE daemon would
hang graylink for good. These are daemon threads: the caller waits for
results only as long as the source shows life (any thread finished a folder
within ``hang_timeout``), looks at its stop request while it waits, and
abandons the threads when it gives up.

The results come back through a ``queue.Queue``, not a ``SimpleQueue``: in
CPython 3.7 to 3.12 (3.12.1 checked; 3.13.0 returns), a signal handler that
runs during ``SimpleQueue.get(timeout=...)`` and outlasts what was left of the
timeout (SIGTERM's handler writes a log line; on a loaded machine that can
take longer than the rest of a 0.25 s slice) leaves the get waiting with a
negative timeout, which means forever: the loop never looked at its stop
request again. ``Queue.get`` waits on a lock, whose timed acquire recomputes
the deadline after a signal.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from graylink.system.deadline import SLICE_S

R = TypeVar("R")


class Hung(Exception):
    """No listing finished within the hang timeout."""


class Stopped(Exception):
    """The caller's stop request came while waiting."""


class DaemonPool(Generic[R]):
    def __init__(self, workers: int, name: str = "graylink-list") -> None:
        self._tasks: queue.SimpleQueue[Callable[[], R] | None] = queue.SimpleQueue()
        # Never a SimpleQueue: its timed get can hang after a signal (see above).
        self._results: queue.Queue[tuple[R | None, BaseException | None]] = queue.Queue()
        self._closed = threading.Event()
        self.last_sign_of_life = time.monotonic()
        self.in_flight = 0
        self._count = max(1, workers)
        for n in range(self._count):
            threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True).start()

    def alive(self) -> None:
        """Called by a task after each folder: the source still answers."""
        self.last_sign_of_life = time.monotonic()

    def _work(self) -> None:
        while not self._closed.is_set():
            task = self._tasks.get()
            if task is None or self._closed.is_set():
                return
            try:
                self._results.put((task(), None))
            except BaseException as exc:  # handed to the caller, who decides
                self._results.put((None, exc))

    def submit(self, task: Callable[[], R]) -> None:
        if self.in_flight == 0:
            self.last_sign_of_life = time.monotonic()
        self.in_flight += 1
        self._tasks.put(task)

    def next_result(self, hang_timeout: float, should_stop: Callable[[], bool]) -> R:
        """The next finished task's result (its exception re-raised)."""
        while True:
            try:
                value, error = self._results.get(timeout=SLICE_S)
            except queue.Empty:
                if should_stop():
                    raise Stopped() from None
                if time.monotonic() - self.last_sign_of_life > hang_timeout:
                    raise Hung() from None
                continue
            self.in_flight -= 1
            self.last_sign_of_life = time.monotonic()
            if error is not None:
                raise error
            return value  # type: ignore[return-value]  # a task that returned

    def close(self) -> None:
        """Let the threads go: idle ones end now, blocked ones when their call returns."""
        self._closed.set()
        for _ in range(self._count):
            self._tasks.put(None)
