"""Counts in words, shared by every layer that prints one ("1 file", "2 files")."""

from __future__ import annotations


def plural(count: int, one: str, many: str | None = None) -> str:
    """``one`` for a count of 1, else ``many`` (``one`` + "s" unless given)."""
    return one if count == 1 else (many if many is not None else one + "s")


def count(n: int, one: str, many: str | None = None) -> str:
    """``n`` and its noun: ``count(1, "file")`` is "1 file", ``count(3, "file")`` "3 files"."""
    return f"{n} {plural(n, one, many)}"
