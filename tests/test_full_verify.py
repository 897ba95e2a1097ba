"""One bad folder, or a failing feed, does not make every run a full verification.

A full verification that listed everything except the folders it reported
counts as done (``[scan] full_verify`` later, the next one); what it reported
stays on the books and is retried, and reported, each run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from graylink.config import load_config
from graylink.reconcile.cycle import CycleOptions, run_cycle
from graylink.store.db import META_LAST_FULL, Store
from tests.google_server import FakeGoogle
from tests.test_drive import CLIENT_ID, CLIENT_SECRET
from tests.test_drive_reconcile import World

from conftest import REPO, Library, expected_links, links_in

NAME = b"n" * 250


def _too_deep(source: Path) -> bytes:
    """A chain of folders whose path outgrows PATH_MAX (4096): the deepest ones
    cannot be listed by their path ("File name too long"), as a Drive folder
    with a very long name below a long path shows through a mount."""
    fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY)
    rel = b"Deep"
    name = rel
    try:
        for _ in range(18):
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
            name = NAME
            rel += b"/" + NAME
    finally:
        os.close(fd)
    assert len(os.fsencode(source)) + 1 + len(rel) > 4096
    return rel


def test_a_folder_that_cannot_be_listed_does_not_block_the_full_verification(lib: Library) -> None:
    for name in ("A", "B", "C"):
        lib.add(f"Movies/{name}/{name}.mkv")
    _too_deep(lib.source)
    old = time.time() - 3600  # folders older than the walk's racy-mtime window
    for dirpath, _, _ in os.walk(lib.source):
        os.utime(dirpath, (old, old))
    config = load_config(str(lib.ini))
    with Store(config.paths.database) as store:
        first = run_cycle(config, store, CycleOptions())
        assert first.full
        assert first.exit_code == 1
        assert any("File name too long" in f for f in first.failures), first.failures
        assert store.get_meta(META_LAST_FULL) is not None, "everything else was verified"
        assert links_in(lib.target) == expected_links(lib.source)

        # The next run is no full verification, but it reports (and retries) the folder again.
        second = run_cycle(config, store, CycleOptions())
        assert not second.full
        assert second.exit_code == 1
        assert any("File name too long" in f for f in second.failures)
        assert second.stats.dirs_listed <= 2, "only the bad folder is listed again"
    assert links_in(lib.target) == expected_links(lib.source)


def test_a_deleted_folder_deeper_than_path_max_is_removed_once_not_failed_on_forever(lib: Library) -> None:
    """Indexed as far as its path allows, then deleted: the folder beyond PATH_MAX
    answers "File name too long" whether it exists or not; found gone one name at
    a time, its index rows and links go in one run and later runs are clean."""
    lib.add("Movies/A/A.mkv")
    deep = _too_deep(lib.source)
    fd = os.open(lib.source, os.O_RDONLY | os.O_DIRECTORY)
    for depth, name in enumerate(deep.split(b"/")[:-1]):  # a video in every folder of the chain
        inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
        os.close(os.open(b"v%d.mkv" % depth, os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))
    os.close(fd)
    config = load_config(str(lib.ini))
    with Store(config.paths.database) as store:
        first = run_cycle(config, store, CycleOptions())
        assert any("File name too long" in f for f in first.failures), first.failures
        assert len(links_in(lib.target)) > 2, "the folders within PATH_MAX got their links"

        shutil.rmtree(lib.source / "Deep")
        for _ in range(2):
            later = run_cycle(config, store, CycleOptions())
            assert later.exit_code == 0, later.failures
            assert later.failures == []
        assert store.pending_marks() == []
        assert store.execute("SELECT count(*) FROM directory WHERE path LIKE 'Deep%'").fetchone()[0] == 0
        assert store.execute("SELECT count(*) FROM link").fetchone()[0] == 1
    assert list(links_in(lib.target)) == [b"Movies/A/A.mkv"]
    assert not (lib.target / "Deep").exists()


def _without_dac(lib: Library, *args: str) -> subprocess.CompletedProcess[str]:
    """graylink as root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH (setpriv), so
    a folder of mode 000 cannot be listed, as a folder a mount refuses (EACCES)."""
    drop = "-dac_override,-dac_read_search"
    command = ["setpriv", "--bounding-set", drop, "--inh-caps", drop, sys.executable, "-m", "graylink"]
    return subprocess.run(
        [*command, "-c", str(lib.ini), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_an_unlistable_folder_is_an_open_problem_in_status_until_it_lists_again(lib: Library) -> None:
    """Each run reports the folder as an ERROR (exit 1): status must not say
    "problems: none open" meanwhile, and closes it once a run lists it."""
    lib.add("Movies/A/A.mkv")
    lib.add("Movies/B/B.mkv")
    assert _without_dac(lib, "reconcile").returncode == 0
    locked = lib.source / "Movies/B"
    locked.chmod(0)
    old = time.time() - 3600  # no racy-mtime doubt: only the folders named are listed
    os.utime(locked, (old, old))
    try:
        for _ in range(2):
            assert _without_dac(lib, "reconcile", "--path", "Movies/B").returncode == 1
            status = lib.run("status")
            assert "problems: none open" not in status.stdout, status.stdout
            assert "1 unlistable folder" in status.stdout, status.stdout
            assert "Permission denied" in status.stdout
        doc = json.loads(lib.run("status", "--json").stdout)
        assert doc["problems"]["unlistable"] == 1
        assert doc["problems"]["open"][0]["link"] == str(locked)
    finally:
        locked.chmod(0o755)
    assert _without_dac(lib, "reconcile").returncode == 0
    assert "problems: none open" in lib.run("status").stdout


def test_a_failing_feed_does_not_block_the_full_verification(tmp_path: Path) -> None:
    with FakeGoogle() as google:
        google.add_client(CLIENT_ID, CLIENT_SECRET)
        world = World(tmp_path, google)
        world.mkdir("Movies")
        world.mkdir("Movies/Film (2001)")
        world.add("Movies/Film (2001)/film.mkv", record=False)
        world.age_all()
        assert world.reconcile() == 0
        # The feed fails every query (a 403 Google gives up on at once: 5xx backoff would take 30 s here).
        google.state.fail_queries.extend([403] * 50)
        time.sleep(0.005)
        with Store(world.config().paths.database) as store:
            store.execute("DELETE FROM meta_value WHERE key = ?", (META_LAST_FULL,))
            verify = run_cycle(world.config(), store, CycleOptions(full=True))
            assert verify.exit_code == 1
            assert any(f.startswith("drive feed:") for f in verify.failures), verify.failures
            assert store.get_meta(META_LAST_FULL) is not None
            later = run_cycle(world.config(), store, CycleOptions())
            assert not later.full
            assert any(f.startswith("drive feed:") for f in later.failures), "reported each run"
        assert world.links() == {"Movies/Film (2001)/film.mkv"}


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="EACCES TEST SKIPPED: needs root and setpriv to give up the read override",
)
def test_a_folder_that_turns_unreadable_on_a_trusted_source_is_reported_each_run(lib: Library) -> None:
    """A folder whose stat is refused (its parent lost its x bit) is an error of the run, not a quiet skip."""
    lib.add("Movies/A/A.mkv")
    lib.add("Secret/Sub/S.mkv")
    lib.write_ini(scan={"trust_dir_mtime": "yes"})
    old = time.time() - 3600  # folders not touched lately: the walk trusts their mtimes and lists none
    for folder, _, _ in os.walk(lib.source):
        os.utime(folder, (old, old))
    assert lib.run("reconcile").returncode == 0
    os.chmod(lib.source / "Secret", 0)  # (a chmod leaves the folder's mtime as it was)
    try:
        runs = [_without_read_override(lib, "reconcile") for _ in range(2)]
    finally:
        os.chmod(lib.source / "Secret", 0o755)
    for run in runs:
        assert run.returncode == 1, run.stderr
        assert "Secret/Sub" in run.stderr and "Permission denied" in run.stderr
        assert "Traceback" not in run.stderr
    assert os.path.islink(lib.target / "Secret/Sub/S.mkv"), "an unreadable folder's links are kept"
    assert lib.run("reconcile").returncode == 0


def _without_read_override(lib: Library, *args: str) -> subprocess.CompletedProcess[str]:
    """graylink as root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH: a real EACCES."""
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    return subprocess.run(
        [*drop, sys.executable, "-m", "graylink", "-c", str(lib.ini), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
        check=False,
    )
