"""Links deleted from the link tree by someone else are put back by the next run.

By hand, or by a media server's "delete item": the link tree is a local
filesystem, so the folder's mtime moves, and the next ordinary run (no
``--full``) plans that folder again, repairs the link and counts it.
"""

from __future__ import annotations

import json
import os
import shutil
import time

from conftest import Library, expected_links, links_in


def reconcile(lib: Library, *args: str, code: int = 0) -> dict[str, object]:
    done = lib.run("reconcile", "--json", *args)
    assert done.returncode == code, done.stderr
    doc: dict[str, object] = json.loads(done.stdout)
    return doc


def status(lib: Library) -> dict[str, object]:
    done = lib.run("status", "--json")
    assert done.returncode == 0, done.stderr
    doc: dict[str, object] = json.loads(done.stdout)
    return doc


def _library(lib: Library) -> None:
    lib.add("Movies/Alien (1979)/Alien (1979).mkv")
    lib.add("Movies/Heat (1995)/Heat (1995).mkv")
    for episode in range(1, 4):
        lib.add(f"TV/Show/Season 01/S01E0{episode}.mkv")


def test_links_deleted_by_hand_are_repaired_by_the_next_ordinary_run(lib: Library) -> None:
    _library(lib)
    reconcile(lib)
    time.sleep(1.1)  # past the racy window of the folders the first run made
    assert reconcile(lib)["actions"] == []
    quiet = reconcile(lib)
    stats = quiet["stats"]
    assert quiet["actions"] == [] and isinstance(stats, dict) and stats["dirs_listed"] == 0

    os.unlink(lib.target / "Movies/Alien (1979)/Alien (1979).mkv")  # by hand
    shutil.rmtree(lib.target / "TV/Show")  # a server's "delete item" of a whole show
    doc = reconcile(lib)  # an ordinary run: used to wait for the daily full verification
    counts = doc["counts"]
    assert isinstance(counts, dict)
    assert counts["repair"] == 4 and counts["create"] == 0, doc
    assert links_in(lib.target) == expected_links(lib.source)
    last = status(lib)["last_reconcile"]
    assert isinstance(last, dict) and last["counts"]["repair"] == 4
    assert reconcile(lib)["actions"] == []


def test_a_link_added_by_someone_else_beside_graylinks_is_seen_and_left_alone(lib: Library) -> None:
    _library(lib)
    reconcile(lib)
    time.sleep(1.1)
    reconcile(lib)
    folder = lib.target / "Movies/Heat (1995)"
    # The user replaces graylink's link by their own: a conflict at the next ordinary run.
    os.unlink(folder / "Heat (1995).mkv")
    os.symlink(lib.source / "Movies/Alien (1979)/Alien (1979).mkv", folder / "Heat (1995).mkv")
    doc = reconcile(lib, code=1)
    counts = doc["counts"]
    assert isinstance(counts, dict) and counts["conflict"] == 1 and counts["repair"] == 0
    assert os.readlink(folder / "Heat (1995).mkv") == str(lib.source / "Movies/Alien (1979)/Alien (1979).mkv")


def _tree_marks(lib: Library) -> int:
    done = lib.run("-v", "reconcile")
    assert done.returncode == 0, done.stderr
    return done.stderr.count("dirty (link-tree")


def test_a_folder_is_looked_at_again_once_only_while_it_is_within_a_timestamp_tick(lib: Library) -> None:
    """The racy rule re-plans a folder read within one timestamp tick of its last change,
    once: the cycle after a first run used to plan every folder again for a whole second
    (a second plan of the whole library), and the one after it again."""
    for show in range(30):
        lib.add(f"TV/Show {show:02d}/Season 01/S01E01.mkv")
    assert lib.run("reconcile").returncode == 0
    time.sleep(0.05)  # past a tick (1-10 ms), well within the old one-second window
    _tree_marks(lib)  # what the first run read too soon after making it is planned again and recorded
    time.sleep(0.05)
    assert _tree_marks(lib) == 0
    assert links_in(lib.target) == expected_links(lib.source)
