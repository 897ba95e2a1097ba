"""The reconciler end to end on a real filesystem and a real SQLite file."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import Library, expected_links, links_in, tree_state


def reconcile(lib: Library, *args: str, code: int = 0) -> dict[str, Any]:
    result = lib.cli("reconcile", "--json", *args)
    assert result.exit_code == code, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def basic_library(lib: Library) -> None:
    lib.add("Movies/Alien (1979)/Alien (1979).mkv")
    lib.add("Movies/Alien (1979)/Alien (1979).nfo")
    lib.add("Movies/Alien (1979)/poster.jpg")
    lib.add("Movies/Alien (1979)/Alien (1979).en.srt")
    lib.add("Movies/Heat (1995)/Heat.MP4")
    lib.add("Movies/Disc (2010)/BDMV/STREAM/00001.m2ts")
    lib.add("Movies/Disc (2010)/BDMV/STREAM/00002.m2ts")
    lib.add("Movies/Other Disc/bdmv/STREAM/00001.m2ts")
    lib.add("Movies/Deep/x/BdMv/a/b/c.mkv")
    lib.add("TV/Show/Season 01/Show S01E01.mkv")
    lib.add("TV/Show/Season 01/Show S01E02.avi")
    lib.add("TV/Show/Season 01/Show S01E03.mkv.part")
    lib.add("TV/Show/Season 01/._Show S01E01.mkv")
    lib.add("Anime/進撃の巨人/第1話.mkv")
    lib.add("top.ts")


def test_first_run_links_exactly_the_videos(lib: Library) -> None:
    basic_library(lib)
    doc = reconcile(lib)
    assert doc["dry_run"] is False
    assert doc["counts"] == {
        "create": 6,
        "repair": 0,
        "prune": 0,
        "conflict": 0,
        "braked": 0,
        "failed": 0,
        "not_tried": 0,
    }
    assert links_in(lib.target) == expected_links(lib.source)
    assert b"Movies/Disc (2010)/BDMV/STREAM/00001.m2ts" not in links_in(lib.target)
    # absolute links into the source by default
    for content in links_in(lib.target).values():
        assert content.startswith(os.fsencode(lib.source) + b"/")
    assert doc["stats"]["files_indexed"] == 15
    assert set(doc["stats"]) == {"dirs_statted", "dirs_listed", "files_indexed", "duration_s", "rows_written"}
    assert all(set(a) >= {"op", "link", "target"} for a in doc["actions"])


def test_second_run_plans_nothing_and_touches_nothing(lib: Library) -> None:
    basic_library(lib)
    reconcile(lib)
    before = tree_state(lib.target)
    doc = reconcile(lib)
    assert doc["actions"] == []
    assert sum(doc["counts"].values()) == 0
    assert tree_state(lib.target) == before
    dry = reconcile(lib, "--dry-run")
    assert dry["actions"] == [] and dry["dry_run"] is True


def test_no_change_run_lists_nothing_on_trusted_fs(lib: Library) -> None:
    lib.write_ini(scan={"trust_dir_mtime": "yes"})
    basic_library(lib)
    reconcile(lib)
    old = 1_000_000_000  # make every directory look long settled
    for dirpath, _, _ in os.walk(lib.source):
        os.utime(dirpath, ns=(old, old))
    reconcile(lib, "--full")  # records the settled mtimes
    doc = reconcile(lib)
    assert doc["stats"]["dirs_listed"] == 0
    assert doc["stats"]["dirs_statted"] > 10


def test_trusted_mtime_skips_listing_untrusted_lists(lib: Library) -> None:
    lib.write_ini(scan={"trust_dir_mtime": "yes"})
    lib.add("TV/Show/Season 01/E01.mkv")
    reconcile(lib)
    season = lib.source / "TV/Show/Season 01"
    settled = 1_000_000_000
    os.utime(season, ns=(settled, settled))
    reconcile(lib, "--full")
    lib.add("TV/Show/Season 01/E02.mkv")
    os.utime(season, ns=(settled, settled))  # what an rclone mount shows: the mtime does not move
    doc = reconcile(lib)
    assert doc["counts"]["create"] == 0, "a trusted, unchanged mtime means the folder is not listed"
    lib.write_ini(scan={"trust_dir_mtime": "no"})
    doc = reconcile(lib)
    assert doc["counts"]["create"] == 1
    assert doc["stats"]["dirs_listed"] >= 4
    assert b"TV/Show/Season 01/E02.mkv" in links_in(lib.target)
    doc = reconcile(lib)
    assert doc["counts"]["create"] == 0 and doc["stats"]["files_indexed"] == 0


def test_untrusted_walk_writes_nothing_when_nothing_changed(lib: Library) -> None:
    lib.write_ini(scan={"trust_dir_mtime": "no"})
    basic_library(lib)
    reconcile(lib)
    # The run after one that changed the link tree looks once more at the folders
    # it changed (the racy rule of graylink.triggers.linktree) and records them.
    time.sleep(1.1)
    reconcile(lib)
    before = database_rows(lib.database)
    doc = reconcile(lib)
    assert doc["stats"]["dirs_listed"] > 0 and doc["stats"]["files_indexed"] == 0
    # Not one row written by the cycle (rewriting a row with the same values counts too);
    # the run's own record, kept for status, is the only change.
    assert doc["stats"]["rows_written"] == 0
    assert database_rows(lib.database) == before


# The record of a run (status's last reconcile, the status page's history of cycles).
RUN_RECORD = {"last_reconcile", "history_cycles", "history_totals"}


def database_rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, but the record of the last run."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {
            t: sorted(
                (tuple(row) for row in conn.execute(f'SELECT * FROM "{t}"') if row[0] not in RUN_RECORD), key=repr
            )
            for t in tables
        }
    finally:
        conn.close()


@pytest.mark.parametrize("trust", ["yes", "no"])
def test_add_delete_rename_files_and_folders(lib: Library, trust: str) -> None:
    lib.write_ini(scan={"trust_dir_mtime": trust})
    basic_library(lib)
    reconcile(lib)
    lib.add("TV/Show/Season 01/Show S01E04.mkv")  # new file in a known folder
    lib.add("TV/New Show/Season 01/New S01E01.mkv")  # new folder tree
    (lib.source / "Movies/Heat (1995)/Heat.MP4").unlink()  # deleted file
    os.rename(lib.source / "Anime/進撃の巨人", lib.source / "Anime/Attack on Titan")  # renamed folder
    os.rename(lib.source / "top.ts", lib.source / "top renamed.ts")  # renamed file
    doc = reconcile(lib)
    assert links_in(lib.target) == expected_links(lib.source)
    assert doc["counts"]["create"] == 4 and doc["counts"]["prune"] == 3
    # the emptied folders graylink made are gone, the others stay
    assert not (lib.target / "Movies/Heat (1995)").exists()
    assert not (lib.target / "Anime/進撃の巨人").exists()
    assert (lib.target / "Anime/Attack on Titan").is_dir()
    # a deleted folder tree
    import shutil

    shutil.rmtree(lib.source / "TV")
    doc = reconcile(lib)
    assert links_in(lib.target) == expected_links(lib.source)
    assert not (lib.target / "TV").exists()
    assert reconcile(lib)["actions"] == []


def test_awkward_names_round_trip(lib: Library) -> None:
    names = [
        b"Movies/Spaces  and  tabs\t(2000)/film.mkv",
        b"Movies/-leading dash/-rf.mkv",
        b"Movies/new\nline/ep\n1.mkv",
        b"Movies/bad \xff\xfe utf8/\xe9t\xe9.mkv",
        "Movies/Émilie ☃ 🎬/电影.mkv".encode(),
        b'Movies/quote\'s "and" <tags> & amp/a.mkv',
        b"Movies/" + b"n" * 250 + b".mkv",
    ]
    for name in names:
        lib.add(name)
    doc = reconcile(lib)
    assert doc["counts"]["create"] == len(names)
    found = links_in(lib.target)
    for name in names:
        assert found[name] == os.fsencode(lib.source) + b"/" + name
        assert os.path.exists(os.path.join(os.fsencode(lib.target), name))
    json.dumps(doc)  # the document stays valid JSON with undecodable names
    assert reconcile(lib)["actions"] == []
    # the dry-run diff shows one line per action, escaped (a link of graylink's
    # gone from the link tree is put back: a repair)
    os.unlink(os.path.join(os.fsencode(lib.target), names[2]))
    result = lib.cli("reconcile", "--dry-run", "--full")
    lines = [line for line in result.stdout.splitlines() if line.startswith("~ ")]
    assert lines == [
        f"~ Movies/new\\x0aline/ep\\x0a1.mkv -> {lib.source}/Movies/new\\x0aline/ep\\x0a1.mkv"
        "  (missing from the link tree)"
    ]


def test_conflicts_are_reported_and_never_touched(lib: Library) -> None:
    lib.add("Movies/A/A.mkv")
    lib.add("Movies/B/B.mkv")
    lib.add("Movies/C/C.mkv")
    (lib.target / "Movies/A").mkdir(parents=True)
    (lib.target / "Movies/A/A.mkv").write_bytes(b"my own file")
    (lib.target / "Movies/B").mkdir(parents=True)
    os.symlink("/somewhere/else.mkv", lib.target / "Movies/B/B.mkv")
    (lib.target / "Movies/C/C.mkv").mkdir(parents=True)
    doc = reconcile(lib, code=1)
    assert doc["counts"]["conflict"] == 3
    assert (lib.target / "Movies/A/A.mkv").read_bytes() == b"my own file"
    assert os.readlink(lib.target / "Movies/B/B.mkv") == "/somewhere/else.mkv"
    assert (lib.target / "Movies/C/C.mkv").is_dir()
    result = lib.cli("reconcile", "--dry-run", "--full")
    assert result.exit_code == 1
    assert "! Movies/A/A.mkv" in result.stdout


def test_foreign_entries_are_left_alone(lib: Library) -> None:
    lib.add("Movies/A/A.mkv")
    (lib.target / "Movies/A").mkdir(parents=True)
    (lib.target / "Movies/A/notes.txt").write_text("mine")
    os.symlink("/etc/hostname", lib.target / "Movies/A/other-link")
    (lib.target / "Mine").mkdir()
    reconcile(lib)
    (lib.source / "Movies/A/A.mkv").unlink()
    reconcile(lib)
    assert (lib.target / "Movies/A/notes.txt").read_text() == "mine"
    assert os.readlink(lib.target / "Movies/A/other-link") == "/etc/hostname"
    assert (lib.target / "Mine").is_dir()
    assert not (lib.target / "Movies/A/A.mkv").exists()


def test_a_users_symlink_in_place_of_graylinks_link_is_a_conflict_never_replaced(lib: Library) -> None:
    lib.add("Movies/A/A.mkv")
    lib.add("Movies/B/B.mkv")
    reconcile(lib)
    a = lib.target / "Movies/A/A.mkv"
    a.unlink()
    os.symlink(lib.source / "Movies/B/B.mkv", a)  # the user's, into the source: used to be "repaired" back
    b = lib.target / "Movies/B/B.mkv"
    b.unlink()
    os.symlink(lib.source / "gone/missing.mkv", b)  # the user's, dangling
    for args in ((), ("--full",), ("--full", "--force")):
        doc = reconcile(lib, *args, code=1)
        assert doc["counts"]["repair"] == 0 and doc["counts"]["conflict"] == 2, (args, doc["counts"])
    assert os.readlink(a) == str(lib.source / "Movies/B/B.mkv")
    assert os.readlink(b) == str(lib.source / "gone/missing.mkv")
    # The user takes theirs away: the next run makes graylink's link again.
    a.unlink()
    b.unlink()
    doc = reconcile(lib)
    assert doc["counts"]["create"] == 2 and doc["counts"]["conflict"] == 0
    assert links_in(lib.target) == expected_links(lib.source)
    assert not [p for p in os.listdir(lib.target / "Movies/A") if p.startswith(".graylink-")]


def test_existing_correct_links_are_skipped_and_adopted(lib: Library) -> None:
    lib.add("Movies/A/A.mkv")
    (lib.target / "Movies/A").mkdir(parents=True)
    os.symlink(lib.source / "Movies/A/A.mkv", lib.target / "Movies/A/A.mkv")
    before = os.lstat(lib.target / "Movies/A/A.mkv")
    doc = reconcile(lib)
    assert doc["counts"]["create"] == 0
    assert os.lstat(lib.target / "Movies/A/A.mkv").st_ino == before.st_ino
    (lib.source / "Movies/A/A.mkv").unlink()
    assert reconcile(lib)["counts"]["prune"] == 1  # adopted, so graylink owns it now


def test_prune_brake_and_force(lib: Library) -> None:
    for i in range(30):
        lib.add(f"Movies/M{i:02d}/M{i:02d}.mkv")
    reconcile(lib)
    for i in range(25):
        (lib.source / f"Movies/M{i:02d}/M{i:02d}.mkv").unlink()
    lib.add("Movies/New/New.mkv")
    doc = reconcile(lib, code=1)
    assert doc["counts"]["braked"] == 25 and doc["counts"]["prune"] == 0
    assert doc["counts"]["create"] == 1, "creates still happen"
    assert len(links_in(lib.target)) == 31
    # the marks are kept: the next run still wants to prune, and --force does it
    doc = reconcile(lib, code=1)
    assert doc["counts"]["braked"] == 25
    doc = reconcile(lib, "--force")
    assert doc["counts"]["prune"] == 25
    assert links_in(lib.target) == expected_links(lib.source)


def test_small_prunes_are_not_braked(lib: Library) -> None:
    for i in range(10):
        lib.add(f"Movies/M{i}/M{i}.mkv")
    reconcile(lib)
    for i in range(8):  # 80% of the links, but only 8: under the absolute minimum
        (lib.source / f"Movies/M{i}/M{i}.mkv").unlink()
    assert reconcile(lib)["counts"]["prune"] == 8


def test_path_reconciles_only_that_subtree(lib: Library) -> None:
    lib.write_ini(scan={"trust_dir_mtime": "yes"})
    lib.add("Movies/A/A.mkv")
    lib.add("TV/S/E1.mkv")
    reconcile(lib)
    lib.add("Movies/A/A2.mkv")
    lib.add("TV/S/E2.mkv")
    doc = reconcile(lib, "--path", "Movies")
    assert [a["link"] for a in doc["actions"]] == [f"{lib.target}/Movies/A/A2.mkv"]
    assert doc["stats"]["dirs_statted"] == 0
    doc = reconcile(lib, "--path", str(lib.source / "TV/S"))
    assert [a["link"] for a in doc["actions"]] == [f"{lib.target}/TV/S/E2.mkv"]
    (lib.target / "TV/S/E2.mkv").unlink()
    doc = reconcile(lib, "--path", str(lib.target / "TV"))  # a path in the link tree works too
    assert doc["counts"]["repair"] == 1  # graylink's link, gone from the link tree: put back
    result = lib.cli("reconcile", "--path", "/etc")
    assert result.exit_code == 2 and "neither inside the source nor inside the target" in result.output
    result = lib.cli("reconcile", "--path", "../x")
    assert result.exit_code == 2


def test_dry_run_changes_nothing(lib: Library) -> None:
    basic_library(lib)
    result = lib.cli("reconcile", "--dry-run")
    assert result.exit_code == 0
    assert "+ Movies/Alien (1979)/Alien (1979).mkv -> " in result.stdout
    assert not lib.target.exists(), "dry run creates no target"
    assert not lib.database.exists(), "dry run creates no database"
    reconcile(lib)
    lib.add("Movies/New/New.mkv")
    (lib.source / "top.ts").unlink()
    db_before = lib.database.read_bytes()
    tree_before = tree_state(lib.target)
    doc = reconcile(lib, "--dry-run")
    assert doc["counts"]["create"] == 1 and doc["counts"]["prune"] == 1
    assert lib.database.read_bytes() == db_before
    assert tree_state(lib.target) == tree_before
    doc_real = reconcile(lib)
    assert [(a["op"], a["link"]) for a in doc_real["actions"]] == [(a["op"], a["link"]) for a in doc["actions"]]


def test_relative_links(lib: Library) -> None:
    lib.write_ini(paths={"relative_links": "yes"})
    lib.add("Movies/A/A.mkv")
    reconcile(lib)
    link = lib.target / "Movies/A/A.mkv"
    assert not os.readlink(link).startswith("/")
    assert link.resolve() == (lib.source / "Movies/A/A.mkv").resolve()
    lib.write_ini(paths={"relative_links": "no"})
    doc = reconcile(lib)  # a change of link style re-plans every link
    assert doc["counts"]["repair"] == 1
    assert os.readlink(link) == str(lib.source / "Movies/A/A.mkv")


def test_link_root_and_extra_extensions(lib: Library) -> None:
    lib.write_ini(paths={"link_root": "/media/gdrive"}, rules={"extensions": ".srt, ass"})
    lib.add("Movies/A/A.mkv")
    lib.add("Movies/A/A.srt")
    lib.add("Movies/A/A.ass")
    lib.add("Movies/A/A.nfo")
    reconcile(lib)
    assert links_in(lib.target) == {
        b"Movies/A/A.mkv": b"/media/gdrive/Movies/A/A.mkv",
        b"Movies/A/A.srt": b"/media/gdrive/Movies/A/A.srt",
        b"Movies/A/A.ass": b"/media/gdrive/Movies/A/A.ass",
    }
    (lib.source / "Movies/A/A.srt").unlink()
    assert reconcile(lib)["counts"]["prune"] == 1  # links under link_root are ours too


def test_symlinks_in_source_are_not_followed(lib: Library, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.mkv").write_bytes(b"x")
    lib.add("Movies/A/A.mkv")
    os.symlink(outside, lib.source / "Movies/escape")
    os.symlink(lib.source, lib.source / "Movies/loop")
    os.symlink(outside / "secret.mkv", lib.source / "Movies/A/linked.mkv")
    reconcile(lib)
    assert links_in(lib.target) == {b"Movies/A/A.mkv": os.fsencode(lib.source / "Movies/A/A.mkv")}


def test_leftover_temporary_entries_are_removed(lib: Library) -> None:
    lib.add("Movies/A/A.mkv")
    reconcile(lib)
    os.symlink(lib.source / "Movies/A/A.mkv", lib.target / "Movies/A/.graylink-0123456789ab.tmp")
    reconcile(lib, "--full")
    assert os.listdir(lib.target / "Movies/A") == ["A.mkv"]


def test_nothing_is_created_through_a_symlinked_target_folder(lib: Library, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    lib.add("Movies/A/A.mkv")
    lib.target.mkdir()
    os.symlink(elsewhere, lib.target / "Movies")
    doc = reconcile(lib, code=1)
    assert os.listdir(elsewhere) == []
    assert doc["failures"]


def test_index_round_trips_raw_names(lib: Library) -> None:
    name = b"odd \xff\n name.mkv"
    lib.add(b"D/" + name)
    reconcile(lib)
    con = sqlite3.connect(lib.database)
    names = [bytes(r[0]) for r in con.execute("SELECT name FROM file")]
    assert names == [name]
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_missing_source_folder_is_a_clear_error(lib: Library) -> None:
    lib.source.rmdir()
    result = lib.run("reconcile")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "is not a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_walk_marks_new_subfolders_with_their_parent(lib: Library) -> None:
    """A crash after the walk wrote a folder but before its new subfolders were
    listed must not hide them: they are marked in the same transaction."""
    from graylink.store.db import Store
    from graylink.triggers.walk import walk

    lib.add("TV/Show/Season 01/E01.mkv")
    reconcile(lib)
    lib.add("TV/Show/Season 02/E01.mkv")
    with Store(str(lib.database)) as store:
        walk(store, os.fsencode(lib.source), trusted=False, workers=2)  # the trigger alone; then "crash"
        marks = {(m.path, m.recursive, m.indexed) for m in store.pending_marks()}
    assert (b"TV/Show/Season 02", True, False) in marks
    doc = reconcile(lib)
    assert [a["op"] for a in doc["actions"]] == ["create"]
    assert b"TV/Show/Season 02/E01.mkv" in links_in(lib.target)


def test_one_deleted_file_prunes_one_link(lib: Library) -> None:
    basic_library(lib)
    reconcile(lib)
    reconcile(lib)
    (lib.source / "TV/Show/Season 01/Show S01E02.avi").unlink()
    doc = reconcile(lib)
    assert [(a["op"], a["link"]) for a in doc["actions"]] == [
        ("prune", f"{lib.target}/TV/Show/Season 01/Show S01E02.avi")
    ]


def test_threaded_and_serial_scans_index_the_same(lib: Library, tmp_path: Path) -> None:
    """The listing pool (used on FUSE and network mounts) gives the same index as a serial scan."""
    from graylink.source.scanner import Scanner
    from graylink.store.db import Store

    for i in range(100):  # over 256 folders: the tree is split into several listing tasks
        lib.add(f"TV/Show {i}/Season 01/E01.mkv")
        lib.add(f"TV/Show {i}/Season 02/E01.mkv")
        lib.add(f"Movies/M{i}/M{i}.mkv")

    def index_of(workers: int, name: str) -> list[tuple[bytes, bytes, int]]:
        with Store(str(tmp_path / name)) as store:
            scanner = Scanner(store, os.fsencode(lib.source), workers, make_marks=False)
            scanner.refresh_trees([b""])
            rows = store.execute(
                "SELECT d.path, f.name, f.size FROM file f JOIN directory d ON d.id = f.dir_id ORDER BY 1, 2"
            ).fetchall()
            parents = store.execute(
                "SELECT count(*) FROM directory c JOIN directory p ON p.id = c.parent_id"
            ).fetchone()[0]
            assert parents == store.count("directory") - 1  # every folder but the root knows its parent
            return [(bytes(d), bytes(n), s) for d, n, s in rows]

    serial = index_of(1, "serial.db")
    assert len(serial) == 300
    assert index_of(4, "threaded.db") == serial


def test_status_counts_videos_as_the_index_changes(lib: Library) -> None:
    def videos() -> int:
        result = lib.cli("status", "--json")
        assert result.exit_code == 0, result.output
        return int(json.loads(result.stdout)["index"]["videos"])

    basic_library(lib)
    reconcile(lib)
    assert videos() == len(expected_links(lib.source)) == 6
    (lib.source / "Movies/Heat (1995)/Heat.MP4").unlink()  # the folder's only video
    lib.add("TV/Show/Season 01/Show S01E09.mkv")
    reconcile(lib)
    assert videos() == 6
    lib.write_ini(rules={"extensions": ".srt"})  # a rule change re-plans everything
    reconcile(lib)
    assert videos() == 7


def test_a_linked_subtitle_is_not_counted_as_a_video(lib: Library) -> None:
    """With [rules] extensions = .srt the count of files that get a link holds the subtitle: it is
    labelled "linkable", never "videos", in status and in the snapshot's line (issue 27 item 10)."""
    lib.write_ini(rules={"extensions": ".srt"})
    lib.add("Movies/A (2001)/A.mkv")
    lib.add("Movies/A (2001)/A.srt")
    reconcile(lib)
    status = lib.run("status")
    assert "2 files (2 linkable)" in status.stdout, status.stdout
    snapshot = lib.run("snapshot")
    assert snapshot.returncode == 0 and "(2 linkable, 2 linked)" in snapshot.stdout, snapshot.stdout
    assert "video" not in status.stdout + snapshot.stdout


def test_status_exits_1_when_the_mount_is_unhealthy(lib: Library) -> None:
    lib.add("Movies/A/A.mkv")
    reconcile(lib)
    assert lib.cli("status").exit_code == 0
    (lib.source / "Movies/A/A.mkv").unlink()
    (lib.source / "Movies/A").rmdir()
    (lib.source / "Movies").rmdir()  # an empty source while the index holds files: a dropped mount
    result = lib.cli("status", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["mount"]["healthy"] is False


def test_folders_made_by_a_killed_run_are_still_graylinks(lib: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed after mkdir but before its final commit: the folders it made are
    recorded beforehand, so they go once their links are pruned."""
    from graylink.config import load_config
    from graylink.reconcile.cycle import CycleOptions, run_cycle
    from graylink.store.db import Store

    for name in ("A", "B", "C"):
        lib.add(f"Movies/{name}/{name}.mkv")
    real_symlink = os.symlink
    calls = []

    def dying_symlink(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # stands for the SIGKILL: nothing after this point runs
        real_symlink(src, dst, *args, **kwargs)

    config = load_config(str(lib.ini), environ={})
    monkeypatch.setattr(os, "symlink", dying_symlink)
    with Store(str(lib.database)) as store, pytest.raises(KeyboardInterrupt):
        run_cycle(config, store, CycleOptions())
    monkeypatch.setattr(os, "symlink", real_symlink)
    assert (lib.target / "Movies/A").is_dir()
    reconcile(lib)
    assert links_in(lib.target) == expected_links(lib.source)
    import shutil

    shutil.rmtree(lib.source / "Movies/A")
    reconcile(lib)
    assert not (lib.target / "Movies/A").exists()
    assert sorted(os.listdir(lib.target / "Movies")) == ["B", "C"]


def test_a_database_of_the_old_link_table_keeps_its_links_through_the_upgrade(lib: Library) -> None:
    """Migration 0009 drops link.source: what the database owned stays owned, so
    a link that lost its file is still pruned and nothing else is touched."""
    basic_library(lib)
    reconcile(lib)
    # Back to the shape graylink wrote before 0009: link.source beside each row.
    conn = sqlite3.connect(lib.database)
    with conn:
        conn.execute(
            'CREATE TABLE "old" ("dir" BLOB NOT NULL, "name" BLOB NOT NULL, "target" BLOB NOT NULL, '
            '"source" BLOB NOT NULL, PRIMARY KEY ("dir", "name")) WITHOUT ROWID'
        )
        conn.execute(
            "INSERT INTO old SELECT dir, name, target, CASE WHEN dir = x'' THEN name "
            "ELSE CAST(dir || x'2f' || name AS BLOB) END FROM link"
        )
        conn.execute("DROP TABLE link")
        conn.execute("ALTER TABLE old RENAME TO link")
        conn.execute("DELETE FROM applied_migration WHERE name = '0009_link_without_source'")
    owned = conn.execute("SELECT dir, name, target FROM link ORDER BY dir, name").fetchall()
    conn.close()
    assert len(owned) == 6
    (lib.source / "Movies/Heat (1995)/Heat.MP4").unlink()

    doc = reconcile(lib)

    assert doc["counts"]["prune"] == 1 and doc["counts"]["create"] == 0 and doc["counts"]["conflict"] == 0
    assert links_in(lib.target) == expected_links(lib.source)
    conn = sqlite3.connect(lib.database)
    columns = [row[1] for row in conn.execute("PRAGMA table_info(link)")]
    kept = conn.execute("SELECT dir, name, target FROM link ORDER BY dir, name").fetchall()
    conn.close()
    assert columns == ["dir", "name", "target"]
    assert kept == [row for row in owned if row[1] != b"Heat.MP4"]
