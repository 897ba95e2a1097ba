"""The result of one ``graylink doctor`` check."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str
    hint: str = ""
