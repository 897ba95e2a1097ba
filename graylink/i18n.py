"""Languages every face shares: English (the msgids themselves) and Simplified Chinese.

Each face keeps its words in its own gettext catalog beside its code (the web
pages in ``graylink/web/locale``, ``graylink init`` in ``graylink/cli/locale``;
domain ``graylink``). The ``.po`` ships with the package and is compiled in
memory by Babel (``read_po``, ``write_mo``) the first time it is needed, so a
plain ``pip install .`` needs no build step and no ``.mo`` in the tree. What
chooses the language differs by face: the browser's ``Accept-Language``
(:func:`negotiate`) or the terminal's locale (:func:`from_environ`). Log lines,
JSON and metrics stay English.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

DOMAIN = "graylink"
DEFAULT = "en"
CHINESE = "zh_CN"
LANGUAGES = (DEFAULT, CHINESE)
# gettext's order (Python's gettext.find, GNU gettext): the first of these that is set names the languages.
LOCALE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def catalog_path(locale_dir: Path, locale: str) -> Path:
    return locale_dir / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


@lru_cache(maxsize=8)
def translations(locale_dir: Path, locale: str) -> gettext.NullTranslations:
    """The catalog of ``locale`` under ``locale_dir`` (English: none needed), compiled once per process."""
    if locale not in LANGUAGES or locale == DEFAULT:
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with catalog_path(locale_dir, locale).open("rb") as handle:
        catalog = read_po(handle, locale=locale, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def _language(tag: str) -> str | None:
    """graylink's language for one tag: any ``zh`` reads Simplified Chinese (graylink has no other)."""
    primary = tag.replace("_", "-").split("-")[0].split(".")[0].split("@")[0].lower()
    if primary == "zh":
        return CHINESE
    if primary == "en":
        return DEFAULT
    return None


def negotiate(accepted: list[tuple[str, float]]) -> str:
    """The language for an ``Accept-Language`` (best first): Chinese when asked before English, else English."""
    for tag, quality in accepted:
        if quality > 0 and (language := _language(tag)) is not None:
            return language
    return DEFAULT


def from_environ(environ: Mapping[str, str]) -> str:
    """The terminal's language, read as gettext reads it: the first set variable of ``LANGUAGE``,
    ``LC_ALL``, ``LC_MESSAGES``, ``LANG`` lists languages (``LANGUAGE`` may hold several, ``:``
    between them); the first one graylink speaks wins, and ``C`` / ``POSIX`` ends the list (English)."""
    for name in LOCALE_VARIABLES:
        value = environ.get(name, "")
        if not value:
            continue
        for tag in value.split(":"):
            if tag in ("C", "POSIX") or tag.startswith("C."):
                return DEFAULT
            if tag and (language := _language(tag)) is not None:
                return language
        return DEFAULT
    return DEFAULT


@dataclass(frozen=True)
class Words:
    """gettext for Python code (new-style: ``%(name)s`` filled from keywords)."""

    catalog: gettext.NullTranslations
    locale: str = DEFAULT

    def gettext(self, message: str, **values: Any) -> str:
        text = self.catalog.gettext(message)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, num: int, **values: Any) -> str:
        text = self.catalog.ngettext(singular, plural, num)
        return text % {"num": num, **values}


ENGLISH = Words(gettext.NullTranslations())


def words(locale_dir: Path, locale: str) -> Words:
    return Words(translations(locale_dir, locale), locale) if locale != DEFAULT else ENGLISH
