"""What a poll did, and how a feed hands its writes to the poll's transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from graylink.db import Mark

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
    note: str = ""  # "started", "token reset"


def collapse_root(marks: set[Mark]) -> list[Mark]:
    """The marks in a stable order; a whole-source mark swallows the rest."""
    if any(m.path == b"" and m.recursive for m in marks):
        return [Mark(b"", MARK_REASON, recursive=True)]
    return sorted(marks, key=lambda m: (m.path, not m.recursive))
