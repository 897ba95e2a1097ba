"""What a poll did, and how a feed hands its writes to the poll's transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from graylink.store.db import Mark

log = logging.getLogger("graylink.drive")

MARK_REASON = "drive"

# A feed's writes for one step (cursor, item record), returning that step's
# marks. The writer runs the step and writes the marks in one transaction, so
# that a kill loses neither; it returns how many marks it wrote.
Step = Callable[[], list[Mark]]
Writer = Callable[[Step], int]


@dataclass
class Polled:
    events: int = 0  # changes or activities handled for the first time
    marks: int = 0  # dirty marks written
    lookups: int = 0  # files.get calls made to place them
    seed_calls: int = 0  # files.list calls made to list folders for the item record (drive.seed)
    note: str = ""  # "started", "token reset"


def collapse_root(marks: set[Mark]) -> list[Mark]:
    """The marks in a stable order; a whole-source mark swallows the rest."""
    if any(m.path == b"" and m.recursive for m in marks):
        return [Mark(b"", MARK_REASON, recursive=True)]
    return sorted(marks, key=lambda m: (m.path, not m.recursive))


@dataclass
class Unplaced:
    """The changes of one step that no folder can be found for.

    Each marks the whole source, and one WARNING tells them all: emptying a
    Drive trash of a thousand items the feed never met would otherwise write
    a thousand lines for one full walk."""

    count: int = 0
    first: str = ""

    def add(self, why: str) -> None:
        self.count += 1
        self.first = self.first or why

    def marks(self) -> set[Mark]:
        return {Mark(b"", MARK_REASON, recursive=True)} if self.count else set()

    def tell(self) -> None:
        if not self.count:
            return
        more = f" and {self.count - 1} more" if self.count > 1 else ""
        log.warning("drive feed: cannot place %s%s: marking the whole source dirty", self.first, more)
