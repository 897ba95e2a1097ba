"""The web face's languages: English (the msgids themselves) and Simplified Chinese.

The pages' words are in ``graylink/web/locale/zh_CN/LC_MESSAGES/graylink.po``,
loaded with the machinery every face shares (:mod:`graylink.i18n`: compiled in
memory at first use, docs/web.md, Languages); the language follows the
browser's ``Accept-Language``. Templates use Jinja2's i18n extension (``_()``,
``ngettext()``, new-style: values are passed as keywords and escaped); Python
code that builds a page's words takes a :class:`Words`. Log lines, JSON and
metrics stay English.
"""

from __future__ import annotations

import gettext
from pathlib import Path

from graylink import i18n
from graylink.i18n import CHINESE, DEFAULT, DOMAIN, ENGLISH, LANGUAGES, Words, negotiate

__all__ = ["CHINESE", "DEFAULT", "DOMAIN", "ENGLISH", "LANGUAGES", "LOCALE_DIR", "Words", "negotiate"]

LOCALE_DIR = Path(__file__).resolve().parent / "locale"


def catalog_path(locale: str) -> Path:
    return i18n.catalog_path(LOCALE_DIR, locale)


def translations(locale: str) -> gettext.NullTranslations:
    """The pages' catalog of ``locale`` (English: none needed), compiled once per process."""
    return i18n.translations(LOCALE_DIR, locale)


def words(locale: str) -> Words:
    return i18n.words(LOCALE_DIR, locale)
