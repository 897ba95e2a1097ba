"""The benchmark generator and a smoke run of the benchmark script (no timing asserted)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import genlib  # noqa: E402

from graylink.source.rules import Rules  # noqa: E402


def tree(root: Path) -> list[tuple[str, bool]]:
    """Every entry under root, relative, with whether it is a folder."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        out += [(os.path.join(rel, d), True) for d in dirnames]
        out += [(os.path.join(rel, f), False) for f in filenames]
    return sorted(out)


def test_generate_is_deterministic_and_counts_what_it_wrote(tmp_path: Path) -> None:
    a = genlib.generate(str(tmp_path / "a"), 3000, seed=7)
    b = genlib.generate(str(tmp_path / "b"), 3000, seed=7)
    c = genlib.generate(str(tmp_path / "c"), 3000, seed=8)
    entries = tree(tmp_path / "a")
    assert entries == tree(tmp_path / "b")
    assert entries != tree(tmp_path / "c")
    files = [e for e, is_dir in entries if not is_dir]
    assert a.files == b.files == c.files == len(files) == 3000
    assert a.dirs == sum(1 for _, is_dir in entries if is_dir)
    assert all(os.path.getsize(tmp_path / "a" / f) == 0 for f in files[:200])
    # The library keeps roughly the files-per-folder ratio of real libraries (138k / 19k).
    assert 5 < a.files / a.dirs < 10


def test_generated_library_has_the_layout_graylink_meets(tmp_path: Path) -> None:
    stats = genlib.generate(str(tmp_path), 8000)
    top = set(os.listdir(tmp_path))
    assert top == {"Movies", "TV", "Anime"}
    paths = [e for e, _ in tree(tmp_path)]
    assert any("/BDMV/STREAM/" in p and p.endswith(".m2ts") for p in paths)
    assert any(p.startswith("TV/") and "/Season 01/" in p and p.endswith(".nfo") for p in paths)
    assert any(any("\u3040" <= ch <= "\u30ff" for ch in p) for p in paths)  # Japanese kana
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in p) for p in paths)  # CJK ideographs
    assert any("/-" in p for p in paths)  # a name with a leading dash
    assert any("🎬" in p for p in paths)
    assert all(stats.season_dirs) and all((tmp_path / d).is_dir() for d in stats.season_dirs)
    # The generator's own count of what deserves a link agrees with graylink's rules.
    rules = Rules.build()
    wanted = 0
    for dirpath, _, filenames in os.walk(tmp_path):
        rel = os.fsencode(os.path.relpath(dirpath, tmp_path)) if dirpath != str(tmp_path) else b""
        if rules.wants_dir(rel):
            wanted += sum(1 for name in filenames if rules.wants_file(os.fsencode(name)))
    assert stats.videos == wanted


def test_generator_cli_refuses_bad_input(tmp_path: Path) -> None:
    script = str(REPO / "benchmarks" / "genlib.py")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").touch()
    busy = subprocess.run([sys.executable, script, str(tmp_path / "full"), "--files", "10"], capture_output=True)
    assert busy.returncode == 2 and b"not empty" in busy.stderr
    too_many = subprocess.run([sys.executable, script, str(tmp_path / "new"), "--files", "0"], capture_output=True)
    assert too_many.returncode == 2 and b"between 1 and" in too_many.stderr
    ok = subprocess.run([sys.executable, script, str(tmp_path / "new"), "--files", "50"], capture_output=True)
    assert ok.returncode == 0 and ok.stdout.startswith(b"50 files")


def test_benchmark_script_runs_and_prints_every_row(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAYLINK_")}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--files", "2000", "--repeat", "1",
         "--json", str(tmp_path / "bench.json")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    keys = {line.split()[0] for line in lines if line[:1].isdigit()}
    assert {"1", "1b", "1c", "2a", "2b", "2c", "3a", "3b", "4a", "4b", "4c", "5a", "5b", "6a", "6b"} <= keys
    assert "FAILED" not in result.stdout and "error:" not in result.stdout
    assert any(line.startswith("library: 2000 files") for line in lines)
    doc = json.loads((tmp_path / "bench.json").read_text())
    assert doc["library"]["files"] == 2000
    assert all(ok for _, ok, _ in doc["checks"]) and len(doc["checks"]) >= 5
    # The library, links and database are removed afterwards.
    work = re.search(r"library in (\S+) \.\.\.", result.stderr)
    assert work and not os.path.exists(work.group(1))


@pytest.mark.parametrize("args", [["--files", "0"], ["--repeat", "0"]])
def test_benchmark_script_refuses_bad_arguments(args: list[str]) -> None:
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), *args], capture_output=True)
    assert result.returncode == 2


def test_marks_benchmark_runs_on_its_own() -> None:
    """A smoke run of benchmarks/marks_bench.py with tiny sizes (no timing asserted)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAYLINK_")}
    script = str(REPO / "benchmarks" / "marks_bench.py")
    result = subprocess.run(
        [sys.executable, script, "--sizes", "40,80", "--repeat", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line[:2] in ("7a", "7b")]
    assert len(rows) == 2 and all("cpu ratio" in row for row in rows)
    bad = subprocess.run([sys.executable, script, "--sizes", "40"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "two sizes" in bad.stderr


def test_video_heavy_profile_reaches_its_share_and_keeps_the_count(tmp_path: Path) -> None:
    stats = genlib.generate(str(tmp_path / "v"), 4000, videos=0.6)
    assert stats.files == 4000 and 0.6 <= stats.videos / stats.files < 0.62
    genlib.generate(str(tmp_path / "w"), 4000, videos=0.6)
    assert tree(tmp_path / "v") == tree(tmp_path / "w")
    with pytest.raises(ValueError):
        genlib.generate(str(tmp_path / "x"), 10, videos=0)


def test_idle_hour_benchmark_runs_on_a_small_library(tmp_path: Path) -> None:
    """A smoke run of benchmarks/idle_hour.py (skips itself without rclone/FUSE; no timing asserted)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAYLINK_")}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "idle_hour.py"), "--files", "1500", "--minutes", "20",
         "--json", str(tmp_path / "idle.json")],
        capture_output=True, text=True, env=env, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    if "skipped:" in result.stderr:
        pytest.skip(result.stderr.strip())
    doc = json.loads((tmp_path / "idle.json").read_text())
    without, with_feed = doc["scenarios"]
    assert without["folders_listed"] > 0 and with_feed["drive_calls"] >= 20  # a poll a minute
    assert len(with_feed["latency_s"]) == 2  # both reported files were linked after their poll
