"""The management pages of a service of several libraries in real headless Chromium (issue 31's tests,
with issue 30's library switcher), against a real ``reconcile --loop`` of two libraries.

What tests/test_web_pages.py shows for one library, here for the library the switcher chose: the
brake released on library b's page prunes b alone; a folder of b re-sent from its page reaches the
loopback Emby (tests/emby_server.py); forged cross-origin forms that name a library change
nothing; every page (the overview, one library's status, browser, log, the configuration) fits a
phone and a desktop screen with the switcher on it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from emby_server import FakeMediaServer
from service_support import wait_for
from web_support import free_port

from tests.test_web_libraries import TOKEN, Two

from conftest import REPO, links_in

pytestmark = pytest.mark.browser


@contextmanager
def serving(two: Two) -> Iterator[subprocess.Popen[bytes]]:
    """The loop of ``two``'s config, its log beside it; stopped (SIGTERM) at the end."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "graylink", "-c", str(two.ini), "reconcile", "--loop"],
        stdout=subprocess.DEVNULL,
        stderr=(two.root / "loop.log").open("wb"),
        env=env,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        code = proc.wait(timeout=60)
        assert code in (0, 1), log_of(two)


def log_of(two: Two) -> str:
    return (two.root / "loop.log").read_text(errors="replace")


def context(browser: Any, url: str, **kw: Any) -> Any:
    return browser.new_context(http_credentials={"username": "me", "password": TOKEN, "origin": url}, **kw)


def link_count(root: Path) -> int:
    """Links in the tree; a folder removed while it is read (the loop prunes meanwhile) is read again."""
    while True:
        try:
            return len(links_in(root))
        except FileNotFoundError:
            continue


def films(two: Two, name: str, count: int) -> None:
    for i in range(count):
        two.add(name, f"Movies/Film {i:02d}/film.mkv")


def test_release_library_bs_brake_from_its_page_and_only_b_prunes(tmp_path: Path, browser: Any) -> None:
    port = free_port()
    two = Two(tmp_path, port)
    films(two, "a", 30)
    films(two, "b", 30)
    url = f"http://127.0.0.1:{port}"
    with serving(two) as proc:
        for name in ("a", "b"):
            wait_for(f"{name} linked", lambda n=name: len(links_in(two.target(n))) == 30, proc)  # type: ignore[misc]
        for name in ("a", "b"):  # a mass delete in both: each library's brake holds its own
            for i in range(25):
                os.remove(two.source(name) / f"Movies/Film {i:02d}/film.mkv")
        wait_for("b's brake", lambda: "[library b] prune brake: 25 prunes" in log_of(two), proc)
        wait_for("a's brake", lambda: "[library a] prune brake: 25 prunes" in log_of(two), proc)
        ctx = context(browser, url)
        try:
            page = ctx.new_page()
            page.goto(url + "/")
            page.click('nav.switcher >> a[data-library="b"]')
            assert "withheld 25 prunes" in page.locator("#brake").inner_text()
            page.on("dialog", lambda dialog: dialog.accept())
            page.click("text=Release the brake and prune 25 links")
            page.wait_for_function("document.getElementById('action-result').dataset.status === '202'")
        finally:
            ctx.close()
        wait_for("b's prunes", lambda: link_count(two.target("b")) == 5, proc)
        time.sleep(1.5)  # a walk of a's: its brake still holds
        assert len(links_in(two.target("a"))) == 30
    text = log_of(two)
    assert "web action release-brake in library b: queued one run that may prune up to 25 links" in text
    assert "release-brake in library a" not in text


def test_resend_a_folder_of_library_b_from_its_page_and_the_loopback_emby_receives_it(
    tmp_path: Path, browser: Any
) -> None:
    port = free_port()
    with FakeMediaServer("emby", locations=[str(tmp_path / "a-links"), str(tmp_path / "b-links")]) as emby:
        two = Two(tmp_path, port, extra=f"[emby]\nurl = {emby.url}\napi_key = {emby.api_key}\n")
        two.add("a", "TV/Show/e1.mkv")
        two.add("b", "TV/Show/e1.mkv")
        url = f"http://127.0.0.1:{port}"
        with serving(two) as proc:

            def told() -> list[str]:
                posts = emby.posts("/Library/Media/Updated")
                return [u["Path"] for p in posts for u in (p.body or {}).get("Updates", [])]

            wait_for("both delivered", lambda: len(told()) >= 2, proc)
            before = len(told())
            ctx = context(browser, url)
            try:
                page = ctx.new_page()
                page.goto(url + "/library?library=b&path=TV/Show")
                page.select_option("#resend-server", "emby")
                page.click("text=Re-send this folder")
                page.wait_for_function("document.getElementById('action-result').dataset.status === '202'")
            finally:
                ctx.close()
            wait_for("b's folder re-sent", lambda: f"{two.target('b')}/TV/Show" in told()[before:], proc)
            assert f"{two.target('a')}/TV/Show" not in told()[before:]
    assert "web action resend in library b: TV/Show queued for emby" in log_of(two)


def test_a_cross_origin_form_post_naming_a_library_changes_nothing(tmp_path: Path, browser: Any) -> None:
    from tests.test_web_guard import AttackerSite

    port = free_port()
    two = Two(tmp_path, port)
    films(two, "b", 30)
    url = f"http://127.0.0.1:{port}"
    with serving(two) as proc:
        wait_for("b linked", lambda: len(links_in(two.target("b"))) == 30, proc)
        for i in range(25):
            os.remove(two.source("b") / f"Movies/Film {i:02d}/film.mkv")
        wait_for("b's brake", lambda: "[library b] prune brake: 25 prunes" in log_of(two), proc)
        forms = "".join(
            f'<form method="POST" action="{url}{route}" enctype="text/plain" target="sink">'
            f"<input type=\"hidden\" name='{name}' value='{value}'></form>"
            for route, name, value in [
                ("/api/brake/release", '{"library": "b", "prunes": 25, "x": "', '"}'),
                ("/api/reconcile", '{"library": "b", "paths": ["Movies"], "x": "', '"}'),
                ("/api/deliver", '{"library": "b", "x": "', '"}'),
            ]
        )
        site = AttackerSite(
            f"""<!doctype html><html><body><iframe name="sink"></iframe>{forms}<script>
async function attack() {{
  for (const form of document.forms) {{
    await new Promise(done => {{
      const sink = document.querySelector("iframe"); sink.onload = done; setTimeout(done, 5000); form.submit();
    }});
  }}
  document.title = "done";
}}
attack();
</script></body></html>"""
        )
        ctx = context(browser, url)  # the user is logged in to the face: the browser would send the token
        try:
            page = ctx.new_page()
            page.goto(site.url)
            page.wait_for_function("document.title === 'done'", timeout=15_000)
            time.sleep(2.0)  # two of b's walks: a released brake would have pruned by now
        finally:
            ctx.close()
            site.close()
        assert len(links_in(two.target("b"))) == 30
    text = log_of(two)
    assert text.count("web: refused POST") == 3, text
    assert "web action" not in text and "api: marked" not in text


@pytest.mark.parametrize("width", [360, 1280], ids=["phone", "desktop"])
def test_every_page_of_several_libraries_fits_the_screen_width(tmp_path: Path, browser: Any, width: int) -> None:
    port = free_port()
    two = Two(tmp_path, port, interval="1h")
    two.add("a", "Film (2001)/Film.mkv")
    two.add("b", "Show/S01/" + "A very long episode name without any space " * 4 + ".mkv")
    url = f"http://127.0.0.1:{port}"
    pages = ["/", "/?library=b", "/library?library=b", "/library?library=b&path=Show/S01", "/config", "/log?library=b"]
    with serving(two) as proc:
        wait_for("a linked", lambda: b"Film (2001)/Film.mkv" in links_in(two.target("a")), proc)
        ctx = context(browser, url, viewport={"width": width, "height": 800}, is_mobile=width < 500)
        try:
            page = ctx.new_page()
            for path in pages:
                assert page.goto(url + path).status == 200, path
                if path != "/":
                    assert page.locator("nav.switcher a[data-library]").count() == 2, path  # the switcher
                shot = tmp_path / f"{width}{path.replace('/', '_').replace('?', '_')}.png"
                page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 1000
                over = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
                assert over <= 0, f"{path} is {over} px wider than a {width} px screen"
        finally:
            ctx.close()
