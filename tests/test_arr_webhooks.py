# ruff: noqa: F811  (the tests take the imported fixture `web` as an argument)
"""Sonarr / Radarr webhooks as their sources send them, and what graylink answers.

The payloads are ``tests/data/arr`` (built from Sonarr's and Radarr's
``WebhookBase.cs``, see its README); the client is ``arr_client.ArrWebhook``,
which judges an answer the way Sonarr does (any status >= 400 counts against
the connection until Sonarr switches it off).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from arr_client import ArrWebhook
from prometheus_client.parser import text_string_to_metric_families
from service_support import linked, wait_for
from web_support import TOKEN, WebLoop

from graylink.config.values import arr_path_map
from graylink.store.db import Mark, Store
from graylink.web import arr
from graylink.web.arrpaths import PathError, request_path, to_source
from graylink.web.arrwait import mark_event, recheck, waiting
from tests.test_web import arr_body, marks, web  # noqa: F401  (web: the fixture)

from conftest import Library, links_in

S01 = "/tv/Fate Zero/Season 01"

# Every fixture: (the event graylink reads, the folder, the files it waits for).
FIXTURES = {
    "sonarr_download": ("Download", "/tv/Fate Zero", (f"{S01}/Fate Zero - S01E02 - False Combatants.mkv",)),
    "sonarr_import_complete": (
        "Download",
        "/tv/Fate Zero",
        (
            f"{S01}/Fate Zero - S01E03 - The Night of the Gathering.mkv",
            f"{S01}/Fate Zero - S01E04 - The Spear of the Evil Eye.mkv",
        ),
    ),
    "sonarr_rename": ("Rename", "/tv/Fate Zero", (f"{S01}/Fate Zero - S01E01 - The Summoning of Heroes.mkv",)),
    "sonarr_episode_file_delete": ("EpisodeFileDelete", "/tv/Fate Zero", ()),
    "sonarr_series_delete": ("SeriesDelete", "/tv/Fate Zero", ()),
    "sonarr_test": ("Test", "", ()),
    "radarr_download": ("Download", "/movies/Heat (1995)", ("/movies/Heat (1995)/Heat (1995) Bluray-1080p.mkv",)),
    "radarr_rename": (
        "Rename",
        "/movies/Heat (1995)",
        ("/movies/Heat (1995)/Heat (1995) {tmdb-949} Bluray-1080p.mkv",),
    ),
    "radarr_movie_file_delete": ("MovieFileDelete", "/movies/Heat (1995)", ()),
    "radarr_movie_delete": ("MovieDelete", "/movies/Ronin (1998)", ()),
    "radarr_test": ("Test", "", ()),
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_every_file_changing_event_names_its_folder_and_files(name: str) -> None:
    event = arr.parse(name.split("_")[0], arr_body(name))
    assert (event.event, event.folder, event.files) == FIXTURES[name]


def test_sonarr_import_complete_is_a_download_with_a_list_of_files() -> None:
    # WebhookBase.cs BuildOnImportCompletePayload: eventType Download, episodeFiles, no episodeFile.
    body = json.loads(arr_body("sonarr_import_complete"))
    assert body["eventType"] == "Download" and "episodeFile" not in body
    assert len(arr.parse("sonarr", arr_body("sonarr_import_complete")).files) == len(body["episodeFiles"]) == 2
    assert "ImportComplete" not in arr.SONARR_EVENTS  # no such event type (WebhookEventType.cs)


# ------------------------------------------------------------------ paths


def test_windows_arr_paths_map_onto_the_source_whatever_their_case_and_separators() -> None:
    pairs = arr_path_map(r"D:\TV=/src/TV, \\NAS\Media\Movies\=/src/Movies, /tv=/src/posix")
    assert to_source(r"D:\TV\Fate Zero\Season 01\e01.mkv", pairs, "/src") == b"TV/Fate Zero/Season 01/e01.mkv"
    assert to_source("d:/tv/Fate Zero", pairs, "/src") == b"TV/Fate Zero"  # case and separator are Windows'
    assert to_source(r"\\nas\media\movies\Heat (1995)", pairs, "/src") == b"Movies/Heat (1995)"
    assert to_source("/tv/Show", pairs, "/src") == b"posix/Show"
    with pytest.raises(PathError, match="not inside the source"):
        to_source("/TV/Show", pairs, "/src")  # a POSIX path keeps its case
    with pytest.raises(PathError, match="not inside the source"):
        to_source(r"E:\TV\Show", pairs, "/src")
    with pytest.raises(PathError, match="not inside the source"):
        to_source(r"C:\testpath", (), "/src")  # Sonarr's Test payload, unmapped
    with pytest.raises(ValueError, match="absolute"):
        arr_path_map("TV=/src/TV")


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/tv/Show\x00/x.mkv", "NUL"),
        ("/tv/Show\ud800", "surrogate"),
        ("/tv/Show/\udcff.mkv", "surrogate"),
        ("/tv/" + "x" * 5000, "longer than"),
        ("/tv/" + "x" * 300 + "/e.mkv", "longer than 255"),
        ("/tv/../../etc", "'..'"),
        ("/tv/Show/../Other", "'..'"),
        (r"D:\TV\..\..\Windows", "'..'"),
        ("tv/Show", "not an absolute path"),
        ("", "non-empty"),
    ],
)
def test_paths_no_file_can_have_are_refused_at_the_edge(path: str, why: str) -> None:
    with pytest.raises(PathError, match=why):
        to_source(path, (("/tv", "/src/TV"), ("D:", "/src/D")), "/src")


@pytest.mark.parametrize("path", ["TV/a\x00b", "TV/\ud800", "../etc", "TV/../../etc", "/src/../etc", "x" * 5000])
def test_request_paths_are_checked_the_same_way(path: str) -> None:
    with pytest.raises(PathError):
        request_path(path, "/src")


# ------------------------------------------------------------------ a bad mark from any source


def test_a_mark_no_system_call_can_take_is_dropped_with_one_line_and_linking_goes_on(lib: Library) -> None:
    lib.add("Movies/A/a.mkv")
    assert lib.run("reconcile").returncode == 0
    bad = [b"Movies/B\x00x", b"Movies/../../etc", b"/abs", b"x" * 300 + b"/y", b"Movies//B"]
    with Store(str(lib.database)) as store, store.atomic():
        store.add_marks(Mark(path, "sonarr") for path in bad)
    lib.add("Movies/C/c.mkv")
    first = lib.run("reconcile")
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr and "unexpected error" not in first.stderr
    assert first.stderr.count("dropped a dirty mark") == len(bad)
    assert "Movies/B\\x00x holds a NUL byte" in first.stderr  # escaped: a NUL never reaches the log
    assert os.fsencode("Movies/C/c.mkv") in links_in(lib.target)
    again = lib.run("reconcile")
    assert again.returncode == 0 and "dropped a dirty mark" not in again.stderr


# ------------------------------------------------------------------ waits merge


def test_a_later_webhook_for_the_same_folder_adds_to_the_wait(lib: Library) -> None:
    assert lib.run("reconcile").returncode == 0
    with Store(str(lib.database)) as store:
        mark_event(store, b"TV/Show", [b"TV/Show/e1.mkv", b"TV/Show/e2.mkv"], "sonarr", 60, now=1000.0)
        mark_event(store, b"TV/Show", [b"TV/Show/e3.mkv"], "sonarr", 60, now=1010.0)
        assert sorted(w.file for w in waiting(store)) == [b"TV/Show/e1.mkv", b"TV/Show/e2.mkv", b"TV/Show/e3.mkv"]
        assert recheck(store, 60, now=1065.0) == 1  # e1 and e2 timed out, e3 waits on
        assert [w.file for w in waiting(store)] == [b"TV/Show/e3.mkv"]


# ------------------------------------------------------------------ the service


def status_of(w: WebLoop) -> dict[str, object]:
    section = w.get("/api/status").json()["webhooks"]
    assert isinstance(section, dict)
    return section


def test_everything_that_passed_auth_is_2xx_so_sonarr_keeps_the_webhook(
    lib: Library, web: Callable[..., WebLoop]
) -> None:
    lib.add("Movies/Ronin (1998)/Ronin.mkv")
    w = web()
    wait_for("the first walk", linked(lib, "Movies/Ronin (1998)/Ronin.mkv"), w.loop.proc)
    sonarr = ArrWebhook(w.url + "/api/webhook/sonarr", TOKEN)
    radarr = ArrWebhook(w.url + "/api/webhook/radarr", TOKEN)
    download = json.loads(arr_body("radarr_download"))
    elsewhere = json.loads(arr_body("sonarr_episode_file_delete"))
    elsewhere["series"]["path"] = "/srv/other/Show"
    nul = {**download, "movie": {**download["movie"], "folderPath": "/movies/Heat\u0000 (1995)"}}
    unusable = [
        (sonarr, json.dumps(elsewhere)),  # was 422
        (radarr, b"{not json"),  # was 400
        (radarr, json.dumps({"eventType": "Download", "movie": {}})),  # was 400
        (radarr, b"[1]"),
        (radarr, json.dumps(nul)),  # was 202, and its mark stopped every later walk
        (radarr, json.dumps(download).replace("Bluray-1080p.mkv", "\\ud800.mkv")),
        (sonarr, b"[" * 100_000 + b"]" * 100_000),  # deep JSON
        (sonarr, json.dumps(json.loads(arr_body("sonarr_test"))).replace("Test", "Download")),  # C:\testpath
    ]
    for client, body in unusable:
        answer = client.send(body)
        assert answer.status_code == 200, (answer.status_code, answer.text[:200])
        assert answer.json()["ignored"] and answer.json()["marked"] == []
    for client, name in ((sonarr, "sonarr_test"), (radarr, "radarr_test")):
        assert client.send(arr_body(name)).status_code == 200  # the Test button: a green tick
    assert sonarr.send(json.dumps({"eventType": "Grab", "series": {"path": "/tv/X"}})).status_code == 200
    assert sonarr.failures == radarr.failures == 0
    assert marks(lib) == []
    ignored = len(unusable)
    assert status_of(w)["ignored"] == ignored
    assert w.loop.text().count("WARNING webhook (") == ignored
    samples = {s.name: s.value for f in text_string_to_metric_families(w.get("/metrics").text) for s in f.samples}
    assert samples["graylink_webhooks_ignored_total"] == ignored
    assert "ignored webhooks" in w.get("/").text
    # Only a wrong token is refused, and Sonarr is right to count that one.
    intruder = ArrWebhook(w.url + "/api/webhook/radarr", "not-the-token")
    assert intruder.send(arr_body("radarr_download")).status_code == 401 and intruder.failures == 1
    # After the NUL path, linking goes on: a new movie is linked at once.
    (lib.source / "Movies/Ronin (1998)/Ronin.mkv").unlink()
    lib.add("Movies/Heat (1995)/Heat (1995) Bluray-1080p.mkv")
    assert radarr.send(arr_body("radarr_download")).status_code == 202
    wait_for("the movie's link", linked(lib, "Movies/Heat (1995)/Heat (1995) Bluray-1080p.mkv"), w.loop.proc)
    assert "Traceback" not in w.loop.text()


def test_reconcile_requests_with_a_path_no_file_can_have_mark_nothing(
    lib: Library, web: Callable[..., WebLoop]
) -> None:
    w = web()
    bodies = ({"paths": ["Movies/a\u0000b"]}, {"paths": ["Movies/\ud800"]}, {"paths": ["x" * 5000]})
    for body in bodies:  # no webhook: 400 with the reason
        answer = w.post("/api/reconcile", json.dumps(body))
        assert answer.status_code == 400 and answer.json()["error"], answer.text
    # The generic webhook is a webhook: 200, what was ignored and why in the body, one WARNING each.
    unusable = [*(json.dumps(b) for b in bodies), "{not json", "[1]", '{"paths": []}', '{"nothing": 1}']
    for text in unusable:
        answer = w.post("/api/webhook", text)
        assert answer.status_code == 200, (answer.status_code, answer.text[:200])
        assert answer.json()["ignored"] and answer.json()["marked"] == [], answer.text
    assert marks(lib) == []
    log = w.loop.text()
    assert log.count("refused a request") == len(bodies)
    assert log.count("WARNING webhook (webhook) ignored: ") == len(unusable)
    assert status_of(w)["ignored"] == len(unusable)
    lib.add("Movies/M/m.mkv")
    assert w.post("/api/reconcile", {"paths": ["Movies/M"]}).status_code == 202
    wait_for("the link after the refused paths", linked(lib, "Movies/M/m.mkv"), w.loop.proc)


def test_the_arr_put_method_is_a_webhook_too(lib: Library, web: Callable[..., WebLoop]) -> None:
    w = web()  # Sonarr / Radarr's webhook offers POST and PUT (WebhookMethod.cs)
    lib.add("Movies/Heat (1995)/Heat (1995) Bluray-1080p.mkv")
    radarr_put = ArrWebhook(w.url + "/api/webhook/radarr", TOKEN, method="PUT")
    assert radarr_put.send(arr_body("radarr_download")).status_code == 202
    wait_for("the PUT's link", linked(lib, "Movies/Heat (1995)/Heat (1995) Bluray-1080p.mkv"), w.loop.proc)
    assert ArrWebhook(w.url + "/api/webhook/sonarr", TOKEN, method="PUT").send(arr_body("sonarr_test")).ok
    assert radarr_put.failures == 0


def test_a_token_with_letters_outside_ascii_works_as_sonarr_and_a_browser_send_it(
    lib: Library, web: Callable[..., WebLoop]
) -> None:
    token = "jäger-ß-token-ÿ-1234"  # ISO-8859-1 letters: Sonarr sends each as one byte
    w = web(token=token)
    assert ArrWebhook(w.url + "/api/webhook/sonarr", token).send(arr_body("sonarr_test")).status_code == 200
    utf8 = requests.get(w.url + "/api/status", auth=("me", token), timeout=30)  # requests: UTF-8, as browsers
    assert utf8.status_code == 200
    wrong = ArrWebhook(w.url + "/api/webhook/sonarr", "jager-ss-token-y-1234")
    assert wrong.send(arr_body("sonarr_test")).status_code == 401


def test_sonarr_on_windows_import_complete_links_every_file_once_uploaded(
    lib: Library, web: Callable[..., WebLoop]
) -> None:
    folder = "TV/Fate Zero/Season 01"
    lib.add(f"{folder}/Fate Zero - S01E01.mkv")
    w = web(web={"arr_wait": "2m", "arr_path_map": rf"D:\Media\TV={lib.source}/TV"})
    wait_for("the first walk", linked(lib, f"{folder}/Fate Zero - S01E01.mkv"), w.loop.proc)
    body = json.loads(arr_body("sonarr_import_complete"))
    body["series"]["path"] = r"D:\Media\TV\Fate Zero"
    for item in body["episodeFiles"]:  # Path.Combine on Windows; Sonarr keeps the case the user typed
        item["path"] = "d:\\media\\tv\\Fate Zero\\" + item["relativePath"].replace("/", "\\")
    answer = ArrWebhook(w.url + "/api/webhook/sonarr", TOKEN).send(json.dumps(body))
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"event": "Download", "marked": ["TV/Fate Zero"], "waiting_for": 2}
    time.sleep(3)  # the import is done; the uploads land later, one by one
    for item in body["episodeFiles"]:
        lib.add(f"TV/Fate Zero/{item['relativePath']}")
        wait_for(item["relativePath"], linked(lib, f"TV/Fate Zero/{item['relativePath']}"), w.loop.proc)
    wait_for("the wait to end", lambda: status_of(w)["waiting_files"] == 0, w.loop.proc)


# ------------------------------------------------------------------ a storm


def test_a_storm_of_1000_episode_imports_links_every_file_within_one_look_after_it_lands(
    lib: Library, web: Callable[..., WebLoop], tmp_path: Path
) -> None:
    shows, per_show = 4, 250
    w = web(web={"arr_wait": "2m"})  # a look every 2 s
    look_s = 2.0
    template = json.loads(arr_body("sonarr_download"))

    def event(show: int, episode: int) -> tuple[str, bytes]:
        rel = f"Season 01/Show {show} - S01E{episode:03d}.mkv"
        body = json.loads(json.dumps(template))
        body["series"]["path"] = f"/tv/Show {show}"
        body["episodeFile"].update(relativePath=rel, path=f"/tv/Show {show}/{rel}")
        return f"TV/Show {show}/{rel}", json.dumps(body).encode()

    events = [event(s, e) for e in range(1, per_show + 1) for s in range(shows)]
    client = ArrWebhook(w.url + "/api/webhook/sonarr", TOKEN)
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda ev: client.send(ev[1]).status_code, events))
    storm_s = time.monotonic() - started
    assert answers.count(202) == len(events) and client.failures == 0
    assert storm_s < 120, storm_s
    # The uploads land after the imports, newest announcement first: each file must
    # still be waited for when it lands, whatever was announced after it.
    landed: dict[str, float] = {}
    pending = [rel for rel, _ in reversed(events)]
    seen: dict[str, float] = {}
    while pending or len(seen) < len(events):
        batch, pending = pending[:50], pending[50:]
        for rel in batch:
            lib.add(rel)
            landed[rel] = time.monotonic()
        now_links = links_in(lib.target)
        for rel in landed:
            if rel not in seen and os.fsencode(rel) in now_links:
                seen[rel] = time.monotonic()
        if not pending and time.monotonic() - max(landed.values()) > 4 * look_s + 30:
            break
        time.sleep(0.2)
        assert w.loop.proc.poll() is None
    late = {rel: seen.get(rel, float("inf")) - at for rel, at in landed.items()}
    missing = [rel for rel, delay in late.items() if delay == float("inf")]
    assert not missing, f"{len(missing)} announced files never linked, e.g. {missing[:3]}"
    worst = max(late.values())
    # One look (2 s) plus the cycle it triggers; a cycle on 2 shared cores under load: a generous bound.
    assert worst < look_s + 10, worst
    (tmp_path / "storm.json").write_text(json.dumps({"storm_s": storm_s, "worst_link_delay_s": worst}))
    print(f"storm: {len(events)} webhooks in {storm_s:.1f} s; worst link delay after landing {worst:.1f} s")
    wait_for("every wait to end", lambda: status_of(w)["waiting_files"] == 0, w.loop.proc)
    conn = sqlite3.connect(lib.database)
    assert conn.execute("SELECT count(*) FROM arr_wait_file").fetchone()[0] == 0
    conn.close()


def test_waits_an_older_graylink_kept_carry_over_to_one_row_per_file(lib: Library) -> None:
    assert lib.run("reconcile").returncode == 0
    conn = sqlite3.connect(lib.database)
    conn.execute("DROP TABLE arr_wait_file")
    conn.execute("DELETE FROM applied_migration WHERE name = '0016_arr_wait_file'")
    conn.execute(  # migration 0008's table, as graylink 0.1 wrote it: one row per folder, its files as JSON
        "CREATE TABLE arr_wait (folder BLOB PRIMARY KEY, files TEXT NOT NULL, "
        "origin TEXT NOT NULL, since REAL NOT NULL, until REAL NOT NULL)"
    )
    rows = [(b"TV/Show", json.dumps(["TV/Show/e1.mkv", "TV/Show/e2.mkv"]), "sonarr", 10.0, 20.0)]
    conn.executemany("INSERT INTO arr_wait VALUES (?, ?, ?, ?, ?)", [*rows, (b"TV/Bad", "not json", "sonarr", 1, 2)])
    conn.commit()
    conn.close()
    with Store(str(lib.database)) as store:
        assert [(w.folder, w.file, w.until) for w in waiting(store)] == [
            (b"TV/Show", b"TV/Show/e1.mkv", 20.0),
            (b"TV/Show", b"TV/Show/e2.mkv", 20.0),
        ]
        assert not store.db.table_exists("arr_wait")
