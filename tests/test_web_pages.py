"""The management pages in real headless Chromium against a real ``reconcile --loop`` (issue 31 items 2-5).

A library with a conflict is browsed to; the prune brake is released after a
mass delete and the prunes happen; a folder is re-sent and the loopback Emby
(tests/emby_server.py) receives it; a page of another loopback origin posts
forms to every action and changes nothing; every page is measured at phone and
desktop width for horizontal overflow; the pages read without JavaScript and
in Chinese when the browser asks for it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from emby_server import FakeMediaServer
from service_support import Loop, linked, wait_for
from web_support import TOKEN, WebLoop, free_port

from conftest import Library, links_in

pytestmark = pytest.mark.browser


@pytest.fixture
def face(lib: Library, loop_of: Callable[[], Loop]) -> Callable[..., WebLoop]:
    """A loop with its web face; the walk every 2 s unless told otherwise."""

    def start(token: str = TOKEN, scan: dict[str, str] | None = None, **sections: dict[str, str]) -> WebLoop:
        port = free_port()
        web = {"listen": f"127.0.0.1:{port}", **({"token": token} if token else {})}
        lib.write_ini(scan={"interval": "2s", "workers": "2", **(scan or {})}, web=web, **sections)
        running = WebLoop(lib, loop_of(), port, token)
        running.wait_up()
        return running

    return start


def link_count(lib: Library) -> int:
    """Links in the tree; a folder removed while it is read (the loop prunes meanwhile) is read again."""
    while True:
        try:
            return len(links_in(lib.target))
        except FileNotFoundError:
            continue


def context(browser: Any, w: WebLoop, **kw: Any) -> Any:
    credentials = {"username": "me", "password": w.token, "origin": w.url} if w.token else None
    return browser.new_context(http_credentials=credentials, **kw)


def conflict_library(lib: Library) -> None:
    lib.add("TV/Show/Season 01/e1.mkv")
    lib.add("TV/Show/Season 01/e2.mkv")
    lib.add("TV/Show/Season 01/notes.txt")
    lib.add("TV/Show/Season 01/e3.mkv.part")
    lib.add("Movies/Film (2001)/BDMV/STREAM/00001.m2ts")
    blocker = lib.target / "TV/Show/Season 01/e2.mkv"
    blocker.parent.mkdir(parents=True)
    blocker.write_bytes(b"the user's own file")


# ------------------------------------------------------------------ the browser


def test_browse_to_a_folder_with_a_conflict_and_see_it(
    lib: Library, face: Callable[..., WebLoop], browser: Any
) -> None:
    conflict_library(lib)
    w = face()
    wait_for("the first walk", linked(lib, "TV/Show/Season 01/e1.mkv"), w.loop.proc)
    w.loop.wait_log("reconcile (walk)")
    ctx = context(browser, w)
    try:
        page = ctx.new_page()
        assert page.goto(w.url + "/").status == 200
        page.click("nav >> text=Library")
        tv = page.locator('tr[data-folder="TV"]')
        assert tv.locator("td").nth(1).inner_text() == "1"  # one link under TV
        assert tv.locator(".state-conflict").inner_text() == "1"  # one open problem under TV
        tv.locator("a").click()
        page.click('tr[data-folder="Show"] a')
        page.click('tr[data-folder="Season 01"] a')
        states = {
            row.get_attribute("data-file"): row.get_attribute("data-state")
            for row in page.locator("tr[data-file]").all()
        }
        assert states == {
            "e1.mkv": "linked",
            "e2.mkv": "conflict",
            "e3.mkv.part": "excluded",
            "notes.txt": "not-video",
        }
        assert "a regular file" in page.locator('tr[data-file="e2.mkv"]').inner_text()
        assert page.locator(".crumbs").inner_text() == "Library / TV / Show / Season 01"
        page.goto(w.url + "/library?path=Movies/Film%20(2001)/BDMV/STREAM")
        assert page.locator('tr[data-file="00001.m2ts"]').get_attribute("data-state") == "excluded"
    finally:
        ctx.close()


def test_reconcile_this_folder_now_from_its_page(lib: Library, face: Callable[..., WebLoop], browser: Any) -> None:
    lib.add("TV/Show/e1.mkv")
    w = face(scan={"interval": "1h"})
    wait_for("the first walk", linked(lib, "TV/Show/e1.mkv"), w.loop.proc)
    lib.add("TV/Show/e2.mkv")
    ctx = context(browser, w)
    try:
        page = ctx.new_page()
        page.goto(w.url + "/library?path=TV/Show")
        page.click("text=Reconcile this folder now")
        page.wait_for_function("document.getElementById('action-result').dataset.status === '202'")
    finally:
        ctx.close()
    wait_for("the folder reconciled", linked(lib, "TV/Show/e2.mkv"), w.loop.proc)
    w.loop.wait_log("api: marked TV/Show")


# ------------------------------------------------------------------ the prune brake


def test_release_the_brake_after_a_mass_delete_and_see_the_prunes(
    lib: Library, face: Callable[..., WebLoop], browser: Any
) -> None:
    for i in range(30):
        lib.add(f"Movies/Film {i:02d}/film.mkv")
    w = face()
    wait_for("the first walk", lambda: len(links_in(lib.target)) == 30, w.loop.proc)
    for i in range(25):
        os.remove(lib.source / f"Movies/Film {i:02d}/film.mkv")
    w.loop.wait_log("prune brake: 25 prunes")
    assert len(links_in(lib.target)) == 30
    # A count that is not the one the brake holds is refused: the page must be looked at again.
    wrong = w.post("/api/brake/release", {"prunes": 24})
    assert wrong.status_code == 409 and wrong.json()["prunes"] == 25
    ctx = context(browser, w)
    try:
        page = ctx.new_page()
        page.goto(w.url + "/")
        assert "withheld 25 prunes" in page.locator("#brake").inner_text()
        page.on("dialog", lambda dialog: dialog.accept())
        page.click("text=Release the brake and prune 25 links")
        page.wait_for_function("document.getElementById('action-result').dataset.status === '202'")
    finally:
        ctx.close()
    wait_for("the prunes", lambda: link_count(lib) == 5, w.loop.proc)
    w.loop.wait_log("web action release-brake (up to 25 prunes)")
    assert "web action release-brake: queued one run that may prune up to 25 links" in w.loop.text()


def test_a_released_brake_still_holds_more_prunes_than_were_shown() -> None:
    """The run a person released may prune what they were shown, not what the source lost since."""
    from graylink.links.planner import Action, Op, Plan, apply_prune_brake

    def plan(prunes: int) -> Plan:
        return Plan([Action(Op.PRUNE, f"Movies/F{i}/f.mkv".encode(), b"/src") for i in range(prunes)])

    shown = plan(22)
    apply_prune_brake(shown, 30, 0.2, allowance=22)
    assert len(shown.actions) == 22 and not shown.braked
    grown = plan(26)
    apply_prune_brake(grown, 30, 0.2, allowance=22)
    assert not grown.actions and len(grown.braked) == 26
    held = plan(22)
    apply_prune_brake(held, 30, 0.2)
    assert not held.actions and len(held.braked) == 22


# ------------------------------------------------------------------ re-send and deliveries


def test_resend_a_folder_and_the_loopback_emby_receives_it(
    lib: Library, face: Callable[..., WebLoop], browser: Any
) -> None:
    lib.add("TV/Show/Season 01/e1.mkv")
    with FakeMediaServer("emby", locations=[str(lib.target)]) as emby:
        w = face(emby={"url": emby.url, "api_key": emby.api_key})
        wait_for("the first delivery", lambda: bool(emby.posts("/Library/Media/Updated")), w.loop.proc)
        before = len(emby.posts("/Library/Media/Updated"))
        ctx = context(browser, w)
        try:
            page = ctx.new_page()
            page.goto(w.url + "/library?path=TV/Show/Season%2001")
            # The file's change as the server's library has it (pending until the item appears, then confirmed).
            told = page.locator('tr[data-file="e1.mkv"] [data-server="emby"]')
            assert told.get_attribute("class") in ("state state-pending", "state state-confirmed")
            page.goto(w.url + "/library?path=TV/Show")
            page.select_option("#resend-server", "emby")
            page.click("text=Re-send this folder")
            page.wait_for_function("document.getElementById('action-result').dataset.status === '202'")
        finally:
            ctx.close()

        def resent() -> bool:
            posts = emby.posts("/Library/Media/Updated")[before:]
            paths = [u["Path"] for p in posts for u in (p.body or {}).get("Updates", [])]
            return f"{lib.target}/TV/Show" in paths

        wait_for("the folder re-sent", resent, w.loop.proc)
        w.loop.wait_log("web action resend: TV/Show queued for emby")
        # Retry deliveries now: answered at once, the delivery done by the loop and logged.
        assert w.post("/api/deliver", {}).status_code == 202
        w.loop.wait_log("web action deliver")


# ------------------------------------------------------------------ cross-origin forms


def test_a_cross_origin_form_post_to_every_action_changes_nothing(
    lib: Library, face: Callable[..., WebLoop], browser: Any
) -> None:
    from tests.test_web_guard import AttackerSite

    for i in range(30):
        lib.add(f"Movies/Film {i:02d}/film.mkv")
    w = face(token="")
    wait_for("the first walk", lambda: len(links_in(lib.target)) == 30, w.loop.proc)
    for i in range(25):
        os.remove(lib.source / f"Movies/Film {i:02d}/film.mkv")
    w.loop.wait_log("prune brake: 25 prunes")
    forms = "".join(
        f'<form id="f{i}" method="POST" action="{w.url}{route}" enctype="{enctype}" target="sink">'
        f'<input type="hidden" name="{name}" value="{value}"></form>'
        for i, (route, enctype, name, value) in enumerate(
            [
                ("/api/brake/release", "text/plain", '{"prunes": 25, "x": "', '"}'),
                ("/api/brake/release", "application/x-www-form-urlencoded", "prunes", "25"),
                ("/api/resend", "text/plain", '{"path": "Movies", "server": "emby", "x": "', '"}'),
                ("/api/deliver", "text/plain", '{"x": "', '"}'),
            ]
        )
    )
    page_html = f"""<!doctype html><html><body><iframe name="sink"></iframe>{forms}<script>
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
    site = AttackerSite(page_html)
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(site.url)
        page.wait_for_function("document.title === 'done'", timeout=30_000)
        time.sleep(3.0)  # two walks: a released brake would have pruned by now
    finally:
        ctx.close()
        site.close()
    assert len(links_in(lib.target)) == 30
    text = w.loop.text()
    assert text.count("web: refused POST") == 4, text
    assert "web action" not in text


# ------------------------------------------------------------------ phone, desktop, no JavaScript, Chinese


PAGES = ["/", "/library", "/library?path=TV/Show/Season%2001", "/config", "/log"]


@pytest.mark.parametrize("width", [360, 1280], ids=["phone", "desktop"])
def test_every_page_fits_the_screen_width(
    lib: Library, face: Callable[..., WebLoop], browser: Any, width: int, tmp_path: Path
) -> None:
    conflict_library(lib)
    lib.add("TV/Show/Season 01/" + "A very long episode name without any space " * 4 + ".mkv")
    w = face()
    wait_for("the first walk", linked(lib, "TV/Show/Season 01/e1.mkv"), w.loop.proc)
    ctx = context(browser, w, viewport={"width": width, "height": 800}, is_mobile=width < 500)
    try:
        page = ctx.new_page()
        for path in PAGES:
            assert page.goto(w.url + path).status == 200, path
            shot = tmp_path / f"{width}{path.replace('/', '_').replace('?', '_')}.png"
            page.screenshot(path=str(shot), full_page=True)
            if os.environ.get("PAGES_SCREENSHOTS"):  # keep them to look at
                page.screenshot(path=os.path.join(os.environ["PAGES_SCREENSHOTS"], shot.name), full_page=True)
            assert shot.stat().st_size > 1000
            over = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert over <= 0, f"{path} is {over} px wider than a {width} px screen"
    finally:
        ctx.close()


def test_pages_read_without_javascript(lib: Library, face: Callable[..., WebLoop], browser: Any) -> None:
    conflict_library(lib)
    w = face()
    wait_for("the first walk", linked(lib, "TV/Show/Season 01/e1.mkv"), w.loop.proc)
    w.loop.wait_log("reconcile (walk)")
    ctx = context(browser, w, java_script_enabled=False)
    try:
        page = ctx.new_page()
        page.goto(w.url + "/")
        assert page.locator("#charts svg").count() >= 1
        page.click("nav >> text=Library")
        page.click('tr[data-folder="TV"] a')
        page.click('tr[data-folder="Show"] a')
        page.click('tr[data-folder="Season 01"] a')
        assert page.locator('tr[data-file="e2.mkv"]').get_attribute("data-state") == "conflict"
        assert page.locator("noscript").count() == 1
        page.click("nav >> text=Configuration")
        assert page.locator('tr[data-key="paths.source"] td.value').inner_text() == str(lib.source)
    finally:
        ctx.close()


def test_the_pages_speak_chinese_when_the_browser_asks(
    lib: Library, face: Callable[..., WebLoop], browser: Any
) -> None:
    conflict_library(lib)
    w = face()
    wait_for("the first walk", linked(lib, "TV/Show/Season 01/e1.mkv"), w.loop.proc)
    ctx = context(browser, w, locale="zh-CN")
    try:
        page = ctx.new_page()
        page.goto(w.url + "/")
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        assert page.locator("nav").inner_text().split() == ["状态", "媒体库", "配置", "日志"]
        assert page.locator('[data-tile="挂载"] .headline').inner_text() == "正常"
        page.goto(w.url + "/library?path=TV/Show/Season%2001")
        assert page.locator('tr[data-file="e2.mkv"] .state').inner_text() == "冲突"
        assert "立即同步此文件夹" in page.content()
    finally:
        ctx.close()
    english = browser.new_context(
        locale="en-US", http_credentials={"username": "me", "password": w.token, "origin": w.url}
    )
    try:
        page = english.new_page()
        page.goto(w.url + "/")
        assert page.locator("html").get_attribute("lang") == "en"
        assert page.locator("nav").inner_text().split() == ["Status", "Library", "Configuration", "Log"]
    finally:
        english.close()
    # Machine-readable output stays English whatever the browser asks.
    answer = w.get("/api/status", headers={**w.headers(), "Accept-Language": "zh-CN"})
    assert answer.headers["Content-Type"].startswith("application/json") and "挂载" not in answer.text
