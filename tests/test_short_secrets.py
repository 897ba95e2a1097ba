"""A secret of one to three characters (a test value, a mistyped password) is masked where it
stands as a value, never inside ordinary words; a long one is masked wherever it appears; doctor
warns that a short one is weak."""

from __future__ import annotations

import logging

import pytest

from graylink.alerts.deliver import _Scrub, _secret_parts
from graylink.config import load_config
from graylink.notify.http import scrub
from graylink.web.logview import scrub as scrub_line
from graylink.web.logview import secrets_of

from conftest import Library

LONG = "emby-key-made-up-0d41d8cd98f00b2"
LINE = "refreshed 3 folders of Anime after a walk; marked as sent"


@pytest.mark.parametrize("secret", ["a", "e", "as", "of"])
def test_a_short_secret_does_not_mangle_words(secret: str) -> None:
    assert scrub(LINE, secret) == LINE


@pytest.mark.parametrize(
    "text",
    [
        "POST http://127.0.0.1:8096/Library/Refresh?api_key={s} answered 401",
        "GET /library/sections?X-Plex-Token={s}&x=1 refused",
        "header X-Emby-Token: {s} was refused",
        'Authorization: MediaBrowser Token="{s}"',
        "rc at http://user:{s}@127.0.0.1:5572/ refused",
        '{{"api_key": "{s}"}}',
    ],
)
@pytest.mark.parametrize("secret", ["a", "xy", "k9z", LONG])
def test_a_secret_standing_as_a_value_is_masked_short_or_long(text: str, secret: str) -> None:
    shown = scrub(text.format(s=secret), secret)
    assert "***" in shown
    assert shown == text.format(s="***")


def test_a_long_secret_is_masked_anywhere_even_inside_words() -> None:
    assert scrub(f"seen x{LONG}y and {LONG}", LONG) == "seen x***y and ***"


def test_the_log_page_masks_a_short_key_as_a_value_and_leaves_words_alone(lib: Library) -> None:
    lib.write_ini(emby={"url": "http://127.0.0.1:9", "api_key": "ab"})
    config = load_config(str(lib.ini))
    secrets = secrets_of(config)
    assert scrub_line("2026-01-01 INFO about a cab", secrets) == "2026-01-01 INFO about a cab"
    assert scrub_line("GET /Items?q=ab&x=1", secrets) == "GET /Items?q=***&x=1"


def test_apprise_log_lines_mask_a_short_password_in_the_url() -> None:
    url = "mailto://user:pw@example.com"
    record = logging.LogRecord("apprise", logging.INFO, __file__, 1, "auth pass=pw; pwd ok", (), None)
    _Scrub(_secret_parts(url)).filter(record)
    assert record.getMessage() == "auth pass=***; pwd ok"


def test_doctor_warns_that_a_short_secret_is_weak(lib: Library) -> None:
    lib.write_ini(emby={"url": "http://127.0.0.1:9", "api_key": "a"}, web={"token": "bc"})
    result = lib.run("doctor")
    assert "api_key" in result.stdout and "weak" in result.stdout, result.stdout
    assert "[web] token" in result.stdout
    line = next(x for x in result.stdout.splitlines() if "weak" in x)
    assert "bc" not in line  # the warning never shows the value


def test_doctor_says_nothing_of_a_long_secret(lib: Library) -> None:
    lib.write_ini(emby={"url": "http://127.0.0.1:9", "api_key": LONG})
    assert "weak" not in lib.run("doctor").stdout
