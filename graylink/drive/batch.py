"""What one poll of a feed found, before the feed commits it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from graylink.db import Mark

MARK_REASON = "drive"


@dataclass
class Batch:
    """A poll's marks plus its own writes (cursor, item record), run by ``commit``
    inside the same transaction as the marks, so that a kill loses neither."""

    events: int  # changes or activities handled for the first time
    marks: list[Mark]
    commit: Callable[[], None]
    lookups: int = 0  # files.get calls made to place them


def collapse_root(marks: set[Mark]) -> list[Mark]:
    """The marks in a stable order; a whole-source mark swallows the rest."""
    if any(m.path == b"" and m.recursive for m in marks):
        return [Mark(b"", MARK_REASON, recursive=True)]
    return sorted(marks, key=lambda m: (m.path, not m.recursive))
