"""The web face's languages: English (the msgids themselves) and Simplified Chinese.

gettext catalogs through Babel: ``graylink/web/locale/zh_CN/LC_MESSAGES/graylink.po``
ships with the package and is compiled in memory (Babel's ``read_po`` and
``write_mo``) the first time a page asks for it, so a plain ``pip install .``
needs no build step and no compiled ``.mo`` in the tree (docs/web.md,
Languages). Templates use Jinja2's i18n extension (``_()``, ``ngettext()``,
new-style: values are passed as keywords and escaped); Python code that
builds a page's words takes a :class:`Words`. Log lines, JSON and metrics stay English.
"""

from __future__ import annotations

import gettext
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "graylink"
DEFAULT = "en"
CHINESE = "zh_CN"
LANGUAGES = (DEFAULT, CHINESE)


def catalog_path(locale: str) -> Path:
    return LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


@lru_cache(maxsize=4)
def translations(locale: str) -> gettext.NullTranslations:
    """The catalog of ``locale`` (English: none needed), compiled once per process."""
    if locale not in LANGUAGES or locale == DEFAULT:
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with catalog_path(locale).open("rb") as handle:
        catalog = read_po(handle, locale=locale, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def negotiate(accepted: list[tuple[str, float]]) -> str:
    """The language for an ``Accept-Language`` (best first): Chinese when asked before English, else English.

    Any ``zh`` tag (zh, zh-CN, zh-Hans, zh-SG, zh-TW, ...) reads the Simplified
    Chinese pages: graylink has no other Chinese."""
    for tag, quality in accepted:
        if quality <= 0:
            continue
        primary = tag.replace("_", "-").split("-")[0].lower()
        if primary == "zh":
            return CHINESE
        if primary == "en":
            return DEFAULT
    return DEFAULT


@dataclass(frozen=True)
class Words:
    """gettext for the Python side of a page (new-style: ``%(name)s`` filled from keywords)."""

    catalog: gettext.NullTranslations
    locale: str = DEFAULT

    def gettext(self, message: str, **values: Any) -> str:
        text = self.catalog.gettext(message)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, num: int, **values: Any) -> str:
        text = self.catalog.ngettext(singular, plural, num)
        return text % {"num": num, **values}


ENGLISH = Words(gettext.NullTranslations())


def words(locale: str) -> Words:
    return Words(translations(locale), locale) if locale != DEFAULT else ENGLISH
