"""The Drive feed inside real reconciles: changes the walk alone cannot see get linked or pruned.

The source folder plays the rclone mount: every change is made on disk and on
the loopback Drive, and the folder mtimes are put back afterwards, as an rclone
mount shows them (a folder's mtime does not move when its children change).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from graylink.config import Config, parse_raw
from graylink.reconcile.cycle import CycleOptions, run_cycle
from graylink.store.db import Store
from tests.google_server import MY_DRIVE_ROOT, FakeGoogle
from tests.test_drive import CLIENT_ID, CLIENT_SECRET, SECRETS, write_rclone_conf

ROOT = Path(__file__).resolve().parents[1]
OLD = time.time() - 7200  # every folder's mtime, as the mount keeps showing it


class World:
    """A library that exists twice: on the loopback Drive and in the source folder."""

    def __init__(self, tmp_path: Path, google: FakeGoogle) -> None:
        self.google = google
        self.source = tmp_path / "src"
        self.target = tmp_path / "links"
        self.source.mkdir()
        self.ids = {"": google.add("Media", MY_DRIVE_ROOT, folder=True, record=False)}
        write_rclone_conf(tmp_path / "rclone.conf", google, root_folder_id=self.ids[""])
        self.raw = {
            "paths": {
                "source": str(self.source),
                "target": str(self.target),
                "database": str(tmp_path / "graylink.db"),
            },
            "scan": {"trust_dir_mtime": "yes"},
            "drive": {
                "enabled": "yes",
                "rclone_config": str(tmp_path / "rclone.conf"),
                "remote": "gdrive:",
                "api_endpoint": google.url,
                "token_uri": google.url + "/token",
                "token_file": str(tmp_path / "drive-token.json"),
            },
        }
        self.ini = tmp_path / "graylink.ini"
        self.write_ini()

    def write_ini(self) -> None:
        self.ini.write_text(
            "".join(
                f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
                for section, keys in self.raw.items()
            )
        )

    def config(self, drive: bool = True) -> Config:
        raw = {k: dict(v) for k, v in self.raw.items()}
        raw["drive"]["enabled"] = "yes" if drive else "no"
        return parse_raw(raw)

    def age_all(self) -> None:
        for dirpath, _, _ in os.walk(self.source):
            os.utime(dirpath, (OLD, OLD))

    def _keep_mtimes(self, *rels: str) -> None:
        for rel in rels:
            path = self.source / rel if rel else self.source
            if path.exists():
                os.utime(path, (OLD, OLD))

    @staticmethod
    def _parent(rel: str) -> str:
        return rel.rpartition("/")[0]

    # -- changes, on both sides, with record=True meaning "the feed reports it"

    def mkdir(self, rel: str, record: bool = False) -> None:
        (self.source / rel).mkdir()
        self.ids[rel] = self.google.add(rel.rpartition("/")[2], self.ids[self._parent(rel)], folder=True, record=record)
        self._keep_mtimes(self._parent(rel), rel)

    def add(self, rel: str, record: bool = True) -> None:
        (self.source / rel).write_bytes(b"video")
        self.ids[rel] = self.google.add(rel.rpartition("/")[2], self.ids[self._parent(rel)], record=record)
        self._keep_mtimes(self._parent(rel))

    def move(self, rel: str, new_parent: str) -> str:
        new = f"{new_parent}/{rel.rpartition('/')[2]}" if new_parent else rel.rpartition("/")[2]
        os.rename(self.source / rel, self.source / new)
        self.google.move(self.ids[rel], self.ids[new_parent])
        self._rekey(rel, new)
        self._keep_mtimes(self._parent(rel), new_parent, new)
        return new

    def rename(self, rel: str, name: str) -> str:
        new = f"{self._parent(rel)}/{name}" if self._parent(rel) else name
        os.rename(self.source / rel, self.source / new)
        self.google.rename(self.ids[rel], name)
        self._rekey(rel, new)
        self._keep_mtimes(self._parent(rel), new)
        return new

    def trash(self, rel: str) -> None:
        path = self.source / rel
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path, topdown=False):
                for name in filenames:
                    os.unlink(os.path.join(dirpath, name))
                for name in dirnames:
                    os.rmdir(os.path.join(dirpath, name))
            path.rmdir()
        else:
            path.unlink()
        self.google.trash(self.ids[rel])
        self._keep_mtimes(self._parent(rel))

    def _rekey(self, old: str, new: str) -> None:
        for key in [k for k in self.ids if k == old or k.startswith(old + "/")]:
            self.ids[new + key[len(old) :]] = self.ids.pop(key)

    # -- running

    def reconcile(self, drive: bool = True) -> int:
        with Store(self.config().paths.database) as store:
            result = run_cycle(self.config(drive), store, CycleOptions())
        return result.exit_code

    def links(self) -> set[str]:
        out = set()
        for dirpath, _, filenames in os.walk(self.target):
            for name in filenames:
                full = os.path.join(dirpath, name)
                if os.path.islink(full):
                    out.add(os.path.relpath(full, self.target))
        return out


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with FakeGoogle() as google:
        google.add_client(CLIENT_ID, CLIENT_SECRET)
        w = World(tmp_path, google)
        w.mkdir("Shows")
        w.mkdir("Shows/S1")
        w.add("Shows/S1/e1.mkv", record=False)
        w.mkdir("Movies")
        w.mkdir("Movies/Film (2001)")
        w.add("Movies/Film (2001)/film.mkv", record=False)
        w.age_all()
        assert w.reconcile() == 0  # first run: full scan, and the feed starts from now
        assert w.links() == {"Shows/S1/e1.mkv", "Movies/Film (2001)/film.mkv"}
        time.sleep(0.005)
        yield w


def test_new_episode_in_an_old_folder_is_linked_only_thanks_to_the_feed(world):
    world.add("Shows/S1/e2.mkv")
    assert world.reconcile(drive=False) == 0
    assert "Shows/S1/e2.mkv" not in world.links()  # the walk alone cannot see it
    assert world.reconcile() == 0
    assert "Shows/S1/e2.mkv" in world.links()


def test_new_folder_with_files_is_linked(world):
    world.mkdir("Shows/S2", record=True)
    world.add("Shows/S2/e1.mkv")
    assert world.reconcile() == 0
    assert "Shows/S2/e1.mkv" in world.links()


def test_moved_file_is_pruned_at_the_old_place_and_linked_at_the_new(world):
    world.mkdir("Shows/S2")
    world.move("Shows/S1/e1.mkv", "Shows/S2")
    assert world.reconcile() == 0
    assert world.links() == {"Shows/S2/e1.mkv", "Movies/Film (2001)/film.mkv"}


def test_renamed_file_is_relinked(world):
    world.rename("Shows/S1/e1.mkv", "Show - S01E01.mkv")
    assert world.reconcile() == 0
    assert world.links() == {"Shows/S1/Show - S01E01.mkv", "Movies/Film (2001)/film.mkv"}


def test_renamed_folder_moves_its_links(world):
    world.rename("Shows/S1", "Season 01")
    assert world.reconcile(drive=False) == 0
    assert "Shows/S1/e1.mkv" in world.links()  # the walk alone keeps the stale link
    assert world.reconcile() == 0
    assert world.links() == {"Shows/Season 01/e1.mkv", "Movies/Film (2001)/film.mkv"}


def test_moved_folder_moves_its_links(world):
    world.mkdir("Archive")
    world.move("Movies/Film (2001)", "Archive")
    assert world.reconcile() == 0
    assert world.links() == {"Shows/S1/e1.mkv", "Archive/Film (2001)/film.mkv"}


def test_deleted_file_and_folder_are_pruned(world):
    world.trash("Shows/S1/e1.mkv")
    world.trash("Movies/Film (2001)")
    assert world.reconcile() == 0
    assert world.links() == set()


def test_refused_scope_fails_the_reconcile_but_the_walk_goes_on(world, tmp_path):
    write_rclone_conf(tmp_path / "rclone.conf", world.google, scopes="drive", root_folder_id=world.ids[""])
    world.raw["drive"]["feed"] = "activity"
    world.write_ini()
    (world.source / "Shows" / "S3").mkdir()  # visible to the walk: the parent's mtime moved
    (world.source / "Shows" / "S3" / "x.mkv").write_bytes(b"v")
    proc = subprocess.run(
        [sys.executable, "-m", "graylink", "-c", str(world.ini), "reconcile"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "drive.activity" in proc.stderr and "graylink drive auth" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Shows/S3/x.mkv" in world.links()
    assert not any(s in proc.stdout + proc.stderr for s in SECRETS)


@pytest.mark.parametrize("broken", ["activity answer", "token endpoint"])
def test_a_garbled_google_answer_fails_the_feed_not_the_walk(world, tmp_path, broken):
    # The world's token carries the activity scope: the Activity feed runs.
    if broken == "token endpoint":
        write_rclone_conf(tmp_path / "rclone.conf", world.google, root_folder_id=world.ids[""], expires_in=-60)
        world.google.state.token_garbage = 1
    else:
        world.google.state.activity_garbage = 1
    (world.source / "Shows" / "S4").mkdir()  # visible to the walk: the parent's mtime moved
    (world.source / "Shows" / "S4" / "y.mkv").write_bytes(b"v")
    proc = subprocess.run(
        [sys.executable, "-m", "graylink", "-c", str(world.ini), "reconcile"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert any("drive feed:" in line and "malformed" in line for line in errors), proc.stderr
    assert "unexpected error" not in proc.stderr and "Traceback" not in proc.stderr
    assert "Shows/S4/y.mkv" in world.links()
