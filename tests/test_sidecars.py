"""Sidecars beside a video, and samples left out (issue 27 item 9).

``[rules] sidecars = yes`` links the subtitles, .nfo and artwork that belong
to a linked video (Jellyfin's naming: MediaInfoResolver.cs, LocalImageProvider.cs),
announced to the servers as the video's folder; ``[rules] skip_samples``
(on by default, as Jellyfin and Plex ignore samples) leaves out videos named
like samples under ``sample_size``. graylink runs as a real process over real
files, with a loopback Emby (tests/emby_server.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from emby_server import FakeMediaServer

from graylink.config import load_config
from graylink.reconcile.planning import rules_of
from graylink.source import sidecars
from graylink.source.rules import Rules
from graylink.store.db import Store
from graylink.web.library import folder_view

from conftest import Library

KEY = "emby-key-made-up-4f18c2d9"
MOVIE = "Movies/Movie (2020)"


def linked(lib: Library) -> set[str]:
    """Every symlink in the link tree, relative to it."""
    out = set()
    for folder, _dirs, files in os.walk(lib.target):
        for name in files:
            path = Path(folder) / name
            if path.is_symlink() and not str(path.relative_to(lib.target)).startswith(".graylink"):
                out.add(str(path.relative_to(lib.target)))
    return out


def reconcile(lib: Library) -> dict[str, object]:
    done = lib.run("reconcile", "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def big(lib: Library, rel: str, size: int = 400_000_000) -> None:
    """A file of ``size`` bytes that costs no disk (sparse)."""
    path = lib.add(rel, b"")
    os.truncate(path, size)


def movie_with_sidecars(lib: Library) -> None:
    lib.add(f"{MOVIE}/Movie (2020).mkv")
    for name in ("Movie (2020).en.srt", "Movie (2020).forced.srt", "Movie (2020).nfo", "poster.jpg"):
        lib.add(f"{MOVIE}/{name}")


def test_by_default_no_sidecar_is_linked(lib: Library) -> None:
    movie_with_sidecars(lib)
    reconcile(lib)
    assert linked(lib) == {f"{MOVIE}/Movie (2020).mkv"}
    # The documented key, written out with its default, says the same.
    lib.write_ini(rules={"sidecars": "no"})
    doc = reconcile(lib)
    assert linked(lib) == {f"{MOVIE}/Movie (2020).mkv"}
    assert doc["counts"]["create"] == 0  # type: ignore[index]


def test_sidecars_of_a_linked_video_are_linked_and_go_with_it(lib: Library) -> None:
    lib.write_ini(rules={"sidecars": "yes"})
    movie_with_sidecars(lib)
    lib.add(f"{MOVIE}/Movie (2020)-fanart.jpg")
    lib.add(f"{MOVIE}/notes.txt")  # no sidecar's extension
    lib.add("Movies/Orphan/Gone Movie (2019).en.srt")  # its video is not there
    lib.add("Movies/Orphan/poster.jpg")  # a folder's artwork, no video in or below it
    lib.add("TV/Show/tvshow.nfo")
    lib.add("TV/Show/season01-poster.jpg")
    lib.add("TV/Show/Season 01/Show S01E01.mkv")
    lib.add("TV/Show/Season 01/Show S01E01.en.srt")
    lib.add("TV/Show/Season 01/Show S01E02.en.srt")  # the episode it belongs to is missing
    reconcile(lib)
    assert linked(lib) == {
        f"{MOVIE}/Movie (2020).mkv",
        f"{MOVIE}/Movie (2020).en.srt",
        f"{MOVIE}/Movie (2020).forced.srt",
        f"{MOVIE}/Movie (2020).nfo",
        f"{MOVIE}/Movie (2020)-fanart.jpg",
        f"{MOVIE}/poster.jpg",
        "TV/Show/tvshow.nfo",
        "TV/Show/season01-poster.jpg",
        "TV/Show/Season 01/Show S01E01.mkv",
        "TV/Show/Season 01/Show S01E01.en.srt",
    }
    assert os.readlink(lib.target / MOVIE / "Movie (2020).en.srt") == str(lib.source / MOVIE / "Movie (2020).en.srt")
    # status counts the sidecars apart from the videos (issue 27 item 10).
    index = json.loads(lib.run("status", "--json").stdout)["index"]
    assert (index["videos"], index["links"], index["sidecars"]) == (2, 10, 8)
    assert "(2 linkable); 10 links (8 to sidecars) in" in lib.run("status").stdout

    # The video goes: its sidecars go with it, although their files stay.
    (lib.source / MOVIE / "Movie (2020).mkv").unlink()
    reconcile(lib)
    assert not any(path.startswith(MOVIE) for path in linked(lib))
    assert (lib.source / MOVIE / "poster.jpg").exists()

    # The option turned off: the sidecars still linked are pruned.
    lib.write_ini(rules={"sidecars": "no"})
    reconcile(lib)
    assert linked(lib) == {"TV/Show/Season 01/Show S01E01.mkv"}


def test_the_server_hears_the_folder_once_not_each_sidecar(lib: Library) -> None:
    with FakeMediaServer("emby", KEY) as emby:
        lib.write_ini(
            rules={"sidecars": "yes"}, emby={"url": emby.url, "api_key": KEY, "path_map": f"{lib.target}=/media"}
        )
        movie_with_sidecars(lib)
        reconcile(lib)
        folder = "/media/Movies/Movie (2020)"
        sent = [[(u["Path"], u["UpdateType"]) for u in p.body["Updates"]] for p in emby.posts("/Library/Media/Updated")]
        assert sent == [[(folder, "Created")]]

        # A subtitle added later: the folder again, once.
        lib.add(f"{MOVIE}/Movie (2020).de.srt")
        lib.add(f"{MOVIE}/Movie (2020).fr.srt")
        reconcile(lib)
        last = emby.posts("/Library/Media/Updated")[-1].body["Updates"]
        assert [(u["Path"], u["UpdateType"]) for u in last] == [(folder, "Modified")]

        # No sidecar waits for the server to list it as an item of its own.
        status = lib.run("status", "--json")
        doc = json.loads(status.stdout)
        tracked = json.dumps(doc)
        assert ".srt" not in tracked and "poster.jpg" not in tracked


def test_samples_are_left_out_by_default_and_linked_with_the_filter_off(lib: Library) -> None:
    lib.add(f"{MOVIE}/Movie (2020).mkv")
    lib.add(f"{MOVIE}/sample.mp4")
    lib.add(f"{MOVIE}/Movie-sample.mkv")
    lib.add(f"{MOVIE}/Movie (2020).sample.mkv")
    lib.add(f"{MOVIE}/Sample/clip.mkv")
    lib.add("Movies/Samples of Life (2019)/Samples of Life (2019).mkv")  # "Samples" is a word of the title
    lib.add("Movies/Resample (2018)/Resample (2018).mkv")
    big(lib, "Movies/The Sample (2021)/The Sample (2021).mkv")  # the word, but a film's size
    films = {
        f"{MOVIE}/Movie (2020).mkv",
        "Movies/Samples of Life (2019)/Samples of Life (2019).mkv",
        "Movies/Resample (2018)/Resample (2018).mkv",
        "Movies/The Sample (2021)/The Sample (2021).mkv",
    }
    samples = {
        f"{MOVIE}/sample.mp4",
        f"{MOVIE}/Movie-sample.mkv",
        f"{MOVIE}/Movie (2020).sample.mkv",
        f"{MOVIE}/Sample/clip.mkv",
    }
    reconcile(lib)
    assert linked(lib) == films
    # The web face's library page says a sample is left out, not waiting for a link.
    config = load_config(str(lib.ini), environ={})
    with Store(str(lib.database)) as store:
        view = folder_view(config, store, rules_of(config), (), MOVIE.encode())
    states = {row.rel.decode(): row.state for row in view.files}
    assert states[f"{MOVIE}/sample.mp4"] == states[f"{MOVIE}/Movie-sample.mkv"] == "excluded"
    # The snapshot does not count a sample as linkable either.
    snap = lib.run("snapshot", "-o", str(lib.root / "snapshot.html"))
    assert "(4 linkable, 4 linked)" in snap.stdout + snap.stderr, snap.stdout + snap.stderr

    lib.write_ini(rules={"skip_samples": "no"})
    reconcile(lib)
    assert linked(lib) == films | samples

    # On again, with a floor that takes the big one too: the sample links are pruned
    # (the last look before a prune does not hold them: their files are still there).
    lib.write_ini(rules={"skip_samples": "yes", "sample_size": "1G"})
    doc = reconcile(lib)
    assert linked(lib) == films - {"Movies/The Sample (2021)/The Sample (2021).mkv"}
    assert doc["counts"]["prune"] == len(samples) + 1  # type: ignore[index]


def test_matching_is_per_folder_and_by_name() -> None:
    videos = [b"Show S01E01.mkv", b"Show S01E10.mkv"]
    names = [
        *videos,
        b"Show S01E01.en.srt",
        b"Show S01E10 - English.srt",
        b"Show S01E1.srt",  # no episode of that name
        b"Show S01E100.srt",  # "Show S01E10" followed by no separator
        b"folder.jpg",
        b"fanart-2.jpg",
        b"._folder.jpg",
        b"readme.nfo",
    ]
    assert sidecars.belonging(names, videos, lambda: False) == [
        b"Show S01E01.en.srt",
        b"Show S01E10 - English.srt",
        b"folder.jpg",
        b"fanart-2.jpg",
    ]
    # A folder without videos: its show artwork only when a video is linked below.
    assert sidecars.belonging([b"tvshow.nfo", b"x.srt"], [], lambda: True) == [b"tvshow.nfo"]
    assert sidecars.belonging([b"tvshow.nfo"], [], lambda: False) == []
    rules = Rules.build(sample_floor=300_000_000)
    names = [b"sample.mkv", b"a.sample.mkv", b"a-Sample.mkv", b"a [sample].mkv", b"Samples.mkv", b"x.strm"]
    assert rules.named_samples(b"M", names) == [b"sample.mkv", b"a.sample.mkv", b"a-Sample.mkv", b"a [sample].mkv"]
    assert rules.named_samples(b"M/Samples", [b"x.mkv", b"sample.strm"]) == [b"x.mkv"]
    assert Rules.build().named_samples(b"M", [b"sample.mkv"]) == []


def test_subtitles_linked_by_extensions_are_announced_as_their_folder(lib: Library) -> None:
    """The older way (``[rules] extensions = .srt``) links every .srt: the server is
    told their folder too, never a subtitle as an item it would not list."""
    with FakeMediaServer("emby", KEY) as emby:
        lib.write_ini(
            rules={"extensions": ".srt"}, emby={"url": emby.url, "api_key": KEY, "path_map": f"{lib.target}=/media"}
        )
        lib.add(f"{MOVIE}/Movie (2020).mkv")
        reconcile(lib)
        lib.add(f"{MOVIE}/Movie (2020).en.srt")
        lib.add(f"{MOVIE}/Movie (2020).de.srt")
        reconcile(lib)
        last = emby.posts("/Library/Media/Updated")[-1].body["Updates"]
        assert [(u["Path"], u["UpdateType"]) for u in last] == [("/media/Movies/Movie (2020)", "Modified")]


def test_a_sidecar_waits_while_its_video_is_still_being_written(lib: Library) -> None:
    """[scan] settle holds a new video's Created until it holds still; its
    sidecars' folder is not announced before it (the server would probe a
    file still being written)."""
    with FakeMediaServer("emby", KEY) as emby:
        lib.write_ini(
            scan={"settle": "1h"},
            rules={"sidecars": "yes"},
            emby={"url": emby.url, "api_key": KEY, "path_map": f"{lib.target}=/media"},
        )
        movie_with_sidecars(lib)
        reconcile(lib)
        assert f"{MOVIE}/Movie (2020).en.srt" in linked(lib)
        assert [p.body["Updates"] for p in emby.posts("/Library/Media/Updated")] == []
