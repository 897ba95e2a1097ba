"""The service's last log lines in memory, for the web face's log page when ``[log] file`` is not set.

A bounded ring (a deque): the newest lines, formatted as they go to stderr;
nothing is ever written anywhere by it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

KEEP = 500


class RingHandler(logging.Handler):
    def __init__(self, keep: int = KEEP) -> None:
        super().__init__()
        self._lines: deque[str] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a record that cannot be formatted must not break logging
            return
        with self._lock:
            self._lines.extend(line.splitlines() or [""])

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)


RING = RingHandler()
