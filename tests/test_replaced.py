"""A video replaced in the source by something of the same name that is no video.

Only regular files get links. A folder, a symlink or a FIFO put where a video
was is no video: its link goes, what is now there is indexed (a folder's
videos are linked), and the link tree never serves a file through a symlink
in the source.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import Library, expected_links, links_in


def reconcile(lib: Library, *args: str, code: int = 0) -> dict[str, object]:
    done = lib.run("reconcile", "--json", *args)
    assert done.returncode == code, done.stderr
    doc: dict[str, object] = json.loads(done.stdout)
    return doc


def _served_through_symlinks(lib: Library) -> list[bytes]:
    """Links whose source path passes through a symlink in the source."""
    bad = []
    for rel, content in links_in(lib.target).items():
        path = os.fsencode(lib.source)
        for part in os.fsencode(os.path.relpath(content, os.fsencode(lib.source))).split(b"/"):
            path = os.path.join(path, part)
            if os.path.islink(path):
                bad.append(rel)
                break
    return bad


@pytest.mark.parametrize("how", ["folder", "symlink", "fifo", "symlinked-folder"])
def test_a_video_replaced_by_no_video_loses_its_link_and_runs_exit_0(lib: Library, tmp_path: Path, how: str) -> None:
    lib.add("Movies/M/a.mkv")
    lib.add("Movies/M/keep.mkv")
    lib.add("TV/S/e1.mkv")
    reconcile(lib)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.mkv").write_bytes(b"not in the source")
    video = lib.source / "Movies/M/a.mkv"
    if how == "symlinked-folder":
        # The whole folder becomes a symlink to one outside the source holding a file of that name.
        os.rename(lib.source / "Movies/M", tmp_path / "M-away")
        os.symlink(outside, lib.source / "Movies/M")
    else:
        video.unlink()
        if how == "folder":
            video.mkdir()
            (video / "inner.mkv").write_bytes(b"video")
        elif how == "symlink":
            os.symlink(outside / "a.mkv", video)
        else:
            os.mkfifo(video)

    doc = reconcile(lib)  # used to exit 1 every run: "was the mount restarted during a walk?"
    counts = doc["counts"]
    assert isinstance(counts, dict)
    assert counts["braked"] == 0 and counts["conflict"] == 0, doc
    assert links_in(lib.target) == expected_links(lib.source)
    assert b"Movies/M/a.mkv" not in links_in(lib.target)
    assert _served_through_symlinks(lib) == []
    if how == "folder":
        assert os.readlink(lib.target / "Movies/M/a.mkv/inner.mkv") == str(video / "inner.mkv")
    # Settled: a full verification, forced or not, plans nothing and exits 0.
    for args in ((), ("--full",), ("--full", "--force")):
        again = reconcile(lib, *args)
        assert again["actions"] == [], (args, again["actions"])
    assert links_in(lib.target) == expected_links(lib.source)
