"""An index that lost rows of files that exist never costs their links.

A mount restarted during a walk used to drop whole subtrees from the index
(tests/test_mount_faults.py stages that on a real rclone mount). These tests
start from such a damaged index on a real filesystem, to show the two nets
below the scanner's own check: a prune is confirmed by one lstat of the
source file, and a folder whose listing fingerprint matches but whose
subfolders are missing from the index is listed again.
"""

from __future__ import annotations

from pathlib import Path

from graylink.config import load_config
from graylink.reconcile.cycle import CycleOptions, run_cycle
from graylink.store.db import Mark, Store

from conftest import Library, expected_links, links_in


def _library(lib: Library) -> None:
    for show in ("A", "B"):
        for season in (1, 2):
            for episode in (1, 2):
                lib.add(f"TV/{show}/S{season}/e{episode}.mkv")


def _drop_from_index(store: Store, folder: bytes) -> None:
    """What the old walk did to a folder listed while the mount restarted."""
    with store.atomic():
        store.execute(
            "DELETE FROM file WHERE dir_id IN (SELECT id FROM directory WHERE path = ? OR path LIKE ?)",
            (folder, folder + b"/%"),
        )
        store.execute("DELETE FROM directory WHERE path = ? OR path LIKE ?", (folder, folder + b"/%"))


def test_a_prune_whose_source_file_is_there_is_withheld_and_its_folder_relisted(lib: Library) -> None:
    _library(lib)
    config = load_config(str(lib.ini))
    with Store(config.paths.database) as store:
        assert run_cycle(config, store, CycleOptions()).exit_code == 0
        _drop_from_index(store, b"TV/A/S1")
        # Its parent is re-planned from the index (as after a walk that dropped it).
        store.add_marks([Mark(b"TV/A", "walk", recursive=True, indexed=True)])
        vetoed = run_cycle(config, store, CycleOptions(walk=False, force=True))
        assert vetoed.plan.counts()["prune"] == 0
        assert vetoed.exit_code == 1
        assert any("source file is still there" in f for f in vetoed.failures)
        assert links_in(lib.target) == expected_links(lib.source)

        after = run_cycle(config, store, CycleOptions(walk=False))
        assert after.exit_code == 0, after.failures
        assert store.count("file") == 8
        assert run_cycle(config, store, CycleOptions()).plan.is_empty()
    assert links_in(lib.target) == expected_links(lib.source)


def test_a_prune_of_a_file_really_gone_goes_ahead(lib: Library) -> None:
    _library(lib)
    config = load_config(str(lib.ini))
    with Store(config.paths.database) as store:
        assert run_cycle(config, store, CycleOptions()).exit_code == 0
        (lib.source / "TV/A/S1/e1.mkv").unlink()
        result = run_cycle(config, store, CycleOptions())
    assert result.exit_code == 0, result.failures
    assert result.plan.counts()["prune"] == 1
    assert links_in(lib.target) == expected_links(lib.source)


def test_an_unchanged_folder_whose_subfolder_the_index_lost_is_listed_again(lib: Library, tmp_path: Path) -> None:
    lib.write_ini(scan={"trust_dir_mtime": "no"})  # the fingerprint walk, as on an rclone mount
    _library(lib)
    config = load_config(str(lib.ini))
    with Store(config.paths.database) as store:
        assert run_cycle(config, store, CycleOptions()).exit_code == 0
        _drop_from_index(store, b"TV/B/S2")
        # TV/B lists as before (its fingerprint still names S2): the walk must not trust it.
        walked = run_cycle(config, store, CycleOptions())
        assert walked.exit_code == 0, walked.failures
        assert store.count("file") == 8
        assert store.execute("SELECT 1 FROM directory WHERE path = ?", (b"TV/B/S2",)).fetchone() is not None
    assert links_in(lib.target) == expected_links(lib.source)


def test_links_the_rules_no_longer_want_are_pruned_though_their_files_are_there(lib: Library) -> None:
    # The user stops linking subtitles and excludes an extras folder: the files stay in the source,
    # their links go (the prune confirmation is for files the index lost, not for files unwanted).
    for rel in ("Movies/A (2001)/A.mkv", "Movies/A (2001)/A.srt", "Movies/A (2001)/Extras/making-of.mkv"):
        lib.add(rel)
    for n in range(8):
        lib.add(f"TV/Show/S1/e{n}.mkv")
    lib.write_ini(rules={"extensions": ".srt"})
    assert lib.cli("reconcile").exit_code == 0
    assert links_in(lib.target) == expected_links(lib.source, {".srt"})
    lib.write_ini(rules={"exclude_dirs": "Extras"})
    result = lib.cli("reconcile")
    assert result.exit_code == 0, result.output
    assert "0 created, 0 repaired, 2 pruned" in result.output
    assert links_in(lib.target) == {
        rel: link for rel, link in expected_links(lib.source).items() if b"/Extras/" not in rel
    }
    again = lib.cli("reconcile")
    assert again.exit_code == 0 and "0 pruned" in again.output, again.output
