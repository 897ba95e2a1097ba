"""The result of one ``graylink doctor`` check, shared by every part that checks something."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One line of ``graylink doctor``.

    ``ok`` false with ``warn`` true is a warning: shown with its hint, but it
    does not make doctor fail, because graylink still works (e.g. the server
    would ignore updates for one folder).
    """

    name: str
    ok: bool
    message: str
    hint: str = ""
    warn: bool = False

    @property
    def failed(self) -> bool:
        return not self.ok and not self.warn

    @property
    def status(self) -> str:
        return "ok" if self.ok else "warn" if self.warn else "fail"
