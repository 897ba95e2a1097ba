"""How far a long run is, where people look: a live line on a terminal, INFO lines elsewhere.

Each phase of a run (listing folders, planning, creating links, recording,
telling the media servers) reports into one :class:`Meter`. On a terminal the
meter redraws one line, at most :data:`DRAW_EVERY` apart, through every phase.
Off a terminal (the journal, ``docker logs``, a pipe) it logs an INFO line at
most every ``log_every`` seconds, and none in the run's first ``log_every``
seconds: a short run, or a service cycle that changes a few links, says
nothing. A phase that was told once is told again when it ends, with its
final figure, so the last figure equals the run's summary.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TextIO

from graylink.errors import ConfigError

log = logging.getLogger("graylink.progress")

EVERY_ENV = "GRAYLINK_PROGRESS_EVERY"  # seconds between two INFO progress lines off a terminal
LOG_EVERY = 10.0
DRAW_EVERY = 0.1  # the live line: at most ten redraws a second
LISTING = "listing folders"

Clock = Callable[[], float]


def log_every(environ: Mapping[str, str] = os.environ) -> float:
    """The interval of the INFO progress lines: ``GRAYLINK_PROGRESS_EVERY`` seconds, else 10."""
    raw = environ.get(EVERY_ENV, "").strip()
    if not raw:
        return LOG_EVERY
    try:
        every = float(raw.removesuffix("s"))
    except ValueError:
        every = -1.0
    if not every >= 0 or every == float("inf"):
        raise ConfigError(f"{EVERY_ENV}={raw!r}: give the seconds between two progress lines, e.g. 10")
    return every


@dataclass
class _Phase:
    name: str  # "listing folders", "creating links"
    total: int | None = None
    approx: bool = False  # the total is an estimate (the previous index's folders)
    done: int | None = None  # None: a phase without a count
    files: int | None = None  # files seen so far, while listing
    told: bool = False  # an INFO line said this phase

    def text(self) -> str:
        if self.done is None:
            return f"{self.name}…"
        shown = f"{self.name}: {self.done}"
        if self.total and not (self.approx and self.done > self.total):
            shown += f" of {'~' if self.approx else ''}{self.total}"
        if self.files is not None:
            shown += f" ({self.files} files)"
        return shown


class Meter:
    """One run's progress. ``live``: the terminal to redraw a line on; ``every``:
    seconds between INFO lines (None: no lines). With neither it does nothing. ``label``
    starts each line (``[NAME] ``: the library, when a run has several)."""

    def __init__(
        self, *, live: TextIO | None = None, every: float | None = None, label: str = "", clock: Clock = time.monotonic
    ):
        self.live = live
        self.label = label
        self.every = every
        self.clock = clock
        self.started = clock()
        self._phase: _Phase | None = None
        self._last_log = self.started  # nothing in the run's first interval
        self._last_draw = -DRAW_EVERY
        # The earliest moment a count may show something: counts come once per
        # folder and per link (tens of thousands a run), so between two
        # moments a count is two assignments and a clock read.
        self._due = 0.0
        self._drawn = False
        self._width = shutil.get_terminal_size().columns - 1 if live is not None else 0
        self._hooked: list[logging.Handler] = []
        if live is not None:
            self._hook_log()

    @property
    def on(self) -> bool:
        return self.live is not None or self.every is not None

    # -- what the phases report

    def begin(self, name: str, total: int | None = None, *, approx: bool = False, counted: bool = True) -> None:
        """A phase starts (the same name again goes on counting, with the new total)."""
        if not self.on:
            return
        phase = self._phase
        if phase is not None and phase.name == name:
            phase.total, phase.approx = total, approx
            return
        self._end_phase()
        self._phase = _Phase(name, total, approx, 0 if counted else None)
        self._show(force=True)

    def count(self, done: int, files: int | None = None) -> None:
        """How far the current phase is (``files``: seen so far, while listing)."""
        phase = self._phase
        if phase is None:
            return
        phase.done = done
        phase.files = files
        if self.clock() >= self._due:
            self._show()

    def lister(self, total: int | None, dirs: int = 0, files: int = 0) -> Callable[[int, int], None] | None:
        """A scanner's hook: its (folders listed, files seen), counted on from ``dirs`` and ``files``."""
        if not self.on:
            return None

        def listed(more_dirs: int, more_files: int) -> None:
            phase = self._phase
            if phase is None or phase.name != LISTING or phase.total != total:
                self.begin(LISTING, total, approx=True)
            self.count(dirs + more_dirs, files + more_files)

        return listed

    def note(self, text: str) -> None:
        """A line of its own on the terminal (rclone's re-read logs its own INFO lines)."""
        if self.live is not None:
            self._draw(text)

    def close(self) -> None:
        """The run ended: the last phase's final figure, and the terminal's line cleared."""
        self._end_phase()
        self._phase = None
        if self._drawn and self.live is not None:
            self.live.write("\r\033[K")
            self.live.flush()
            self._drawn = False
        for handler in self._hooked:
            handler.removeFilter(self._clear_before_log)
        self._hooked = []

    # -- machinery

    def _end_phase(self) -> None:
        phase = self._phase
        if phase is None:
            return
        if phase.told:
            log.info("progress: %s%s", self.label, phase.text())  # the final figure, as the summary counts it
            self._last_log = self.clock()
        if self.live is not None and phase.done is not None:
            self._draw(phase.text())

    def _show(self, force: bool = False) -> None:
        phase = self._phase
        if phase is None:
            return
        now = self.clock()
        # A counted phase is told with its first count, not as "0" at its start.
        if self.every is not None and not (force and phase.done is not None) and now - self._last_log >= self.every:
            self._last_log = now
            phase.told = phase.done is not None  # a phase without a count has no final figure
            log.info("progress: %s%s", self.label, phase.text())
        if self.live is not None and (force or now - self._last_draw >= DRAW_EVERY):
            self._last_draw = now
            self._draw(phase.text())
        self._due = min(
            self._last_log + self.every if self.every is not None else float("inf"),
            self._last_draw + DRAW_EVERY if self.live is not None else float("inf"),
        )

    def _draw(self, text: str) -> None:
        assert self.live is not None
        self.live.write("\r" + (self.label + text)[: self._width] + "\033[K")
        self.live.flush()
        self._drawn = True

    def _hook_log(self) -> None:
        """A log line on the same terminal first clears the live line (the next count redraws it)."""
        for handler in logging.getLogger().handlers:
            if getattr(handler, "stream", None) is self.live:
                handler.addFilter(self._clear_before_log)
                self._hooked.append(handler)

    def _clear_before_log(self, record: logging.LogRecord) -> bool:
        if self._drawn and self.live is not None:
            self.live.write("\r\033[K")
            self._drawn = False
            self._last_draw = -DRAW_EVERY
            self._due = 0.0
        return True


QUIET = Meter()  # reports nothing: the default of every run that asked for no progress
