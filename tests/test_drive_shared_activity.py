"""Two libraries on one Drive share one Activity query, routed by the item record (issue 30).

``graylink reconcile --loop`` runs as a real process with two ``[library
NAME]`` sections on the same rclone remote, each its own folder of it, with
``[drive] feed = activity``, against the loopback Google (tests/google_server.py:
``activity:query`` after Google's QueryDriveActivityRequest, ``files.get``).
The walk runs once an hour and folder mtimes are trusted and put back after
every change, so whatever is linked or pruned after the first walk came
through the feed.
"""

from __future__ import annotations

import time
from pathlib import Path

from service_support import wait_for

from tests.drive_libraries import age, drive_loop
from tests.google_server import FakeGoogle
from tests.test_drive import SECRETS

from conftest import links_in

INTERVAL = 2.0
OLD_FILES = ("old1.mkv", "old2.mkv", "old3.mkv")  # on the Drive before the feed began: no record knows them


def test_two_libraries_on_one_drive_share_one_activity_query(tmp_path: Path) -> None:
    old: dict[str, dict[str, str]] = {}

    def prepare(name: str, src: Path, folder: str) -> None:
        (src / "Old").mkdir()
        old_folder = google.add("Old", folder, folder=True, record=False)
        old[name] = {}
        for file in OLD_FILES:
            (src / "Old" / file).write_bytes(b"video")
            old[name][file] = google.add(file, old_folder, record=False)

    scopes = "drive,drive.activity.readonly"
    with (
        FakeGoogle() as google,
        drive_loop(tmp_path, google, feed="activity", scopes=scopes, interval=INTERVAL, prepare=prepare) as loop,
    ):
        loop.wait_walked()
        loop.add("films", "A (2001)", "A.mkv")
        wait_for("the film linked", lambda: b"A (2001)/A.mkv" in links_in(tmp_path / "links-films"), loop.proc)
        loop.add("series", "Show", "e1.mkv")
        wait_for("the episode linked", lambda: b"Show/e1.mkv" in links_in(tmp_path / "links-series"), loop.proc)
        olds = {f"Old/{file}".encode() for file in OLD_FILES}
        assert links_in(tmp_path / "links-films").keys() == {b"A (2001)/A.mkv", *olds}  # each routed to its own
        assert links_in(tmp_path / "links-series").keys() == {b"Show/e1.mkv", *olds}

        before, start = len(google.state.queries), time.monotonic()
        time.sleep(5 * INTERVAL)
        queries, spent = google.state.queries[before:], time.monotonic() - start
        # One query per interval for both libraries (two libraries polling alone query twice as often),
        # over their common ancestor.
        assert len(queries) <= spent / INTERVAL + 1, (queries, spent)
        assert {ancestor for ancestor, _ in queries} == {loop.media}, queries

        # Deleted for good, never met by any record: the activity names no folder.
        (tmp_path / "src-series" / "Old" / "old2.mkv").unlink()
        age(tmp_path / "src-series")
        google.delete_forever(old["series"]["old2.mkv"])
        wait_for("the episode pruned", lambda: b"Old/old2.mkv" not in links_in(tmp_path / "links-series"), loop.proc)
        time.sleep(2 * INTERVAL)  # films polled past it too
        assert links_in(tmp_path / "links-films").keys() == {b"A (2001)/A.mkv", *olds}
        assert links_in(tmp_path / "links-series").keys() == {b"Show/e1.mkv", *olds - {b"Old/old2.mkv"}}
        # To the trash: files.get still names its folder, which places it in films.
        (tmp_path / "src-films" / "Old" / "old3.mkv").unlink()
        age(tmp_path / "src-films")
        google.trash(old["films"]["old3.mkv"])
        wait_for("the film pruned", lambda: b"Old/old3.mkv" not in links_in(tmp_path / "links-films"), loop.proc)
        time.sleep(2 * INTERVAL)
        assert links_in(tmp_path / "links-series").keys() == {b"Show/e1.mkv", *olds - {b"Old/old2.mkv"}}

        # The series' folder moves deeper (the mount shows the same): its chain is found anew, and
        # the shared query, for the same common folder, still serves it.
        google.move(loop.folders["series"], google.add("TV", loop.media, folder=True, record=True))
        time.sleep(2 * INTERVAL)
        loop.add("series", "Next", "e2.mkv")
        wait_for("the moved series linked", lambda: b"Next/e2.mkv" in links_in(tmp_path / "links-series"), loop.proc)
        before = len(google.state.queries)
        time.sleep(3 * INTERVAL)
        assert {ancestor for ancestor, _ in google.state.queries[before:]} == {loop.media}
        assert b"Next/e2.mkv" not in links_in(tmp_path / "links-films")
    text = loop.logged()
    assert loop.code == 0, text
    assert "Traceback" not in text and " ERROR " not in text, text
    # Each linked through the feed, in its own library only (the series: e1, then e2 after its move).
    assert text.count("[library films] reconcile (drive): 1 created") == 1, text
    assert text.count("[library series] reconcile (drive): 1 created") == 2, text
    # The deletion was the series library's only: the films library was not marked for it.
    assert "[library films] drive feed: cannot place" not in text, text
    assert "new activities, 0 folders marked" not in text, text  # the other library's are not counted
    assert "[library series] drive feed: cannot place" in text, text
    assert text.count("[library films] reconcile (drive)") == 2, text  # the film, its trash
    assert text.count("[library films] drive feed: ") == 4, text  # feed, started, the film, its trash
    assert not any(secret in text for secret in SECRETS)


def test_the_shared_answer_covers_the_common_ancestor_from_the_oldest_position() -> None:
    from graylink.drive.activity import Activity, Change
    from graylink.drive.shared_activity import ActivityPages, common_ancestor

    now = [0.0]
    pages = ActivityPages(clock=lambda: now[0])
    chains = {"films": ("films", "media", "root"), "series": ("series", "media", "root")}
    found: list[str] = []
    asked: list[tuple[str, int]] = []
    acts = [Activity("a1", 150, ()), Activity("a2", 250, ())]

    def chain(root: str) -> tuple[str, ...]:
        found.append(root)
        return chains[root]

    def query(ancestor: str, since: int) -> list[Activity]:
        asked.append((ancestor, since))
        return [a for a in acts if a.time_ms > since]

    films, series = pages.view(("drive",), 1.0), pages.view(("drive",), 1.0)
    assert films.activities("films", 100, lambda: chain("films"), query) == acts
    assert asked == [("films", 100)]  # alone: its own folder
    # The series' folder is not under the films' answer: one query for both, from the older position.
    now[0] = 0.1
    assert series.activities("series", 200, lambda: chain("series"), query) == [acts[1]]
    assert asked[-1] == ("media", 200)
    now[0] = 1.5  # the next interval: one query, each takes what is after its own position
    assert series.activities("series", 250, lambda: chain("series"), query) == []
    assert films.activities("films", 250, lambda: chain("films"), query) == [] and films.shared == 1
    assert asked[-1] == ("media", 250) and len(asked) == 3 and found == ["films", "series"]
    # A library behind the others (restarted from an older cursor) is never moved forward: asked anew.
    assert films.activities("films", 120, lambda: chain("films"), query) == acts
    assert asked[-1] == ("media", 120)
    # The series' folder moved: it may have left the ancestor, so it asks its own folder, and
    # its chain is found anew next time; the films' folder did not move.
    acts.append(Activity("a3", 300, (Change("move", "series", "Series", True),)))
    now[0] = 3.0
    assert series.activities("series", 250, lambda: chain("series"), query) is None
    assert films.activities("films", 250, lambda: chain("films"), query) == [acts[2]]
    now[0] = 4.5
    series.activities("series", 300, lambda: chain("series"), query)
    assert found == ["films", "series", "series"]
    # Google refuses the common folder (not the token's scope): each library asks its own, from then on.
    import httplib2
    from googleapiclient.errors import HttpError

    def refusing(ancestor: str, since: int) -> list[Activity]:
        asked.append((ancestor, since))
        if ancestor == "media":
            raise HttpError(httplib2.Response({"status": 404}), b'{"error": {"code": 404, "message": "not found"}}')
        return []

    now[0] = 6.0
    assert series.activities("series", 300, lambda: chain("series"), refusing) is None
    assert films.activities("films", 300, lambda: chain("films"), refusing) == []
    assert asked[-2:] == [("media", 300), ("films", 300)]
    # Another Drive tree (a folder shared with the user): its own ancestor.
    assert common_ancestor(("x", "other"), [chains["films"], ("x", "other")]) == "x"
    assert pages.fetches(("drive",)) == len(asked) - 1 == 7
