"""The management pages' parts without a browser: the configuration view, the log page, the charts,
the actions' answers, the guard over the new routes, and the Chinese catalog (issue 31 items 2, 3, 5).

The app is graylink's own Flask app on a real database that a real ``graylink reconcile`` made.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.catalogs import messages, untranslated

from conftest import REPO, Library

PORT = 8765
HOST = {"Host": f"127.0.0.1:{PORT}"}
EMBY_KEY = "emby-key-0123456789abcdef"
PLEX_TOKEN = "plex-token-zyxwvut"
WEB_TOKEN = "web-token-secret-42"
ALERT_URL = "tgram://123456789:AAbbCCddEEff/987654"


def app_for(lib: Library, **sections: dict[str, str]) -> Any:
    from graylink.config import load_config
    from graylink.web.app import WebContext, create_app

    web = {"listen": f"127.0.0.1:{PORT}", **sections.pop("web", {})}
    lib.write_ini(web=web, **sections)
    assert lib.run("reconcile").returncode in (0, 1)
    config = load_config(str(lib.ini), environ={})
    woken: list[int] = []
    client = create_app(WebContext(config=lambda: config, wake=lambda: woken.append(1))).test_client()
    client.woken = woken  # type: ignore[attr-defined]
    return client


def page(client: Any, path: str, **headers: str) -> str:
    answer = client.get(path, headers={**HOST, **headers})
    assert answer.status_code == 200, answer.data
    return str(answer.data.decode("utf-8"))


# ------------------------------------------------------------------ configuration


def test_the_configuration_page_masks_every_secret_and_says_where_each_value_came_from(
    lib: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib.add("TV/Show/e1.mkv")
    client = app_for(
        lib,
        emby={"url": "http://127.0.0.1:9", "api_key": EMBY_KEY},
        plex={"url": "http://127.0.0.1:9", "token": PLEX_TOKEN},
        mount={"rclone_rc_pass": "rc-password-123"},
        alerts={"urls": ALERT_URL},
    )
    monkeypatch.setenv("GRAYLINK_SCAN_WORKERS", "3")
    with lib.ini.open("a") as ini:  # a named server: its secret masked as well
        ini.write(f"\n[emby tv]\nurl = http://127.0.0.1:9\napi_key = {EMBY_KEY}-tv\n")
    from graylink.config import load_config
    from graylink.web.app import WebContext, create_app

    config = load_config(str(lib.ini), environ={})
    client = create_app(WebContext(config=lambda: config, wake=lambda: None)).test_client()
    html = page(client, "/config")
    assert re.search(r'data-key="emby tv.api_key">.*?<td class="value">••••••</td>.*?origin-file', html, re.S)
    for secret in (EMBY_KEY, PLEX_TOKEN, "rc-password-123", ALERT_URL, "AAbbCCddEEff", "123456789"):
        assert secret not in html
    rows = dict(re.findall(r'data-key="([\w.]+)">.*?<td class="origin-(\w+)"', html, re.S))
    assert rows["paths.source"] == "file" and rows["emby.api_key"] == "file"
    assert rows["scan.workers"] == "environment"
    assert rows["scan.interval"] == "default"
    assert re.search(r'data-key="emby.api_key">.*?<td class="value">••••••</td>', html, re.S)
    assert re.search(r'data-key="web.token">.*?<td class="value"></td>', html, re.S)  # not set: empty, not masked
    assert re.search(r'data-key="scan.interval">.*?<td class="value">5m</td>', html, re.S)


# ------------------------------------------------------------------ log


def test_the_log_page_shows_the_log_file_with_secrets_scrubbed(lib: Library) -> None:
    log_file = lib.root / "graylink.log"
    lines = [
        "2026-01-01 00:00:00 INFO service started",
        f"2026-01-01 00:00:01 ERROR emby: http://127.0.0.1:8096/Items?api_key={EMBY_KEY} refused",
        "2026-01-01 00:00:02 ERROR plex answered for token=abcdef123456 (X-Plex-Token: zzzz99998888)",
        "2026-01-01 00:00:03 ERROR header Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.secret",
        f"2026-01-01 00:00:04 ERROR alert to {ALERT_URL} failed",
        "2026-01-01 00:00:05 ERROR rc at http://user:pw-9876@127.0.0.1:5572/ refused",
    ]
    log_file.write_text("\n".join(lines) + "\n")
    client = app_for(
        lib,
        emby={"url": "http://127.0.0.1:9", "api_key": EMBY_KEY},
        alerts={"urls": ALERT_URL},
        log={"file": str(log_file)},
    )
    html = page(client, "/log")
    for secret in (EMBY_KEY, "abcdef123456", "zzzz99998888", "eyJhbGciOiJIUzI1NiJ9", "AAbbCCddEEff", "pw-9876"):
        assert secret not in html, secret
    assert "service started" in html and html.count("***") >= 6
    assert str(log_file) in html


def test_without_a_log_file_the_page_shows_the_services_last_lines_from_memory(lib: Library) -> None:
    from graylink.service.logsetup import configure_logging

    client = app_for(lib, emby={"url": "http://127.0.0.1:9", "api_key": EMBY_KEY})
    configure_logging(None, 0)
    try:
        logging.getLogger("graylink.test").info("a line for the ring with key %s", EMBY_KEY)
        html = page(client, "/log")
    finally:
        from graylink.system.logring import RING

        logging.getLogger().removeHandler(RING)
    assert "a line for the ring with key ***" in html and EMBY_KEY not in html
    assert "from: memory" in html


# ------------------------------------------------------------------ charts


def test_the_status_page_charts_the_last_day_from_the_database(lib: Library) -> None:
    from graylink.store import history
    from graylink.store.db import Store
    from graylink.web.charts import day_charts

    lib.add("TV/Show/e1.mkv")
    client = app_for(lib, emby={"url": "http://127.0.0.1:9", "api_key": EMBY_KEY})
    now = time.time()
    with Store(str(lib.database)) as store:
        with store.atomic():
            for hours_ago, counts in ((3, {"create": 40, "prune": 5}), (1, {"repair": 7})):
                history.record_cycle(store, {"at": now - hours_ago * 3600, "counts": counts, "exit_code": 0})
            store.execute(
                "INSERT OR REPLACE INTO server_change (server, path, expect, state, linked_at, sent_at, confirmed_at) "
                "VALUES ('emby', ?, 'present', 'confirmed', ?, ?, ?)",
                (b"/x/a.mkv", now - 7200 - 90, now - 7200 - 80, now - 7200),
            )
            hour = int(now // 3600)
            store.set_meta("drive.calls_hourly", json.dumps({str(hour): 12, str(hour - 30): 99}))
        charts = {c.key: c for c in day_charts(store, drive=True, servers=True, now=now)}
    # The first run's link now, 40 made and 5 pruned three hours ago, 7 repaired one hour ago.
    assert charts["links"].legend == "48 created or repaired, 5 pruned"
    assert charts["links"].svg.count("<rect") == 4
    assert charts["latency"].legend == "1 changes confirmed; median 2 min"
    assert charts["drive"].legend == "12 calls"  # the hour of two days ago is not the last day
    html = page(client, "/")
    assert html.count("<svg") == 2  # links and latency: no Drive feed configured
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing from another host: works offline


# ------------------------------------------------------------------ actions and the guard


def test_actions_answer_what_was_queued_or_why_not(lib: Library) -> None:
    lib.add("TV/Show/e1.mkv")
    client = app_for(lib)
    json_post = {**HOST, "Content-Type": "application/json"}
    answer = client.post("/api/brake/release", data=json.dumps({"prunes": 3}), headers=json_post)
    assert answer.status_code == 409 and answer.json["prunes"] == 0
    assert client.post("/api/brake/release", data="{}", headers=json_post).status_code == 400
    assert client.post("/api/deliver", data="{}", headers=json_post).status_code == 409  # no server
    body = json.dumps({"path": "TV/Show", "server": "emby"})
    assert client.post("/api/resend", data=body, headers=json_post).status_code == 400
    assert client.woken == []


def test_the_guard_covers_the_new_routes(lib: Library) -> None:
    lib.add("TV/Show/e1.mkv")
    client = app_for(lib, emby={"url": "http://127.0.0.1:9", "api_key": EMBY_KEY}, web={"token": WEB_TOKEN})
    auth = {**HOST, "Authorization": f"Bearer {WEB_TOKEN}"}
    for path in ("/library", "/config", "/log"):
        assert client.get(path, headers=HOST).status_code == 401
        assert client.get(path, headers=auth).status_code == 200
    body = json.dumps({"path": "TV/Show", "server": "emby"})
    for route in ("/api/resend", "/api/deliver", "/api/brake/release"):
        assert client.post(route, data=body, headers={**auth, "Content-Type": "text/plain"}).status_code == 415
        cross = {**auth, "Content-Type": "application/json", "Origin": "http://127.0.0.1:1"}
        assert client.post(route, data=body, headers=cross).status_code == 403
    assert client.woken == []
    conn = sqlite3.connect(lib.database)
    try:
        assert (
            conn.execute(
                "SELECT count(*) FROM emby_queue WHERE path = ?", (f"{lib.target}/TV/Show".encode(),)
            ).fetchone()[0]
            == 0
        )
    finally:
        conn.close()
    same = {**auth, "Content-Type": "application/json", "Origin": f"http://127.0.0.1:{PORT}"}
    assert client.post("/api/resend", data=body, headers=same).status_code == 202
    assert client.woken == [1]


def test_a_folder_name_that_is_not_utf8_is_browsed_by_its_bytes(lib: Library) -> None:
    lib.add(b"TV/Caf\xe9/e1.mkv")
    client = app_for(lib)
    html = page(client, "/library?path=TV")
    assert "library?path=TV/Caf%E9" in html and "Caf\\xe9/" in html
    assert 'data-file="e1.mkv" data-state="linked"' in page(client, "/library?path=TV/Caf%E9")


# ------------------------------------------------------------------ languages


def test_every_message_of_the_pages_is_translated_into_chinese() -> None:
    from graylink.web.i18n import CHINESE, catalog_path

    # The pages' messages; graylink init's have their own catalog (tests/test_init_zh.py).
    found = messages("graylink/web")
    assert len(found) > 100
    problems = untranslated(found, catalog_path(CHINESE))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh_CN"),
        ("zh", "zh_CN"),
        ("zh-Hans-CN", "zh_CN"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        ("fr-FR,fr;q=0.9", "en"),
        ("", "en"),
        ("fr,zh-CN;q=0.5", "zh_CN"),
    ],
)
def test_the_language_follows_accept_language(header: str, locale: str) -> None:
    from werkzeug.datastructures import LanguageAccept
    from werkzeug.http import parse_accept_header

    from graylink.web.i18n import negotiate

    assert negotiate(list(parse_accept_header(header, LanguageAccept))) == locale


def test_a_fresh_wheel_carries_the_catalog_and_the_templates(tmp_path: Path) -> None:
    """What ``pip install .`` installs: the .po ships and is compiled at first use (no .mo to build)."""
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("graylink-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "graylink/web/locale/zh_CN/LC_MESSAGES/graylink.po" in names
    assert "graylink/cli/locale/zh_CN/LC_MESSAGES/graylink.po" in names  # graylink init's words
    for template in ("base", "status", "library", "config", "log"):
        assert f"graylink/web/templates/{template}.html.j2" in names
    metadata = next(n for n in names if n.endswith("METADATA"))
    assert re.search(r"^Requires-Dist: Babel", zipfile.ZipFile(wheel).read(metadata).decode(), re.M)
