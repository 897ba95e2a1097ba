"""The result of one ``graylink doctor`` check, shared by every part that checks something.

A check's message is English (``graylink doctor``, the log and ``--json`` stay
English, issue 31 item 5). The checks that ``graylink init`` shows build their
messages with :func:`said` around an :func:`N_`-marked msgid, so init can show
them in the terminal's language from its catalog (``graylink/cli/locale``).
"""

from __future__ import annotations

from collections.abc import Callable
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


def N_(message: str) -> str:  # noqa: N802 (gettext's name for it, which pybabel extracts by default)
    """Marks a message for extraction (``pybabel extract`` finds ``N_``) and returns it untouched."""
    return message


class Said(str):
    """A check's message (or hint) in English, as ``graylink doctor`` and the log show it, that still
    knows its msgid and values, so ``graylink init`` can say it in the terminal's language
    (:func:`translated`). Everything else sees a plain ``str``."""

    msgid: str
    values: dict[str, object]

    def __new__(cls, msgid: str, **values: object) -> Said:
        made = super().__new__(cls, msgid % values if values else msgid)
        made.msgid, made.values = msgid, values
        return made


def said(msgid: str, **values: object) -> str:
    """``msgid`` (marked with :func:`N_`) filled with ``values`` (``%(name)s``): English, translatable later."""
    return Said(msgid, **values)


def translated(text: str, gettext: Callable[[str], str]) -> str:
    """``text`` in ``gettext``'s language when it is a :class:`Said` (its values too); else as it is."""
    if not isinstance(text, Said):
        return text
    values = {k: translated(v, gettext) if isinstance(v, str) else v for k, v in text.values.items()}
    return gettext(text.msgid) % values if values else gettext(text.msgid)
