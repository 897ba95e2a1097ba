"""graylink's benchmarks: each figure is a ratio against a reference measured in the same run.

    python benchmarks/run.py [--files N] [--videos SHARE] [--repeat K] [--rclone] [--json FILE] [--workdir DIR] [--keep]

Builds a synthetic library (benchmarks/genlib.py) on tmpfs, then measures, K
times each with graylink and its reference interleaved, and prints the medians:

  1  first run (index + every link, empty DB, fresh target)  vs  cp -rs SRC DST
  2  no-change reconcile, trusted directory mtimes            vs  one watchdog DirectorySnapshot
  3  no-change cycle with trust_dir_mtime = no                vs  find SRC -printf ''
     with --rclone: the same through a real rclone mount      vs  one serial find of the mount
  4  one new file: from its creation to its link              vs  one DirectorySnapshot
  5  peak RSS of a no-change run                              vs  a DirectorySnapshot process
  6  start-up: graylink --help, graylink status               vs  python -c pass

graylink always runs as its own process (``python -m graylink -c INI reconcile
--json``, PYTHONPATH = this checkout; the first run as users run it, without
``--json``, with the JSON variant reported beside it); "in loop" figures are
the cycle's own ``stats.duration_s``, which is what each cycle of the service
costs, while "process" figures include the interpreter's start-up. Targets are reported,
not enforced: the exit code is 1 only when graylink failed or a correctness
check (link count, idempotence, nothing listed, no DB write) did not hold.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import genlib  # noqa: E402  (a sibling script, not a package)

MB = 1024 * 1024
RACY_WAIT_S = 1.5
LOOP_TIMEOUT_S = 15.0  # the loop scans every second: a link later than this is a failure
# The reference polling observer, in its own process: its wall time, its peak
# RSS, and (printed) the time of the snapshot alone.
SNAPSHOT_CODE = (
    "import sys, time\n"
    "from watchdog.utils.dirsnapshot import DirectorySnapshot\n"
    "start = time.perf_counter()\n"
    "DirectorySnapshot(sys.argv[1], recursive=True)\n"
    "print(time.perf_counter() - start)\n"
)


# ------------------------------------------------------------------ processes


@dataclass
class Proc:
    argv: list[str]
    rc: int
    seconds: float
    maxrss: int  # bytes
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.stdout)
        except json.JSONDecodeError:
            raise BenchError(f"{' '.join(self.argv[-3:])} printed no JSON document: {self.stdout[:200]!r}") from None
        if not isinstance(doc, dict):
            raise BenchError(f"{' '.join(self.argv[-3:])} printed {type(doc).__name__}, not an object")
        return doc


class BenchError(Exception):
    """A benchmark step could not run (graylink failed, a tool is missing)."""


# Measured processes are started by this small launcher, not by the harness:
# a child's ru_maxrss starts from its parent's RSS at fork, and the harness
# grows with the library; the launcher (no site, a few MB) does not. It times
# fork to exit itself, so its own start-up is not counted either.
LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(sys.argv[1], "w") as out:
    out.write("%r %d" % (seconds, usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def run(argv: list[str], env: dict[str, str] | None = None, check: bool = True) -> Proc:
    """Run one process: its wall time and its own peak RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryDirectory() as tmp:
        measured = os.path.join(tmp, "measured")
        launcher = [sys.executable, "-S", "-c", LAUNCHER, measured, *argv]
        rc = subprocess.run(launcher, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, check=False).returncode
        try:
            with open(measured, encoding="ascii") as handle:
                seconds_text, maxrss_kib = handle.read().split()
        except OSError:
            raise BenchError(f"could not start {argv[0]}") from None
        out.seek(0)
        err.seek(0)
        result = Proc(
            argv=argv,
            rc=rc,
            seconds=float(seconds_text),
            maxrss=int(maxrss_kib) * 1024,  # Linux reports KiB
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
        )
    if check and result.rc != 0:
        tail = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BenchError(f"{' '.join(argv[-4:])} exited {result.rc}: {tail}")
    return result


def compile_checkout() -> None:
    """Compile the checkout's modules, as ``pip install`` does for its users.

    Without it every measured process would compile graylink's sources again
    wherever the environment sets PYTHONDONTWRITEBYTECODE (~70 ms a start)."""
    compileall.compile_dir(os.path.join(REPO, "graylink"), quiet=1)


def measured_checkout() -> str:
    """Where the graylink that the measured processes import lives. A graylink
    in the current folder (``python -m`` looks there first) or an editable
    install of another checkout would be measured instead of this one."""
    code = "import os, graylink; print(os.path.dirname(os.path.dirname(os.path.abspath(graylink.__file__))))"
    found = subprocess.run(
        [sys.executable, "-c", code], env=graylink_env(), capture_output=True, text=True, check=False
    ).stdout.strip()
    if os.path.realpath(found) != os.path.realpath(REPO):
        raise BenchError(f"the measured processes would import graylink from {found or '(nowhere)'}, not {REPO}")
    return found


def graylink_env() -> dict[str, str]:
    # The user's own GRAYLINK_* overrides must not leak into a benchmark.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAYLINK_")}
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class Graylink:
    """graylink as its users run it: a process with a config file."""

    def __init__(self, ini: str) -> None:
        self.ini = ini
        self.env = graylink_env()

    def __call__(self, *args: str, check: bool = True) -> Proc:
        return run([sys.executable, "-m", "graylink", "-c", self.ini, *args], env=self.env, check=check)

    def _reconcile(self, *args: str) -> Proc:
        # Exit 1 (conflicts, failures) is a result to report, not a harness error.
        proc = self("-q", "reconcile", *args, check=False)
        if proc.rc not in (0, 1):
            tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise BenchError(f"graylink reconcile exited {proc.rc}: {tail}")
        return proc

    def reconcile(self) -> tuple[Proc, dict[str, Any]]:
        proc = self._reconcile("--json")
        return proc, proc.json()

    def reconcile_plain(self) -> tuple[Proc, dict[str, Any]]:
        """``graylink reconcile`` as users run it, and the run's summary as ``status`` reports it."""
        proc = self._reconcile()
        summary = self("status", "--json", check=False).json().get("last_reconcile") or {}
        return proc, summary


def write_ini(path: str, source: str, target: str, database: str, trust: str, interval: str = "5m") -> str:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(
            f"[paths]\nsource = {source}\ntarget = {target}\ndatabase = {database}\n\n"
            f"[scan]\ntrust_dir_mtime = {trust}\ninterval = {interval}\n"
        )
    return path


# ---------------------------------------------------------------- references


@dataclass
class Snapshot:
    process_s: float  # the whole process
    inner_s: float  # the snapshot alone, as a polling observer pays it each poll
    maxrss: int


def snapshot(root: str) -> Snapshot:
    proc = run([sys.executable, "-c", SNAPSHOT_CODE, root])
    return Snapshot(proc.seconds, float(proc.stdout.strip()), proc.maxrss)


def find_process(root: str) -> Proc:
    return run(["find", root, "-printf", ""])


# -------------------------------------------------------------------- results


@dataclass
class Row:
    key: str
    what: str
    graylink: str
    reference: str
    ratio: str = ""
    target: str = ""
    verdict: str = ""  # ok | MISSED | "" (informative)


@dataclass
class Report:
    machine: dict[str, str]
    library: dict[str, Any]
    repeat: int
    rows: list[Row] = field(default_factory=list)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append((name, ok, detail))


def median(values: list[float]) -> float:
    return statistics.median(values)


def secs(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def slower(ratio: float) -> str:
    """A graylink/reference ratio, said the readable way round."""
    if ratio <= 0:
        return "n/a"
    return f"{ratio:.2f}×" if ratio >= 1 else f"{ratio:.3f} (1/{1 / ratio:.0f})"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


# --------------------------------------------------------------- the workspace


def fs_type(path: str) -> str:
    """The filesystem type of the deepest mount holding ``path``."""
    real = os.path.realpath(path)
    best, kind = "", "?"
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            left, _, right = line.partition(" - ")
            mount_point = left.split()[4].replace("\\040", " ")
            inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) >= len(best):
                best, kind = mount_point, right.split()[0]
    return kind


def inodes_needed(files: int) -> int:
    # The library, graylink's links and folders, and one cp -rs copy at a time.
    return int(files * 2.6) + 20_000


@contextlib.contextmanager
def workspace(requested: str | None, keep: bool, files: int) -> Iterator[str]:
    """A fresh folder: the one asked for, else on /dev/shm when it has room, else on a tmpfs mounted for the run."""
    mounted = ""
    need = inodes_needed(files)
    if requested:
        os.makedirs(requested, exist_ok=True)
        base = requested
    elif fs_type("/dev/shm") == "tmpfs" and os.access("/dev/shm", os.W_OK) and free_inodes("/dev/shm") > need:
        base = "/dev/shm"
    else:
        # /dev/shm is missing or too full (tmpfs limits inodes too): a tmpfs of our own.
        mounted = tempfile.mkdtemp(prefix="graylink-bench-tmpfs-")
        options = f"size={max(1, need // 200_000)}g,nr_inodes={need + need // 5},mode=0700"
        if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", mounted], check=False).returncode:
            os.rmdir(mounted)
            raise BenchError(
                f"no tmpfs with room for {need} inodes: /dev/shm has {free_inodes('/dev/shm')} free "
                "and mounting one failed (run as root, or pass --workdir)"
            )
        base = mounted
    work = tempfile.mkdtemp(prefix="graylink-bench-", dir=base)
    try:
        yield work
    finally:
        if keep and not mounted:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
        if mounted:
            subprocess.run(["umount", mounted], check=False)
            with contextlib.suppress(OSError):
                os.rmdir(mounted)


def free_inodes(path: str) -> int:
    try:
        return os.statvfs(path).f_favail
    except OSError:
        return 0


def machine_info() -> dict[str, str]:
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="utf-8") as handle:
        mem = f"{int(handle.readline().split()[1]) / MB:.1f} GiB"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def count_links(root: str) -> int:
    total = 0
    for _dirpath, dirnames, filenames in os.walk(root):
        total += sum(1 for name in filenames if os.path.islink(os.path.join(_dirpath, name)))
        total += sum(1 for name in dirnames if os.path.islink(os.path.join(_dirpath, name)))
    return total


# ---------------------------------------------------------------- measurements


class Bench:
    def __init__(self, work: str, files: int, repeat: int, report: Report, videos: float | None = None) -> None:
        self.work = work
        self.repeat = repeat
        self.report = report
        self.src = os.path.join(work, "src")
        self.stats = genlib.generate(self.src, files, videos=videos)
        report.library = {
            "files": self.stats.files,
            "dirs": self.stats.dirs,
            "videos": self.stats.videos,
            "fs": fs_type(self.src),
            "generated_s": round(self.stats.seconds, 2),
        }
        # graylink re-lists a folder modified within a second of its last
        # listing (the same timestamp tick may hide a second change); a real
        # library is not being written that second, so let the clock move on.
        time.sleep(RACY_WAIT_S)
        self.target = os.path.join(work, "links")
        self.db = os.path.join(work, "graylink.db")
        self.trusted = Graylink(write_ini(os.path.join(work, "trusted.ini"), self.src, self.target, self.db, "yes"))
        self.untrusted = Graylink(write_ini(os.path.join(work, "untrusted.ini"), self.src, self.target, self.db, "no"))
        self.first_rss: list[int] = []
        self.nochange_rss: list[int] = []
        self.snapshots: list[Snapshot] = []

    def snapshot_median(self) -> float:
        if not self.snapshots:
            self.snapshots = [snapshot(self.src) for _ in range(self.repeat)]
        return median([s.inner_s for s in self.snapshots])

    # 1
    def _fresh(self) -> None:
        for path in (self.target, self.db, self.db + "-wal", self.db + "-shm"):
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.unlink(path)

    def first_run(self) -> None:
        gl_s: list[float] = []
        json_s: list[float] = []
        loop_s: list[float] = []
        cp_s: list[float] = []
        summary: dict[str, Any] = {}
        for i in range(self.repeat):
            self._fresh()
            proc, summary = self.trusted.reconcile_plain()
            gl_s.append(proc.seconds)
            loop_s.append(float(summary["duration_s"]))
            self.first_rss.append(proc.maxrss)
            dst = os.path.join(self.work, f"cp-{i}")
            cp_s.append(run(["cp", "-rs", self.src, dst]).seconds)
            shutil.rmtree(dst)
            self._fresh()
            proc, doc = self.trusted.reconcile()
            json_s.append(proc.seconds)
        ratio = median(gl_s) / median(cp_s)
        self.report.add(
            Row(
                "1",
                "first run: index + every link (process)",
                secs(median(gl_s)),
                f"cp -rs {secs(median(cp_s))}",
                slower(ratio),
                "≤ 2.0×",
                verdict(ratio <= 2.0),
            )
        )
        self.report.add(
            Row(
                "1b",
                "first run, inside graylink (stats.duration_s)",
                secs(median(loop_s)),
                f"cp -rs {secs(median(cp_s))}",
                slower(median(loop_s) / median(cp_s)),
            )
        )
        self.report.add(
            Row(
                "1c",
                "first run with --json (every action printed)",
                secs(median(json_s)),
                f"cp -rs {secs(median(cp_s))}",
                slower(median(json_s) / median(cp_s)),
            )
        )
        links = count_links(self.target)
        created = int(doc.get("counts", {}).get("create", -1))
        created_plain = int(summary.get("counts", {}).get("create", -1))
        self.report.check(
            "first run links every video and nothing else",
            links == self.stats.videos and created == self.stats.videos == created_plain,
            f"{links} links on disk, {created} planned ({created_plain} without --json), "
            f"{self.stats.videos} videos in the library",
        )

    # 2 and 5
    def no_change_trusted(self) -> None:
        # The run after one that changed the link tree looks once more at the
        # folders changed within a second of their record (the racy rule).
        time.sleep(RACY_WAIT_S)
        self.trusted.reconcile()  # settles anything the first run left for a second pass
        gl_s: list[float] = []
        loop_s: list[float] = []
        ref_proc_s: list[float] = []
        listed: list[int] = []
        planned: list[int] = []
        writes = 0
        for _ in range(self.repeat):
            proc, doc = self.trusted.reconcile()
            writes += int(doc["stats"]["rows_written"] > 0)
            gl_s.append(proc.seconds)
            loop_s.append(float(doc["stats"]["duration_s"]))
            listed.append(int(doc["stats"]["dirs_listed"]))
            planned.append(sum(int(v) for v in doc["counts"].values()))
            self.nochange_rss.append(proc.maxrss)
            snap = snapshot(self.src)
            ref_proc_s.append(snap.process_s)
            self.snapshots.append(snap)
        loop_ratio = median(loop_s) / self.snapshot_median()
        proc_ratio = median(gl_s) / median(ref_proc_s)
        self.report.add(
            Row(
                "2a",
                "no change, trusted mtimes, in loop (stats.duration_s)",
                secs(median(loop_s)),
                f"DirectorySnapshot {secs(self.snapshot_median())}",
                slower(loop_ratio),
                "≤ 1/20",
                verdict(loop_ratio <= 1 / 20),
            )
        )
        self.report.add(
            Row(
                "2b",
                "no change, trusted mtimes, whole process",
                secs(median(gl_s)),
                f"snapshot process {secs(median(ref_proc_s))}",
                slower(proc_ratio),
                "≤ 1/3",
                verdict(proc_ratio <= 1 / 3),
            )
        )
        self.report.add(
            Row(
                "2c",
                "source folders listed in a no-change run",
                str(max(listed)),
                f"{self.stats.dirs} folders",
                "",
                "0",
                verdict(max(listed) == 0),
            )
        )
        self.report.check("no-change run plans nothing", max(planned) == 0, f"actions planned: {planned}")
        self.report.check(
            "no-change cycle writes no row to the DB (the run's record aside)",
            writes == 0,
            f"{writes} of {self.repeat} wrote",
        )

    # 3, tmpfs
    def no_change_untrusted(self) -> None:
        self.untrusted.reconcile()  # the switch of trust settles here
        gl_s: list[float] = []
        loop_s: list[float] = []
        find_s: list[float] = []
        listed: list[int] = []
        for _ in range(self.repeat):
            proc, doc = self.untrusted.reconcile()
            gl_s.append(proc.seconds)
            loop_s.append(float(doc["stats"]["duration_s"]))
            listed.append(int(doc["stats"]["dirs_listed"]))
            find_s.append(find_process(self.src).seconds)
        ratio = median(loop_s) / median(find_s)
        self.report.add(
            Row(
                "3a",
                "no change, trust_dir_mtime = no, in loop",
                secs(median(loop_s)),
                f"find {secs(median(find_s))}",
                slower(ratio),
                "≤ 2.0×",
                verdict(ratio <= 2.0),
            )
        )
        self.report.add(
            Row(
                "3b",
                "no change, trust_dir_mtime = no, whole process",
                secs(median(gl_s)),
                f"find {secs(median(find_s))}",
                slower(median(gl_s) / median(find_s)),
            )
        )
        self.report.check(
            "untrusted run lists every folder",
            min(listed) >= self.stats.dirs,
            f"listed {min(listed)} of {self.stats.dirs + 1} folders (root included)",
        )

    # 3, through rclone
    def no_change_rclone(self) -> None:
        problem = rclone_missing()
        if problem:
            self.report.add(Row("3c", "no change through an rclone mount, in loop", "skipped", problem))
            return
        mnt = os.path.join(self.work, "mnt")
        os.mkdir(mnt)
        conf = os.path.join(self.work, "rclone.conf")
        open(conf, "w").close()
        with rclone_mount(self.src, mnt, conf):
            for _ in range(2):  # warm rclone's directory cache
                find_process(mnt)
            db = os.path.join(self.work, "rclone.db")
            gl = Graylink(
                write_ini(
                    os.path.join(self.work, "rclone.ini"), mnt, os.path.join(self.work, "rclone-links"), db, "auto"
                )
            )
            gl.reconcile()  # the first run through the mount: builds the index and links
            gl.reconcile()
            loop_s: list[float] = []
            gl_s: list[float] = []
            find_s: list[float] = []
            listed: list[int] = []
            writes = 0
            for _ in range(self.repeat):
                proc, doc = gl.reconcile()
                writes += int(doc["stats"]["rows_written"] > 0)
                gl_s.append(proc.seconds)
                loop_s.append(float(doc["stats"]["duration_s"]))
                listed.append(int(doc["stats"]["dirs_listed"]))
                find_s.append(find_process(mnt).seconds)
        ratio = median(loop_s) / median(find_s)
        self.report.add(
            Row(
                "3c",
                "no change through an rclone mount, in loop",
                secs(median(loop_s)),
                f"serial find {secs(median(find_s))}",
                slower(ratio),
                "≤ 0.6×",
                verdict(ratio <= 0.6),
            )
        )
        self.report.add(
            Row(
                "3d",
                "no change through an rclone mount, whole process",
                secs(median(gl_s)),
                f"serial find {secs(median(find_s))}",
                slower(median(gl_s) / median(find_s)),
            )
        )
        self.report.add(
            Row(
                "3e",
                "no-change cycles on the mount that wrote DB rows",
                str(writes),
                f"{self.repeat} runs",
                "",
                "0",
                verdict(writes == 0),
            )
        )
        self.report.check(
            "the rclone mount is seen as untrusted (every folder listed)",
            min(listed) >= self.stats.dirs,
            f"listed {min(listed)} of {self.stats.dirs + 1}",
        )

    # 4
    def new_file(self) -> None:
        season = self.stats.season_dirs[0] if self.stats.season_dirs else "Movies"
        name = "Benchmark S01E99 new.mkv"
        path = os.path.join(self.src, season, name)
        link = os.path.join(self.target, season, name)
        start = time.perf_counter()
        open(path, "w").close()
        _proc, doc = self.trusted.reconcile()
        seconds = time.perf_counter() - start
        inside = float(doc["stats"]["duration_s"])
        listed = int(doc["stats"]["dirs_listed"])
        snap = self.snapshot_median()
        self.report.add(
            Row(
                "4a",
                "new file → link, one-shot reconcile (process)",
                secs(seconds),
                f"DirectorySnapshot {secs(snap)}",
                slower(seconds / snap),
            )
        )
        self.report.add(
            Row(
                "4b",
                "new file → link, inside graylink (stats.duration_s)",
                secs(inside),
                f"DirectorySnapshot {secs(snap)}",
                slower(inside / snap),
            )
        )
        self.report.add(
            Row(
                "4c",
                "source folders listed for one new file",
                str(listed),
                f"{self.stats.dirs} folders",
                "",
                "1",
                verdict(listed == 1),
            )
        )
        self.report.check("the new file got its link", os.path.islink(link), link)
        if self.supports_loop():
            try:
                self.new_file_in_loop(season, snap)
            except BenchError as exc:
                reason = str(exc).strip().splitlines()[-1]
                self.report.add(Row("4d", "new file → link in the loop", "unavailable", reason[:120]))

    def supports_loop(self) -> bool:
        return "--loop" in self.trusted("reconcile", "--help").stdout

    def new_file_in_loop(self, season: str, snap: float) -> None:
        """Time from a file's creation to its link, with the service running (scan interval 1 s)."""
        ini = write_ini(os.path.join(self.work, "loop.ini"), self.src, self.target, self.db, "yes", "1s")
        argv = [sys.executable, "-m", "graylink", "-c", ini, "-q", "reconcile", "--loop"]
        with subprocess.Popen(argv, env=graylink_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as loop:
            try:
                # A first file proves the loop is up and cycling before the timed one.
                if wait_for_link(self, season, "Benchmark S01E97 warm.mkv", loop) is None:
                    raise BenchError(f"the loop did not link a new file within {LOOP_TIMEOUT_S:.0f} s")
                latencies = []
                for i in range(self.repeat):
                    latency = wait_for_link(self, season, f"Benchmark S01E{80 + i} loop.mkv", loop)
                    if latency is None:
                        raise BenchError(f"the loop did not link a new file within {LOOP_TIMEOUT_S:.0f} s")
                    latencies.append(latency)
            finally:
                loop.send_signal(signal.SIGTERM)
                try:
                    loop.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    loop.kill()
                    loop.wait()
        self.report.add(
            Row(
                "4d",
                "new file → link in the loop (scan interval 1 s)",
                secs(median(latencies)),
                f"DirectorySnapshot {secs(snap)}",
                slower(median(latencies) / snap),
                "≤ interval + cycle",
            )
        )

    # 5
    def memory(self) -> None:
        peak = max(self.nochange_rss)
        ref = max(s.maxrss for s in self.snapshots)
        at = f"at {self.stats.files} files" + ("" if self.stats.files >= 1_000_000 else "; target is for 1M")
        self.report.add(
            Row(
                "5a",
                f"peak RSS, no-change run ({at})",
                f"{peak / MB:.1f} MB",
                f"snapshot process {ref / MB:.1f} MB",
                slower(peak / ref),
                "< 150 MB",
                verdict(peak < 150 * MB),
            )
        )
        first = max(self.first_rss)
        self.report.add(
            Row(
                "5b",
                "peak RSS, first run",
                f"{first / MB:.1f} MB",
                f"snapshot process {ref / MB:.1f} MB",
                slower(first / ref),
            )
        )

    # 6
    def startup(self) -> None:
        floor = median([run([sys.executable, "-c", "pass"]).seconds for _ in range(max(3, self.repeat))])
        helps = [self.trusted("--help").seconds for _ in range(max(3, self.repeat))]
        self.report.add(
            Row(
                "6a",
                "start-up: graylink --help",
                secs(median(helps)),
                f"python -c pass {secs(floor)}",
                slower(median(helps) / floor),
                "< 0.3 s",
                verdict(median(helps) < 0.3),
            )
        )
        probe = self.trusted("status", check=False)
        if probe.rc == 2 and "No such command" in probe.stderr:
            self.report.add(Row("6b", "start-up: graylink status", "n/a", "no status command in this build"))
            return
        statuses = [self.trusted("status").seconds for _ in range(max(3, self.repeat))]
        self.report.add(
            Row(
                "6b",
                "start-up: graylink status",
                secs(median(statuses)),
                f"python -c pass {secs(floor)}",
                slower(median(statuses) / floor),
                "< 0.3 s",
                verdict(median(statuses) < 0.3),
            )
        )


def wait_for_link(bench: Bench, season: str, name: str, loop: subprocess.Popen[bytes]) -> float | None:
    link = os.path.join(bench.target, season, name)
    open(os.path.join(bench.src, season, name), "w").close()
    start = time.perf_counter()
    while time.perf_counter() - start < LOOP_TIMEOUT_S:
        if os.path.islink(link):
            return time.perf_counter() - start
        if loop.poll() is not None:
            err = loop.stderr.read().decode("utf-8", "replace") if loop.stderr else ""
            raise BenchError(f"graylink reconcile --loop exited {loop.returncode}: {err.strip()[-300:]}")
        time.sleep(0.002)
    return None


def rclone_missing() -> str:
    for tool in ("rclone", "fusermount3"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    return ""


@contextlib.contextmanager
def rclone_mount(src: str, mnt: str, conf: str) -> Iterator[None]:
    argv = [
        "rclone",
        "--config",
        conf,
        "mount",
        src,
        mnt,
        "--daemon",
        "--read-only",
        "--dir-cache-time",
        "1000h",
        "--attr-timeout",
        "1000h",
    ]
    proc = run(argv, check=False)
    if proc.rc != 0:
        raise BenchError(f"rclone mount failed: {proc.stderr.strip()[-300:]}")
    try:
        deadline = time.monotonic() + 30
        while fs_type(mnt) != "fuse.rclone":
            if time.monotonic() > deadline:
                raise BenchError("rclone mount did not come up within 30 s")
            time.sleep(0.05)
        yield
    finally:
        for argv in (["fusermount3", "-u", mnt], ["fusermount3", "-uz", mnt]):
            if fs_type(mnt) != "fuse.rclone" or run(argv, check=False).rc == 0:
                break


# ------------------------------------------------------------------- output


def print_report(report: Report, out: Callable[[str], None] = print) -> None:
    m, lib = report.machine, report.library
    out(
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory']}; Linux {m['kernel']}; "
        f"Python {m['python']}; SQLite {m['sqlite']}"
    )
    if lib:
        out(
            f"library: {lib['files']} files in {lib['dirs']} folders ({lib['videos']} videos) on {lib['fs']}; "
            f"medians of {report.repeat} run(s)"
        )
    out("")
    headers = ("#", "measure", "graylink", "reference", "ratio", "target", "")
    table = [headers] + [
        (r.key, r.what, r.graylink, r.reference, r.ratio, r.target, r.verdict)
        for r in sorted(report.rows, key=lambda r: r.key)
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    for n, row in enumerate(table):
        out("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            out("  ".join("-" * w for w in widths))
    if report.checks:
        out("")
        out("checks:")
        for name, ok, detail in report.checks:
            out(f"  [{'ok' if ok else 'FAILED'}] {name}" + (f" ({detail})" if detail else ""))
    for error in report.errors:
        out(f"error: {error}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--files",
        type=int,
        default=genlib.DEFAULT_FILES,
        help=f"library size in files (default {genlib.DEFAULT_FILES}, up to {genlib.MAX_FILES})",
    )
    parser.add_argument(
        "--videos",
        type=float,
        metavar="SHARE",
        help="a video-heavy library: this share of the files are videos, e.g. 0.6 (default: the natural ~30%%)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; medians are shown (default 3)")
    parser.add_argument("--rclone", action="store_true", help="also measure through a real rclone mount of the tree")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--workdir", metavar="DIR", help="where to build (default: a folder on /dev/shm)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the library, links and DB afterwards (not on a tmpfs of its own)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.files <= genlib.MAX_FILES:
        parser.error(f"--files must be between 1 and {genlib.MAX_FILES}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.videos is not None and not 0 < args.videos <= 1:
        parser.error("--videos must be a share above 0 and at most 1")

    report = Report(machine=machine_info(), library={}, repeat=args.repeat)
    compile_checkout()
    try:
        measured_checkout()
        with workspace(args.workdir, args.keep, args.files) as work:
            print(f"building a {args.files}-file library in {work} ...", file=sys.stderr, flush=True)
            bench = Bench(work, args.files, args.repeat, report, args.videos)
            steps: list[tuple[str, Callable[[], None]]] = [
                ("first run", bench.first_run),
                ("start-up", bench.startup),
                ("no-change, trusted", bench.no_change_trusted),
                ("no-change, untrusted", bench.no_change_untrusted),
                ("new file", bench.new_file),
                ("memory", bench.memory),
            ]
            if args.rclone:
                steps.insert(3, ("rclone mount", bench.no_change_rclone))
            for name, step in steps:
                print(f"measuring: {name} ...", file=sys.stderr, flush=True)
                try:
                    step()
                except (BenchError, OSError, KeyError, ValueError) as exc:
                    report.errors.append(f"{name}: {exc}")
                    if name == "first run":
                        break  # everything after needs the first run's index and links
    except BenchError as exc:
        report.errors.append(str(exc))
    print_report(report)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({**asdict(report), "rows": [asdict(r) for r in report.rows]}, handle, indent=2)
    failed_checks = [c for c in report.checks if not c[1]]
    return 1 if report.errors or failed_checks else 0


if __name__ == "__main__":
    sys.exit(main())
