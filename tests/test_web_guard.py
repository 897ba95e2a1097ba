"""The web face under attack (issue 26): forged log lines, cross-site requests, rebinding, bad bodies.

A real ``reconcile --loop`` with its waitress server on a loopback port; the
attacks are what a client, or a page in the user's browser, can send.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from service_support import Loop, linked, wait_for
from web_support import TOKEN, WebLoop, free_port

from tests.test_web import arr_body

from conftest import Library


@pytest.fixture
def face(lib: Library, loop_of: Callable[[], Loop]) -> Callable[..., WebLoop]:
    """A loop with its web face; a walk only every hour, so what gets linked here a request triggered."""

    def start(token: str = TOKEN, **web_keys: str) -> WebLoop:
        port = free_port()
        keys = {"listen": f"127.0.0.1:{port}", "arr_path_map": f"/tv={lib.source}/TV,/movies={lib.source}/Movies"}
        if token:
            keys["token"] = token
        lib.write_ini(scan={"interval": "1h", "workers": "2"}, web={**keys, **web_keys})
        running = WebLoop(lib, loop_of(), port, token)
        running.wait_up()
        return running

    return start

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) ")

# ------------------------------------------------------------------ item 10: forged log lines


def test_a_newline_in_a_requested_path_stays_on_its_log_line(lib: Library, face: Callable[..., WebLoop]) -> None:
    lib.add("TV/Show/e1.mkv")
    w = face()
    wait_for("the first walk", linked(lib, "TV/Show/e1.mkv"), w.loop.proc)
    forged = "TV/x\r\n2026-01-01 00:00:00 ERROR forged by api"
    assert w.post("/api/reconcile", {"paths": [forged]}).status_code == 202
    payload = json.loads(arr_body("sonarr_download"))
    payload["series"]["path"] = "/tv/y\r\n2026-01-01 00:00:00 ERROR forged by sonarr"
    assert w.post("/api/webhook/sonarr", json.dumps(payload)).status_code < 300
    w.loop.wait_log("forged by api")
    w.loop.wait_log("forged by sonarr")
    text = w.loop.text()
    assert "\r" not in text
    for line in text.splitlines():
        assert LOG_LINE.match(line) or line.startswith((" ", "Traceback")), f"not the logger's line: {line!r}"
    told = [line for line in text.splitlines() if "forged" in line]
    assert len(told) == 2 and all(" INFO " in line and "\\x0d\\x0a2026-01-01" in line for line in told), told


def test_both_log_formats_escape_control_characters_of_every_value() -> None:
    import logging

    from graylink.service.logsetup import JsonFormatter, TextFormatter

    value = "a\nb\rc\x1b[2Jd\u2028e"
    record = logging.LogRecord("graylink.web", logging.INFO, __file__, 1, "marked %s", (value,), None)
    text = TextFormatter("%(levelname)s %(message)s").format(record)
    assert text == "INFO marked a\\x0ab\\x0dc\\x1b[2Jd\\u2028e"
    shown = json.loads(JsonFormatter().format(record))["message"]
    assert shown == "marked a\\x0ab\\x0dc\\x1b[2Jd\\u2028e" and "\n" not in shown
