"""The service's web face against a real loop process: auth, triggers, *arr webhooks, JSON, metrics, the page."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from service_support import Loop, linked, wait_for
from web_support import TOKEN, WebLoop, free_port

from tests.test_drive_loop import Mirror, mirror  # noqa: F401  (the fixture)
from tests.test_mount import _MISSING as MISSING_FUSE
from tests.test_mount import Mounted, rclone_mount  # noqa: F401  (the fixture)
from tests.test_mount import _start as start_rclone

from conftest import Library, links_in

ARR = Path(__file__).parent / "data" / "arr"


def arr_body(name: str) -> bytes:
    return (ARR / f"{name}.json").read_bytes()


@pytest.fixture
def web(lib: Library, loop_of: Callable[[], Loop]) -> Callable[..., WebLoop]:
    def start(token: str = TOKEN, **sections: dict[str, str]) -> WebLoop:
        port = free_port()
        extra_web = sections.pop("web", {})
        web_keys = {"listen": f"127.0.0.1:{port}", "arr_path_map": f"/tv={lib.source}/TV,/movies={lib.source}/Movies"}
        if token:
            web_keys["token"] = token
        # A walk only every hour: what gets linked here was triggered by a request.
        lib.write_ini(scan={"interval": "1h", "workers": "2"}, web={**web_keys, **extra_web}, **sections)
        running = WebLoop(lib, loop_of(), port, token)
        running.wait_up()
        return running

    return start


WEB_REASONS = ("api", "webhook", "sonarr", "radarr")


def marks(lib: Library) -> list[tuple[bytes, str]]:
    """Marks a web request made (the loop's own first walk marks the root as well)."""
    conn = sqlite3.connect(lib.database)
    try:
        rows = conn.execute("SELECT path, reason FROM dirty").fetchall()
    finally:
        conn.close()
    return [(bytes(p), str(r)) for p, r in rows if r in WEB_REASONS]


def job_result(lib: Library, name: str) -> str:
    conn = sqlite3.connect(lib.database)
    try:
        row = conn.execute("SELECT result FROM job_run WHERE name = ?", (name,)).fetchone()
    finally:
        conn.close()
    return str(row[0]) if row else ""


# ------------------------------------------------------------------ auth


def test_every_route_needs_the_token_and_nothing_is_marked_without_it(
    lib: Library, web: Callable[..., WebLoop]
) -> None:
    lib.add("TV/Show/e1.mkv")
    w = web()
    wait_for("the first walk", linked(lib, "TV/Show/e1.mkv"), w.loop.proc)
    lib.add("TV/Show/e2.mkv")
    for path in ("/", "/api/status", "/metrics", "/snapshot"):
        assert w.get(path, headers={}).status_code == 401, path
    wrong = {"Authorization": "Bearer not-the-token"}
    for route in ("/api/reconcile", "/api/webhook"):
        assert w.post(route, {"paths": ["TV/Show"]}, headers={}).status_code == 401
        assert w.post(route, {"paths": ["TV/Show"]}, headers=wrong).status_code == 401
    assert w.post("/api/webhook/sonarr", arr_body("sonarr_download"), headers=wrong).status_code == 401
    assert marks(lib) == []
    assert os.fsencode("TV/Show/e2.mkv") not in links_in(lib.target)
    # Each form Sonarr, Radarr, Prometheus and scripts can send:
    assert w.get("/api/status", headers={"X-Api-Key": TOKEN}).status_code == 200
    assert requests.get(w.url + "/metrics", auth=("sonarr", TOKEN), timeout=30).status_code == 200
    assert w.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert TOKEN not in w.loop.text()


def test_a_public_address_without_a_token_is_refused_in_one_line(lib: Library) -> None:
    lib.write_ini(web={"listen": f"0.0.0.0:{free_port()}"})
    result = lib.run("reconcile", "--loop")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "[web] token" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_in_use_is_one_line_and_exit_2(lib: Library) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        lib.write_ini(web={"listen": f"127.0.0.1:{busy.getsockname()[1]}"})
        result = lib.run("reconcile", "--loop")
    assert result.returncode == 2, result.stderr
    assert "port is in use" in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    # Refused before anything is made (docs/cli.md, exit codes): no database, no lock file, no link tree.
    assert not lib.database.exists() and not Path(f"{lib.database}.lock").exists()
    assert not lib.target.exists()


# ------------------------------------------------------------------ triggers


def test_reconcile_request_marks_the_subtree_and_links_at_once(lib: Library, web: Callable[..., WebLoop]) -> None:
    lib.add("TV/Show/e1.mkv")
    w = web()
    wait_for("the first walk", linked(lib, "TV/Show/e1.mkv"), w.loop.proc)
    lib.add("TV/Show/e2.mkv")
    answer = w.post("/api/reconcile", {"paths": ["TV/Show"]})
    assert answer.status_code == 202 and answer.json() == {"marked": ["TV/Show"]}
    wait_for("the link the request asked for", linked(lib, "TV/Show/e2.mkv"), w.loop.proc)
    lib.add("Movies/M/m.mkv")
    assert w.post("/api/webhook", {"paths": [str(lib.source / "Movies/M")]}).status_code == 202
    wait_for("the link of an absolute path", linked(lib, "Movies/M/m.mkv"), w.loop.proc)


@pytest.mark.parametrize(
    "body",
    [{"paths": ["../etc"]}, {"paths": ["/etc/passwd"]}, {"paths": []}, {"paths": "TV"}, {"nothing": 1}, [1]],
)
def test_bad_reconcile_requests_are_400_and_mark_nothing(lib: Library, web: Callable[..., WebLoop], body: Any) -> None:
    w = web()
    answer = w.post("/api/reconcile", body)
    assert answer.status_code == 400 and answer.json()["error"]
    assert marks(lib) == []


def test_sonarr_download_is_rewaited_until_the_upload_reaches_the_source(
    lib: Library, web: Callable[..., WebLoop]
) -> None:
    episode = "TV/Fate Zero/Season 01/Fate Zero - S01E02 - False Combatants.mkv"
    lib.add("TV/Fate Zero/Season 01/Fate Zero - S01E01.mkv")
    w = web(web={"arr_wait": "2m"})  # re-marked every 2 s
    wait_for("the first walk", linked(lib, "TV/Fate Zero/Season 01/Fate Zero - S01E01.mkv"), w.loop.proc)
    answer = w.post("/api/webhook/sonarr", arr_body("sonarr_download"))
    assert answer.status_code == 202
    assert answer.json() == {"event": "Download", "marked": ["TV/Fate Zero"], "waiting_for": 1}
    w.loop.wait_log("webhook (sonarr Download): marked TV/Fate Zero")
    # The import is done, the upload lands later: the folder is looked at again until it does.
    wait_for("the folder re-marked", lambda: "re-marked" in job_result(lib, "webhooks"), w.loop.proc)
    lib.add(episode)
    wait_for("the episode's link", linked(lib, episode), w.loop.proc)
    w.loop.wait_log("TV/Fate Zero arrived on the mount")
    conn = sqlite3.connect(lib.database)
    assert conn.execute("SELECT count(*) FROM arr_wait_file").fetchone()[0] == 0
    conn.close()


def test_radarr_upgrade_links_and_movie_delete_prunes(lib: Library, web: Callable[..., WebLoop]) -> None:
    lib.add("Movies/Heat (1995)/Heat (1995) DVD.avi")
    lib.add("Movies/Ronin (1998)/Ronin.mkv")
    w = web()
    wait_for("the first walk", linked(lib, "Movies/Ronin (1998)/Ronin.mkv"), w.loop.proc)
    os.unlink(lib.source / "Movies/Heat (1995)/Heat (1995) DVD.avi")
    lib.add("Movies/Heat (1995)/Heat (1995) Bluray-1080p.mkv")
    assert w.post("/api/webhook/radarr", arr_body("radarr_download")).status_code == 202
    wait_for("the upgrade's link", linked(lib, "Movies/Heat (1995)/Heat (1995) Bluray-1080p.mkv"), w.loop.proc)
    wait_for("the old file's link pruned", lambda: not linked(lib, "Movies/Heat (1995)/Heat (1995) DVD.avi")())
    (lib.source / "Movies/Ronin (1998)/Ronin.mkv").unlink()
    (lib.source / "Movies/Ronin (1998)").rmdir()
    answer = w.post("/api/webhook/radarr", arr_body("radarr_movie_delete"))
    assert answer.status_code == 202 and answer.json()["waiting_for"] == 0
    wait_for("the deleted movie's link pruned", lambda: not linked(lib, "Movies/Ronin (1998)/Ronin.mkv")())


def test_the_arr_test_button_and_events_without_files_answer_200(lib: Library, web: Callable[..., WebLoop]) -> None:
    w = web()
    # As Sonarr's WebhookProxy sends it: basic auth, Content-Type: application/json.
    json_type = {"Content-Type": "application/json"}
    answer = requests.post(
        w.url + "/api/webhook/sonarr", data=arr_body("sonarr_test"), auth=("", TOKEN), headers=json_type, timeout=30
    )
    assert answer.status_code == 200 and answer.json() == {"event": "Test", "marked": []}
    grab = json.dumps({"eventType": "Grab", "series": {"path": "/tv/X"}})
    assert w.post("/api/webhook/sonarr", grab).status_code == 200
    assert marks(lib) == []


def test_arr_paths_outside_the_source_or_garbage_mark_nothing(lib: Library, web: Callable[..., WebLoop]) -> None:
    # Answered 2xx: any 4xx/5xx makes Sonarr / Radarr switch the webhook off (tests/test_arr_webhooks.py).
    w = web()
    elsewhere = json.loads(arr_body("sonarr_episode_file_delete"))
    elsewhere["series"]["path"] = "/srv/other/Show"
    answer = w.post("/api/webhook/sonarr", json.dumps(elsewhere))
    assert answer.status_code == 200 and "not inside the source" in answer.json()["ignored"]
    assert w.post("/api/webhook/radarr", b"{not json").json()["ignored"] == "the body is not JSON"
    assert w.post("/api/webhook/radarr", json.dumps({"eventType": "Download", "movie": {}})).status_code == 200
    assert marks(lib) == []


# ------------------------------------------------------------------ documents


def test_the_snapshot_is_rendered_from_the_index_on_request_never_a_stale_file(
    lib: Library, web: Callable[..., WebLoop]
) -> None:
    """With [snapshot] path empty, an old page beside the database (a hand-run 'graylink snapshot') is not served:
    /snapshot renders the index as it is now, and the status page links it from the start."""
    lib.add("TV/Show/e1.mkv")
    w = web()
    wait_for("the first walk", linked(lib, "TV/Show/e1.mkv"), w.loop.proc)
    assert 'href="snapshot"' in w.get("/").text
    assert lib.run("snapshot").returncode == 0  # a page by hand, beside the database
    stale = (lib.database.parent / "graylink-snapshot.html").read_bytes()
    lib.add("TV/Show/e2.mkv")
    assert w.post("/api/reconcile", {"paths": ["TV/Show"]}).status_code == 202
    wait_for("the triggered run", linked(lib, "TV/Show/e2.mkv"), w.loop.proc)
    served = w.get("/snapshot")
    assert served.status_code == 200 and served.headers["Content-Type"].startswith("text/html")
    assert b"e2.mkv" not in stale and b"e2.mkv" in served.content
    assert "no-cache" in served.headers["Cache-Control"]
    assert (lib.database.parent / "graylink-snapshot.html").read_bytes() == stale  # served, not written


def test_the_page_counts_linkable_files_not_videos(lib: Library, web: Callable[..., WebLoop]) -> None:
    """A subtitle linked by [rules] extensions is in the count: the page labels it "linkable files"."""
    lib.add("Movies/A (2001)/A.mkv")
    lib.add("Movies/A (2001)/A.srt")
    w = web(rules={"extensions": ".srt"})
    wait_for("the first walk", linked(lib, "Movies/A (2001)/A.srt"), w.loop.proc)
    page = w.get("/").text
    assert "<span>linkable files</span>" in page and "<span>videos</span>" not in page


def test_api_status_is_the_status_document(lib: Library, web: Callable[..., WebLoop]) -> None:
    lib.add("TV/Show/e1.mkv")
    w = web()
    wait_for("the first walk", linked(lib, "TV/Show/e1.mkv"), w.loop.proc)
    served = w.get("/api/status").json()
    printed = json.loads(lib.run("status", "--json").stdout)
    assert served["index"] == printed["index"]
    assert set(served) == set(printed)
    assert served["service"]["running"] is True


def test_metrics_parse_with_prometheus_own_parser(lib: Library, web: Callable[..., WebLoop]) -> None:
    for n in range(3):
        lib.add(f"TV/Show/e{n}.mkv")
    w = web()
    wait_for("the links", lambda: len(links_in(lib.target)) == 3, w.loop.proc)
    wait_for("the walk's record", lambda: bool(job_result(lib, "walk")), w.loop.proc)
    answer = w.get("/metrics")
    assert answer.headers["Content-Type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }
    assert samples[("graylink_links", ())] == 3
    assert samples[("graylink_mount_up", ())] == 1
    assert samples[("graylink_cycles_total", (("result", "ok"),))] >= 1
    assert ("graylink_last_success_timestamp_seconds", (("job", "walk"),)) in samples


# ------------------------------------------------------------------ the page





def open_page(browser: Any, w: WebLoop, width: int) -> tuple[Any, list[str]]:
    context = browser.new_context(
        viewport={"width": width, "height": 900}, http_credentials={"username": "me", "password": w.token}
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(w.url + "/")
    return page, errors


def test_status_page_in_chromium_shows_mount_drop_and_conflict(
    lib: Library, web: Callable[..., WebLoop], browser: Any
) -> None:
    lib.add("TV/Show/e1.mkv")
    lib.add("TV/Show/e2.mkv")
    lib.add(".anchor")
    (lib.target / "TV/Show").mkdir(parents=True)
    (lib.target / "TV/Show/e2.mkv").write_text("a regular file where a link belongs")
    w = web(mount={"anchor": ".anchor", "check_interval": "1s"})
    wait_for("the first walk", linked(lib, "TV/Show/e1.mkv"), w.loop.proc)
    page, errors = open_page(browser, w, 1200)
    assert page.text_content("[data-tile=Mount] .headline") == "healthy"
    assert str(lib.target / "TV/Show/e2.mkv") in page.text_content("#conflicts")
    assert "create" in page.text_content("#changes") and "TV/Show/e1.mkv" in page.text_content("#changes")
    (lib.source / ".anchor").unlink()  # what a dropped mount looks like to the anchor check
    w.loop.wait_log("anchor")

    def shows_down() -> bool:
        page.reload()
        return page.text_content("[data-tile=Mount] .headline") == "down"

    wait_for("the page to show the mount down", shows_down, w.loop.proc)
    phone, phone_errors = open_page(browser, w, 390)
    overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, "the page scrolls sideways on a phone"
    cycles = phone.query_selector("#cycles .scroll")
    assert cycles is not None
    hidden = cycles.evaluate("s => s.scrollWidth - s.clientWidth")
    assert hidden <= 0, "the last cycles hide their exit codes off the side of a phone"
    assert errors == [] and phone_errors == []


def test_doctor_checks_the_address_and_the_alert_urls_without_showing_them(lib: Library) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        lib.write_ini(
            web={"listen": f"127.0.0.1:{busy.getsockname()[1]}"},
            alerts={"urls": "tgram://123456:made-up-bot-token/987654, nosuchservice://made-up-secret@host"},
        )
        result = lib.run("doctor")
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert "in use by another program" in out
    assert "does not understand 1 of the [alerts] urls (nosuchservice://…)" in out
    assert "made-up-bot-token" not in out and "made-up-secret" not in out
    lib.write_ini(web={"listen": f"127.0.0.1:{free_port()}"}, alerts={"urls": "json://127.0.0.1:9/hook"})
    fine = lib.run("doctor")
    assert "✔ web:" in fine.stdout and "✔ alerts: 1 Apprise URLs (json://…)" in fine.stdout


def test_a_media_server_that_does_not_answer_shows_on_the_page_and_in_metrics(
    lib: Library, web: Callable[..., WebLoop]
) -> None:
    lib.add("TV/Show/e1.mkv")
    key = "made-up-emby-key-5678"
    w = web(emby={"url": f"http://127.0.0.1:{free_port()}", "api_key": key})  # nothing listens there
    wait_for("the link", linked(lib, "TV/Show/e1.mkv"), w.loop.proc)
    wait_for("the failed delivery", lambda: "error" in json.dumps(w.get("/api/status").json()["emby"]), w.loop.proc)
    page = w.get("/").text
    assert 'data-tile="emby"' in page and "failing" in page and key not in page
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(w.get("/metrics").text)
        for s in family.samples
    }
    assert samples[("graylink_queue_depth", (("server", "emby"),))] == 1


def test_the_drive_feed_shows_on_the_page_and_in_metrics(
    lib: Library, mirror: Mirror, loop_of: Callable[[], Loop]  # noqa: F811  (the imported fixture)
) -> None:
    mirror.write_ini(scopes="drive")  # rclone's default scope: the Changes feed
    port = free_port()
    with lib.ini.open("a") as ini:
        ini.write(f"\n[web]\nlisten = 127.0.0.1:{port}\ntoken = {TOKEN}\n")
    w = WebLoop(lib, loop_of(), port, TOKEN)
    w.wait_up()
    wait_for("a successful poll", lambda: w.get("/api/status").json()["drive"].get("last_result") == "ok", w.loop.proc)
    page = w.get("/").text
    assert 'data-tile="Drive feed"' in page and "changes feed" in page and "healthy" in page
    samples = {s.name: s.value for f in text_string_to_metric_families(w.get("/metrics").text) for s in f.samples}
    assert samples["graylink_feed_ok"] == 1
    assert samples["graylink_drive_api_calls_last_24h"] >= 1


@pytest.mark.fuse
def test_sonarr_webhook_links_the_episode_once_it_shows_on_a_real_rclone_mount(
    rclone_mount: Callable[..., Mounted],  # noqa: F811  (the imported fixture)
    loop_of: Callable[[], Loop],
    tmp_path: Path,
) -> None:
    if MISSING_FUSE:
        pytest.skip(f"FUSE TESTS SKIPPED: {', '.join(MISSING_FUSE)} missing (install Debian's rclone and fuse3)")
    m = rclone_mount(dir_cache="1h")  # rclone keeps showing the old listing until asked to re-read
    rc_port, port = free_port(), free_port()
    m.process.kill()
    m.process.wait()
    subprocess.run(["fusermount3", "-uz", str(m.mnt)], check=False)
    m.process = start_rclone([*m.argv, "--rc", "--rc-no-auth", "--rc-addr", f"127.0.0.1:{rc_port}"], m.mnt)
    lib = Library(tmp_path, m.mnt, m.links, tmp_path / "graylink.db", m.ini)
    lib.write_ini(
        scan={"interval": "1h", "workers": "2"},
        mount={"rclone_rc": f"http://127.0.0.1:{rc_port}"},
        web={"listen": f"127.0.0.1:{port}", "token": TOKEN, "arr_path_map": f"/tv={m.mnt}", "arr_wait": "2m"},
    )
    w = WebLoop(lib, Loop(lib), port, TOKEN)
    try:
        w.wait_up()
        wait_for("the first walk", lambda: "Show/S01/e01.mkv" in m.links_now(), w.loop.proc)
        body = json.loads(arr_body("sonarr_download"))
        body["series"]["path"] = "/tv/Show"
        body["episodeFile"]["relativePath"] = "S01/e03.mkv"
        body["episodeFile"]["path"] = "/tv/Show/S01/e03.mkv"
        assert w.post("/api/webhook/sonarr", json.dumps(body)).status_code == 202
        # The upload lands on the Drive (here: the mount's backing folder) after the import.
        (m.src / "Show/S01/e03.mkv").write_bytes(b"video")
        wait_for("the episode linked through the mount", lambda: "Show/S01/e03.mkv" in m.links_now(), w.loop.proc)
        assert os.readlink(m.links / "Show/S01/e03.mkv") == str(m.mnt / "Show/S01/e03.mkv")
    finally:
        w.loop.kill()


def test_quiet_cycles_in_a_row_are_one_row_and_do_not_push_out_the_rest() -> None:
    from graylink.web.page import SHOWN_CYCLES, page_model

    def cycle(at: float, trigger: str = "walk", exit_code: int = 0, **counts: int) -> dict[str, Any]:
        return {"at": at, "trigger": trigger, "exit_code": exit_code, "duration_s": 0.01, "counts": counts}

    newest_first = [cycle(1000.0 - i) for i in range(150)]  # a day of no-change walks ...
    newest_first.insert(3, cycle(997.5, "webhook", create=2))  # ... around one that linked something
    newest_first.append(cycle(10.0, "walk", 1, create=1, failed=1))
    rows = page_model({}, newest_first, [], False).cycles
    assert [r["trigger"] for r in rows] == ["walk", "webhook", "walk", "walk"]
    assert rows[0]["repeat"] == 3 and rows[2]["repeat"] == 147
    assert rows[1]["counts"] == "+2 ~0 -0 !0" and rows[3]["counts"] == "+1 ~0 -0 !0 ✗1" and rows[3]["exit"] == 1
    assert len(page_model({}, [cycle(i, "walk", 1) for i in range(50)], [], False).cycles) == SHOWN_CYCLES


def test_unknown_routes_and_methods_answer_json(lib: Library, web: Callable[..., WebLoop]) -> None:
    w = web()
    missing = w.get("/nope")
    assert missing.status_code == 404 and "no such page" in missing.json()["error"]
    wrong = w.get("/api/reconcile")
    assert wrong.status_code == 405 and "GET is not allowed" in wrong.json()["error"]


def test_the_page_shows_a_conflict_whose_name_is_not_utf8(lib: Library, web: Callable[..., WebLoop]) -> None:
    # A name with a byte that is not UTF-8 reaches the mount as it is (rclone passes it through).
    lib.add(b"Movies/Bad\xffName/Bad\xff.mkv")
    lib.add("Movies/Good/Good.mkv")
    blocker = os.path.join(os.fsencode(lib.target), b"Movies/Bad\xffName/Bad\xff.mkv")
    os.makedirs(os.path.dirname(blocker))
    with open(blocker, "wb") as handle:
        handle.write(b"not a link")
    w = web()
    wait_for("the first walk", linked(lib, "Movies/Good/Good.mkv"), w.loop.proc)
    w.loop.wait_log("reconcile (walk)")
    page = w.get("/")
    assert page.status_code == 200, page.text[:300]
    assert "Movies/Bad\\xffName/Bad\\xff.mkv" in page.text  # shown as the log shows it
    assert "Exception on /" not in w.loop.text()
