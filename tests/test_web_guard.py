"""The web face under attack (issue 26): forged log lines, cross-site requests, rebinding, bad bodies.

A real ``reconcile --loop`` with its waitress server on a loopback port; the
attacks are what a client, or a page in the user's browser, can send.
"""

from __future__ import annotations

import html
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from service_support import Loop, linked, wait_for
from web_support import TOKEN, WebLoop, free_port

from tests.test_web import arr_body, marks

from conftest import Library, links_in


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


# ------------------------------------------------------------------ item 1: cross-site requests from a page


class AttackerSite:
    """Another origin on loopback (127.0.0.1, another port) serving one page that posts to the face."""

    def __init__(self, page: str) -> None:
        body = page.encode("utf-8")

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def attack_page(face_url: str) -> str:
    """What a hostile page can send without asking (no CORS preflight), and one JSON fetch that needs one."""
    sonarr = json.loads(arr_body("sonarr_download"))
    sonarr_text = json.dumps(sonarr)
    # A text/plain form whose one field, name=value, reads as the JSON payload.
    field_name, field_value = sonarr_text[:-1] + ', "pad": "', '"}'
    return f"""<!doctype html><html><body>
<iframe name="sink"></iframe>
<form id="f" method="POST" action="{face_url}/api/webhook/sonarr" enctype="text/plain" target="sink">
<input type="hidden" name='{html.escape(field_name, quote=True)}' value='{html.escape(field_value, quote=True)}'>
</form>
<form id="g" method="POST" action="{face_url}/api/reconcile" target="sink">
<input type="hidden" name="paths" value="TV/Show">
</form>
<script>
const face = {json.dumps(face_url)};
const plain = {{method: "POST", mode: "no-cors", credentials: "include", headers: {{"Content-Type": "text/plain"}}}};
async function attack() {{
  const tries = [
    fetch(face + "/api/webhook/sonarr", {{...plain, body: {json.dumps(sonarr_text)}}}),
    fetch(face + "/api/reconcile", {{...plain, body: JSON.stringify({{paths: ["TV/Show"]}})}}),
    fetch(face + "/api/webhook", {{...plain, body: JSON.stringify({{paths: ["TV/Show"]}})}}),
    fetch(face + "/api/reconcile", {{method: "POST", credentials: "include",
      headers: {{"Content-Type": "application/json"}}, body: JSON.stringify({{paths: ["TV/Show"]}})}}),
  ];
  for (const t of tries) {{ try {{ await t; }} catch (e) {{}} }}
  for (const id of ["f", "g"]) {{
    await new Promise(done => {{
      const sink = document.querySelector("iframe");
      sink.onload = done;
      setTimeout(done, 5000);
      document.getElementById(id).submit();
    }});
  }}
  document.title = "done";
}}
attack();
</script></body></html>"""


@pytest.mark.parametrize("token", [TOKEN, ""], ids=["token", "no-token"])
def test_a_page_on_another_origin_cannot_mark_or_reconcile(
    lib: Library, face: Callable[..., WebLoop], browser: Any, token: str
) -> None:
    lib.add("TV/Show/e1.mkv")
    lib.add("TV/Fate Zero/Season 01/Fate Zero - S01E01.mkv")
    w = face(token=token)
    wait_for("the first walk", linked(lib, "TV/Show/e1.mkv"), w.loop.proc)
    lib.add("TV/Show/e2.mkv")  # what a marked and reconciled TV/Show would link
    site = AttackerSite(attack_page(w.url))
    # With a token, the user opened the status page in this browser first: it caches the basic auth.
    credentials = {"username": "me", "password": token, "origin": w.url} if token else None
    context = browser.new_context(http_credentials=credentials)
    try:
        page = context.new_page()
        if token:
            assert page.goto(w.url + "/").status == 200  # the cached login
        page.goto(site.url)
        page.wait_for_function("document.title === 'done'", timeout=30_000)
        time.sleep(1.0)  # a mark would wake the loop at once
    finally:
        context.close()
        site.close()
    assert marks(lib) == []
    assert os.fsencode("TV/Show/e2.mkv") not in links_in(lib.target)
    assert "marked" not in w.loop.text()
    # The forms and the text/plain fetches reached the face and were refused there;
    # the JSON fetch was stopped by the browser (its preflight is not answered with CORS).
    assert w.loop.text().count("web: refused POST") == 5, w.loop.text()


def test_the_same_origin_page_and_the_arr_clients_still_post(lib: Library, face: Callable[..., WebLoop]) -> None:
    w = face()
    same = {**w.headers(), "Origin": w.url, "Sec-Fetch-Site": "same-origin"}
    assert w.post("/api/reconcile", {"paths": ["TV"]}, headers=same).status_code == 202
    # Sonarr's WebhookProxy: basic auth, application/json, no Origin.
    sonarr = requests.post(
        w.url + "/api/webhook/sonarr",
        data=arr_body("sonarr_test"),
        auth=("sonarr", TOKEN),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert sonarr.status_code == 200
    for refused in (
        {"Origin": "http://127.0.0.1:1"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
    ):
        answer = w.post("/api/reconcile", {"paths": ["TV/Show"]}, headers={**w.headers(), **refused})
        assert answer.status_code in (403, 415) and answer.json()["error"], refused
    assert [m for m in marks(lib) if m[0] == b"TV/Show"] == []


# ------------------------------------------------------------------ item 2: DNS rebinding


def test_a_tokenless_face_answers_only_its_own_names(lib: Library, face: Callable[..., WebLoop]) -> None:
    w = face(token="")
    port = w.port

    def ask(host: str, method: str = "GET", path: str = "/api/status") -> requests.Response:
        headers = {"Host": host, "Content-Type": "application/json"}
        body = json.dumps({"paths": ["TV"]}) if method == "POST" else None
        return requests.request(method, w.url + path, headers=headers, data=body, timeout=30)

    for host in ("attacker.example", f"attacker.example:{port}", f"127.0.0.1:{port + 1}", "127.0.0.1.nip.io"):
        for method, path in (("GET", "/api/status"), ("GET", "/"), ("GET", "/metrics"), ("POST", "/api/reconcile")):
            answer = ask(host, method, path)
            assert answer.status_code == 403, (host, path)
            assert "DNS rebinding" in answer.json()["error"] and str(lib.source) not in answer.text
    assert marks(lib) == []
    for host in (f"127.0.0.1:{port}", "127.0.0.1", f"localhost:{port}", f"[::1]:{port}", f"LOCALHOST.:{port}"):
        assert ask(host).status_code == 200, host


def test_a_face_with_a_token_answers_any_host_with_the_token(lib: Library, face: Callable[..., WebLoop]) -> None:
    w = face()
    assert w.get("/api/status", headers={**w.headers(), "Host": "graylink.example"}).status_code == 200
    assert w.get("/api/status", headers={"Host": "graylink.example"}).status_code == 401


# ------------------------------------------------------------------ item 4: malformed bodies


def test_deep_json_and_lone_surrogates_are_a_json_reason_never_a_traceback(
    lib: Library, face: Callable[..., WebLoop]
) -> None:
    w = face()
    deep = "[" * 100_000 + "]" * 100_000
    surrogate_paths = '{"paths": ["TV/\\ud800"]}'
    sonarr = json.loads(arr_body("sonarr_download"))
    sonarr["series"]["path"] = "/tv/\ud800"
    surrogate_sonarr = json.dumps(sonarr)  # ensure_ascii: "\\ud800", what a client can send
    for body in (deep, surrogate_paths):
        answer = w.post("/api/reconcile", body)
        assert answer.status_code == 400, answer.text[:200]
        assert answer.headers["Content-Type"] == "application/json" and answer.json()["error"]
    # Webhook routes answer 2xx past the token (ARCHITECTURE §2), the generic one too.
    for route, body in (("/api/webhook", deep), ("/api/webhook", surrogate_paths), ("/api/webhook/sonarr", deep)):
        answer = w.post(route, body)
        assert 200 <= answer.status_code < 300 and answer.json()["ignored"], (route, answer.text[:200])
        assert answer.headers["Content-Type"] == "application/json"
    answer = w.post("/api/webhook/radarr", deep)
    assert 200 <= answer.status_code < 300 and answer.json()["ignored"], answer.text[:200]
    # What a path Sonarr sends is answered is the payload's rule (graylink.web.arr): never a 500 page.
    answer = w.post("/api/webhook/sonarr", surrogate_sonarr)
    assert answer.status_code < 500 and answer.headers["Content-Type"] == "application/json"
    assert w.get("/api/status").status_code == 200  # the face still answers
    assert marks(lib) == []
    text = w.loop.text()
    assert "Traceback" not in text and "<!doctype" not in text.lower()


def test_an_unexpected_error_is_json_and_one_error_line(lib: Library, face: Callable[..., WebLoop]) -> None:
    w = face()
    conn = sqlite3.connect(lib.database)
    conn.execute("DROP TABLE dirty")  # a fault no route expects
    conn.commit()
    conn.close()
    answer = w.post("/api/reconcile", {"paths": ["TV"]})
    assert answer.status_code == 500 and answer.headers["Content-Type"] == "application/json"
    assert answer.json()["error"]
    w.loop.wait_log("web: POST /api/reconcile failed")
    failed = [line for line in w.loop.text().splitlines() if "/api/reconcile failed" in line]
    assert len(failed) == 1 and " ERROR " in failed[0], failed
    assert "Traceback" not in w.loop.text()
