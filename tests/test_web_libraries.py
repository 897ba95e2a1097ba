"""One web face for a service of several libraries (issue 30 item 4, issue 31's library switcher).

Two ``[library NAME]`` sections on two plain local folders. The app parts run on
graylink's own Flask app over the real databases a real ``graylink reconcile``
made (marks stay put: no loop takes them); the last test runs the real
``reconcile --loop`` as a process, with one web port and a loopback Apprise
receiver (tests/web_support.py).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from service_support import wait_for
from web_support import apprise_receiver, free_port

from conftest import REPO, links_in

TOKEN = "made-up-web-token-5678"
PORT = 8766
HOST = {"Host": f"127.0.0.1:{PORT}", "Authorization": f"Bearer {TOKEN}"}


class Two:
    """Libraries ``a`` (films) and ``b`` (series), each its own source, target and database."""

    def __init__(self, root: Path, port: int = PORT, extra: str = "", interval: str = "1s") -> None:
        self.root = root
        self.ini = root / "graylink.ini"
        for name in ("a", "b"):
            (root / f"{name}-src").mkdir()
        text = [
            f"[scan]\ninterval = {interval}\nsettle = 0s\n",
            "[mount]\ncheck_interval = 1s\n",
            f"[web]\nlisten = 127.0.0.1:{port}\ntoken = {TOKEN}\n"
            f"arr_path_map = /movies={self.source('a')}, /tv={self.source('b')}\n",
            extra,
        ]
        for name in ("a", "b"):
            text.append(
                f"[library {name}]\nsource = {self.source(name)}\ntarget = {self.target(name)}\n"
                f"database = {self.database(name)}\n"
            )
        self.ini.write_text("\n".join(text))

    def source(self, name: str) -> Path:
        return self.root / f"{name}-src"

    def target(self, name: str) -> Path:
        return self.root / f"{name}-links"

    def database(self, name: str) -> Path:
        return self.root / f"{name}.db"

    def add(self, name: str, rel: str) -> None:
        path = self.source(name) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"video")

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        argv = [sys.executable, "-m", "graylink", "-c", str(self.ini), *args]
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)

    def marks(self, name: str) -> list[tuple[str, str]]:
        with sqlite3.connect(self.database(name)) as db:
            return sorted((bytes(p).decode(), str(r)) for p, r in db.execute("SELECT path, reason FROM dirty"))

    def client(self) -> Any:
        from graylink.config import load_config
        from graylink.web.app import WebContext, create_app

        config = load_config(str(self.ini), environ={})
        return create_app(WebContext(config=lambda: config, wake=lambda: None)).test_client()


@pytest.fixture
def two(tmp_path: Path) -> Two:
    libs = Two(tmp_path)
    libs.add("a", "Film (2001)/Film.mkv")
    libs.add("b", "Show/S01/e01.mkv")
    done = libs.run("reconcile")
    assert done.returncode == 0, done.stderr
    assert set(links_in(libs.target("a"))) == {b"Film (2001)/Film.mkv"}
    assert set(links_in(libs.target("b"))) == {b"Show/S01/e01.mkv"}
    return libs


def sonarr(path: str) -> dict[str, Any]:
    return {"eventType": "Download", "series": {"path": path}, "episodeFiles": [{"relativePath": "S01/e02.mkv"}]}


def post(client: Any, route: str, doc: dict[str, Any]) -> Any:
    return client.post(route, json=doc, headers=HOST)


# ------------------------------------------------------------------ webhooks route by source


def test_a_webhook_marks_the_library_whose_source_holds_its_path(two: Two) -> None:
    client = two.client()
    answer = post(client, "/api/webhook/sonarr", sonarr("/tv/Show"))
    assert answer.status_code == 202, answer.json
    assert answer.json["library"] == "b" and answer.json["marked"] == ["Show"]
    assert two.marks("b") == [("Show", "sonarr")]
    assert two.marks("a") == []
    radarr = {"eventType": "Download", "movie": {"folderPath": "/movies/Film (2001)"}}
    assert post(client, "/api/webhook/radarr", radarr).json["library"] == "a"
    assert two.marks("a") == [("Film (2001)", "radarr")]
    # The generic webhook: an absolute path routes itself; a relative one names its library.
    answer = post(client, "/api/webhook", {"paths": [f"{two.source('b')}/Other"]})
    assert answer.status_code == 202 and answer.json["libraries"] == {"b": ["Other"]}


def test_a_path_in_no_library_is_answered_as_an_unmapped_path_and_names_the_map(
    two: Two, caplog: pytest.LogCaptureFixture
) -> None:
    client = two.client()
    with caplog.at_level(logging.WARNING):
        answer = post(client, "/api/webhook/sonarr", sonarr("/elsewhere/Show"))
    assert answer.status_code == 200, answer.json  # 2xx past auth: Sonarr would switch the webhook off
    assert answer.json["marked"] == [] and "[web] arr_path_map" in answer.json["ignored"]
    assert "[web] arr_path_map" in caplog.text and "/elsewhere/Show" in caplog.text
    assert two.marks("a") == [] and two.marks("b") == []
    relative = post(client, "/api/webhook", {"paths": ["Show"]})
    assert relative.status_code == 200 and "a, b" in relative.json["ignored"]


def test_a_webhook_ignored_in_no_library_is_counted_once_for_the_service_not_for_library_a(two: Two) -> None:
    """An ignored webhook that no library holds is the service's: /api/status, /metrics and the
    overview count it once, apart; neither library's count takes it."""
    client = two.client()
    assert post(client, "/api/webhook/sonarr", sonarr("/elsewhere/Show")).status_code == 200
    assert post(client, "/api/webhook", {"paths": ["Show"]}).status_code == 200  # relative: no library
    doc = client.get("/api/status", headers=HOST).json
    assert doc["webhooks"]["ignored"] == 2 and doc["webhooks"]["last_ignored"]["origin"] == "webhook"
    assert [doc["libraries"][name]["webhooks"]["ignored"] for name in ("a", "b")] == [0, 0]
    metrics = client.get("/metrics", headers=HOST).data.decode()
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    counted = {s.labels["library"]: s.value for s in families["graylink_webhooks_ignored"].samples}
    assert counted == {"": 2.0, "a": 0.0, "b": 0.0}
    html = client.get("/", headers=HOST).data.decode()
    assert html.count('data-count="service-webhooks-ignored"') == 1
    zh = client.get("/", headers={**HOST, "Accept-Language": "zh-CN"}).data.decode()
    assert "不属于任何媒体库" in zh
    cli = json.loads(two.run("status", "--json").stdout)  # graylink status says it the same way
    assert cli["webhooks"]["ignored"] == 2 and [cli["libraries"][n]["webhooks"]["ignored"] for n in "ab"] == [0, 0]
    assert "webhooks in no library: 2 ignored" in two.run("status").stdout


# ------------------------------------------------------------------ actions take a library


def test_an_action_acts_on_the_library_it_names_and_asks_when_none_is_named(two: Two) -> None:
    client = two.client()
    for route, doc in (
        ("/api/reconcile", {"paths": ["Show"]}),
        ("/api/deliver", {}),
        ("/api/brake/release", {"prunes": 1}),
        ("/api/resend", {"path": "Show", "server": "emby"}),
    ):
        answer = post(client, route, doc)
        assert answer.status_code == 400, (route, answer.json)
        assert "a, b" in answer.json["error"] and "library" in answer.json["error"]
    unknown = post(client, "/api/reconcile", {"paths": ["Show"], "library": "c"})
    assert unknown.status_code == 400 and "libraries: a, b" in unknown.json["error"]
    answer = post(client, "/api/reconcile", {"paths": ["Show"], "library": "b"})
    assert answer.status_code == 202 and answer.json["libraries"] == {"b": ["Show"]}
    assert two.marks("b") == [("Show", "api")] and two.marks("a") == []
    # The guard covers the new fields as every POST: another origin changes nothing.
    forged = client.post(
        "/api/reconcile",
        json={"paths": ["Film (2001)"], "library": "a"},
        headers={**HOST, "Origin": "http://127.0.0.1:9999", "Sec-Fetch-Site": "cross-site"},
    )
    assert forged.status_code == 403 and two.marks("a") == []


# ------------------------------------------------------------------ status, page, metrics


def test_status_and_the_pages_show_every_library_with_a_switcher(two: Two) -> None:
    client = two.client()
    doc = client.get("/api/status", headers=HOST).json
    assert set(doc["libraries"]) == {"a", "b"}
    assert doc["libraries"]["b"]["index"]["links"] == 1 and doc["libraries"]["b"]["source"] == str(two.source("b"))
    one = client.get("/api/status?library=b", headers=HOST).json
    assert one["library"] == "b" and one["target"] == str(two.target("b"))
    missing = client.get("/api/status?library=c", headers=HOST)
    assert missing.status_code == 404 and "a, b" in missing.json["error"]

    html = client.get("/", headers=HOST).data.decode()
    assert 'data-library="a"' in html and 'data-library="b"' in html
    assert str(two.source("a")) in html and str(two.source("b")) in html
    assert 'href="./?library=b"' in html  # the switcher: plain links, no JavaScript needed
    detail = client.get("/?library=b", headers=HOST).data.decode()
    assert str(two.source("b")) in detail and str(two.source("a")) not in detail
    assert 'href="library?library=b"' in detail  # the nav keeps the chosen library
    browser = client.get("/library?library=b", headers=HOST).data.decode()
    assert 'data-folder="Show"' in browser and "Film (2001)" not in browser
    assert "library=b&amp;path=Show" in browser
    assert '"library": "b"' in browser.replace("&#34;", '"')  # the page's actions send their library
    browser_a = client.get("/library?library=a", headers=HOST).data.decode()
    assert 'data-folder="Film (2001)"' in browser_a


def test_metrics_label_every_series_by_library(two: Two) -> None:
    body = two.client().get("/metrics", headers=HOST).data.decode()
    families = {f.name: f for f in text_string_to_metric_families(body)}
    links = [(s.labels, s.value) for s in families["graylink_links"].samples]
    assert sorted(links, key=lambda x: x[0]["library"]) == [({"library": "a"}, 1.0), ({"library": "b"}, 1.0)]
    cycles = {(s.labels["library"], s.labels["result"]) for s in families["graylink_cycles"].samples}
    assert ("a", "ok") in cycles and ("b", "ok") in cycles
    for family in families.values():
        for sample in family.samples:
            # The one series of the service itself: the webhooks no library held (library="").
            service = family.name == "graylink_webhooks_ignored" and sample.labels.get("library") == ""
            assert service or sample.labels.get("library") in ("a", "b"), sample


# ------------------------------------------------------------------ the real loop


def test_the_loop_serves_every_library_on_one_port(tmp_path: Path) -> None:
    with apprise_receiver() as receiver:
        port = free_port()
        two = Two(tmp_path, port, extra=f"[alerts]\nurls = {receiver.url}\n")
        two.add("a", "Film (2001)/Film.mkv")
        two.add("b", "Show/S01/e01.mkv")
        # A regular file where b's link belongs: a conflict, and an alert that must name b.
        (two.target("b") / "Show" / "S01").mkdir(parents=True)
        (two.target("b") / "Show" / "S01" / "e01.mkv").write_bytes(b"not a link")
        log = tmp_path / "loop.log"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "graylink", "-c", str(two.ini), "reconcile", "--loop"],
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
            env=env,
        )
        url = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        json_post = {**auth, "Content-Type": "application/json"}

        def status() -> dict[str, Any]:
            try:
                answer = requests.get(url + "/api/status", headers=auth, timeout=10)
            except requests.ConnectionError:
                return {}
            return dict(answer.json()) if answer.status_code == 200 else {}

        try:
            wait_for("film linked", lambda: set(links_in(two.target("a"))) == {b"Film (2001)/Film.mkv"}, proc)
            wait_for("both libraries in /api/status", lambda: set(status().get("libraries", {})) == {"a", "b"}, proc)
            html = requests.get(url + "/", headers=auth, timeout=10).text
            assert 'data-library="a"' in html and 'data-library="b"' in html

            metrics = requests.get(url + "/metrics", headers=auth, timeout=10).text
            families = {f.name: f for f in text_string_to_metric_families(metrics)}
            assert sorted(s.labels["library"] for s in families["graylink_links"].samples) == ["a", "b"]

            # Webhooks: each lands in its own library's tree.
            two.add("b", "Show/S01/e02.mkv")
            two.add("a", "Other (2002)/Other.mkv")
            sent = requests.post(url + "/api/webhook/sonarr", json=sonarr("/tv/Show"), headers=auth, timeout=10)
            assert sent.status_code == 202 and sent.json()["library"] == "b"
            radarr = {"eventType": "Download", "movie": {"folderPath": "/movies/Other (2002)"}}
            sent = requests.post(url + "/api/webhook/radarr", json=radarr, headers=auth, timeout=10)
            assert sent.status_code == 202 and sent.json()["library"] == "a"
            wait_for("e02 linked in b", lambda: b"Show/S01/e02.mkv" in links_in(two.target("b")), proc)
            wait_for("Other linked in a", lambda: b"Other (2002)/Other.mkv" in links_in(two.target("a")), proc)
            assert not (two.target("a") / "Show").exists() and not (two.target("b") / "Other (2002)").exists()

            # An action names its library and acts on it alone.
            two.add("b", "Third (2003)/Third.mkv")
            body = '{"paths": ["Third (2003)"], "library": "b"}'
            acted = requests.post(url + "/api/reconcile", data=body, headers=json_post, timeout=10)
            assert acted.status_code == 202 and acted.json()["libraries"] == {"b": ["Third (2003)"]}
            wait_for("Third linked in b", lambda: b"Third (2003)/Third.mkv" in links_in(two.target("b")), proc)
            asked = requests.post(url + "/api/reconcile", data='{"paths": ["x"]}', headers=json_post, timeout=10)
            assert asked.status_code == 400 and "a, b" in asked.json()["error"]

            wait_for("the conflict alert", lambda: any("conflict" in t for t in receiver.titles()), proc)
            [title] = [t for t in receiver.titles() if "conflict" in t]
            assert f"library b ({two.source('b')})" in title, title
        finally:
            proc.terminate()
            code = proc.wait(timeout=60)
        assert code in (0, 1), log.read_text()
        text = log.read_text()
        assert "webhook (sonarr Download): marked Show in library b" in text
        assert "webhook (radarr Download): marked Other (2002) in library a" in text
        assert "api: marked Third (2003) in library b" in text and "Third (2003) in library a" not in text
        assert "Traceback" not in text


def test_a_file_name_that_holds_markup_is_shown_escaped(two: Two) -> None:
    """The templates are *.html.j2: Flask autoescapes only *.html by name, so graylink turns it on."""
    two.add("b", "<script>alert(1)</script>/e.mkv")
    assert two.run("reconcile", "--library", "b").returncode == 0
    html = two.client().get("/library?library=b", headers=HOST).data.decode()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html


@pytest.mark.browser
def test_the_switcher_and_a_page_action_in_chromium_act_on_the_chosen_library(tmp_path: Path) -> None:
    from browser_support import CHROMIUM, CHROMIUM_ARGS

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"BROWSER TESTS SKIPPED: {CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    port = free_port()
    two = Two(tmp_path, port, interval="1h")  # only the first walk: what links later, the button asked for
    two.add("a", "Show/e1.mkv")
    two.add("b", "Show/e1.mkv")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = tmp_path / "loop.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "graylink", "-c", str(two.ini), "reconcile", "--loop"],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for name in ("a", "b"):
            wait_for(f"{name} linked", lambda name=name: b"Show/e1.mkv" in links_in(two.target(name)), proc)
        two.add("a", "Show/e2.mkv")
        two.add("b", "Show/e2.mkv")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            ctx = browser.new_context(http_credentials={"username": "me", "password": TOKEN, "origin": url})
            page = ctx.new_page()
            assert page.goto(url + "/").status == 200
            assert page.locator("section.library").count() == 2
            page.click('nav.switcher >> a[data-library="b"]')
            assert "library=b" in page.url
            page.click("nav >> text=Library")
            assert "library=b" in page.url
            page.click('tr[data-folder="Show"] a')
            page.click("text=Reconcile this folder now")
            page.wait_for_function("document.getElementById('action-result').dataset.status === '202'")
            browser.close()
        wait_for("e2 linked in b", lambda: b"Show/e2.mkv" in links_in(two.target("b")), proc)
        assert b"Show/e2.mkv" not in links_in(two.target("a"))
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert "api: marked Show in library b" in log.read_text()


def test_after_a_sighup_the_configuration_page_shows_the_reloaded_library(tmp_path: Path) -> None:
    """The real loop of two libraries: a SIGHUP that changes library b is what /config shows
    (not the config as loaded at start); a moved target, refused for its library, is not."""
    import re
    import signal

    port = free_port()
    two = Two(tmp_path, port, interval="1h")
    two.add("a", "Film (2001)/Film.mkv")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = tmp_path / "loop.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "graylink", "-c", str(two.ini), "reconcile", "--loop"],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        env=env,
    )
    url, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {TOKEN}"}

    def value(html: str, key: str) -> str:
        found = re.search(rf'data-key="{re.escape(key)}">.*?<td class="value">(.*?)</td>', html, re.S)
        assert found, key
        return found.group(1)

    def shown() -> str:
        return requests.get(url + "/config", headers=auth, timeout=10).text

    try:
        wait_for("a linked", lambda: b"Film (2001)/Film.mkv" in links_in(two.target("a")), proc)
        assert value(shown(), "library b.exclude_dirs") == "BDMV"
        text = two.ini.read_text()
        text = text.replace("[library b]\n", "[library b]\nexclude_dirs = BDMV, Extras\n")
        text = text.replace(f"target = {two.target('a')}\n", f"target = {tmp_path / 'moved'}\n")
        two.ini.write_text(text)
        proc.send_signal(signal.SIGHUP)
        wait_for("b reloaded", lambda: "[library b] SIGHUP: config reloaded" in log.read_text(), proc)
        wait_for("a's refusal", lambda: "[library a] SIGHUP:" in log.read_text(), proc)
        html = shown()
        assert value(html, "library b.exclude_dirs") == "BDMV, Extras"
        assert value(html, "library a.target") == str(two.target("a"))  # refused: what runs
        assert value(html, "web.token") == "••••••" and TOKEN not in html
    finally:
        proc.terminate()
        code = proc.wait(timeout=60)
    assert code in (0, 1), log.read_text()
