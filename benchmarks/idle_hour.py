"""An idle hour of the service through an rclone mount, with and without the Drive Changes feed.

    python benchmarks/idle_hour.py [--files N] [--minutes M] [--json FILE] [--workdir DIR]

Builds the synthetic library (benchmarks/genlib.py, 140k files by default),
mounts it with rclone as recommended (``--dir-cache-time 1000h``, ``--rc``),
indexes it once, then plays the service's hour twice, minute by minute, with
the loop's own schedule (``[scan] interval = 5m``, ``[drive] interval = 1m``)
and one new episode every 10 minutes:

  A  without a feed: a walk every 5 minutes lists every folder
  B  with the Changes feed (the loopback Google of tests/, reporting nothing,
     then the new episode): a poll every minute, the walk reconciles only what
     the feed marked

Reported per scenario: source folders listed, Drive API calls (B: counted by
the loopback; A: each listing of an expired rclone cache is one, so at least
the listings when the cache expires between walks, as rclone's default 5m
does), graylink's CPU seconds (the process's, the loopback's threads
included), and for B the time from a reported change to its link beyond the
poll interval. Targets: A lists at least 100x the folders B lists, and each
reported file is linked within one ``[drive] interval`` + 5 s. The minutes are
simulated (no sleeping): the jobs run back to back, as they would at each tick.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)

import genlib  # noqa: E402  (a sibling script)
from run import BenchError, fs_type, rclone_missing, workspace  # noqa: E402

from graylink.config import Config, parse_raw  # noqa: E402
from graylink.drive.cadence import cadence  # noqa: E402
from graylink.drive.feed import poll_drive  # noqa: E402
from graylink.reconcile.cycle import CycleOptions, run_cycle  # noqa: E402
from graylink.store.db import Store  # noqa: E402
from tests.google_server import MY_DRIVE_ROOT, FakeGoogle  # noqa: E402

WALK_EVERY = 5  # minutes: [scan] interval
CHANGE_EVERY = 10  # minutes
POLL_INTERVAL_S = 60.0  # [drive] interval of the Changes feed
CLIENT_ID = "bench-client.apps.example"
CLIENT_SECRET = "made-up-bench-secret"
REFRESH = "made-up-bench-refresh"


@dataclass
class Scenario:
    name: str
    folders_listed: int = 0
    drive_calls: int = 0
    cpu_s: float = 0.0
    cycles: int = 0
    links_made: int = 0
    latency_s: list[float] | None = None  # beyond the poll interval, per reported file


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def mounted(src: str, mnt: str, port: int) -> Iterator[None]:
    # In the foreground, not --daemon: rclone 1.60 with --daemon and --rc binds
    # the rc port in the parent, and the child then fails to start.
    argv = [
        "rclone", "--config", "/dev/null", "mount", src, mnt, "--read-only",
        "--dir-cache-time", "1000h", "--attr-timeout", "1000h",
        "--rc", "--rc-addr", f"127.0.0.1:{port}", "--rc-no-auth",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while fs_type(mnt) != "fuse.rclone":
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError("rclone mount did not come up within 30 s")
            time.sleep(0.05)
        yield
    finally:
        subprocess.run(["fusermount3", "-uz", mnt], capture_output=True, check=False)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Library:
    """The library on disk and its folders on the loopback Drive (created when a change needs them)."""

    def __init__(self, src: str, google: FakeGoogle, stats: genlib.LibraryStats) -> None:
        self.src = src
        self.google = google
        self.seasons = stats.season_dirs or ["Movies"]
        self.root = google.add("Media", MY_DRIVE_ROOT, folder=True, record=False)
        self.ids = {"": self.root}
        self.added: list[str] = []

    def folder_id(self, rel: str) -> str:
        if rel not in self.ids:
            parent, _, name = rel.rpartition("/")
            self.ids[rel] = self.google.add(name, self.folder_id(parent), folder=True, record=False)
        return self.ids[rel]

    def new_episode(self, n: int, on_drive: bool) -> str:
        folder = self.seasons[n % len(self.seasons)]
        name = f"bench-new-{n:03d}.mkv"
        with open(os.path.join(self.src, folder, name), "wb"):
            pass
        if on_drive:
            self.google.add(name, self.folder_id(folder))
        rel = f"{folder}/{name}"
        self.added.append(rel)
        return rel


def config_for(work: str, mnt: str, db: str, port: int, google: FakeGoogle | None) -> Config:
    raw: dict[str, dict[str, str]] = {
        "paths": {"source": mnt, "target": os.path.join(work, "links"), "database": db},
        "scan": {"interval": f"{WALK_EVERY}m", "workers": "4"},
        "mount": {"rclone_rc": f"http://127.0.0.1:{port}"},
    }
    if google is not None:
        raw["drive"] = {
            "enabled": "yes",
            "feed": "changes",
            "interval": "1m",
            "rclone_config": os.path.join(work, "rclone.conf"),
            "remote": "gdrive:",
            "api_endpoint": google.url,
            "token_uri": google.url + "/token",
            "token_file": os.path.join(work, "no-token.json"),
        }
    return parse_raw(raw)


def write_rclone_conf(path: str, google: FakeGoogle, root: str) -> None:
    google.grant(REFRESH, ["drive"])
    access = google.issue_access_token(["drive"], lifetime=86400)
    token = {"access_token": access, "token_type": "Bearer", "refresh_token": REFRESH, "expiry": "2099-01-01T00:00:00Z"}
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(
            f"[gdrive]\ntype = drive\nclient_id = {CLIENT_ID}\nclient_secret = {CLIENT_SECRET}\n"
            f"scope = drive\nroot_folder_id = {root}\ntoken = {json.dumps(token)}\n"
        )


def linked(config: Config, rel: str) -> bool:
    return os.path.islink(os.path.join(config.paths.target, rel))


def cycle(config: Config, store: Store, scenario: Scenario, options: CycleOptions) -> None:
    result = run_cycle(config, store, options)
    if result.exit_code != 0:
        raise BenchError(f"{scenario.name}: a cycle failed: {result.failures[:3]}")
    scenario.folders_listed += result.stats.dirs_listed
    scenario.links_made += result.plan.counts()["create"]
    scenario.cycles += 1


def hour_without_feed(config: Config, store: Store, lib: Library, minutes: int) -> Scenario:
    scenario = Scenario("A: no feed")
    started = time.process_time()
    for minute in range(minutes):
        if minute % CHANGE_EVERY == 0:
            lib.new_episode(minute, on_drive=False)
        if minute % WALK_EVERY == 0:
            cycle(config, store, scenario, CycleOptions(drive=False))
    scenario.cpu_s = time.process_time() - started
    scenario.drive_calls = scenario.folders_listed  # each listing of an expired rclone cache is one call
    return scenario


def hour_with_feed(config: Config, store: Store, lib: Library, google: FakeGoogle, minutes: int) -> Scenario:
    scenario = Scenario("B: Changes feed", latency_s=[])
    assert scenario.latency_s is not None
    calls_before = sum(google.state.calls.values())
    started = time.process_time()
    if poll_drive(config, store).error is not None:  # the start token, before the hour
        raise BenchError("the feed did not start")
    for minute in range(minutes):
        pending = lib.new_episode(minute, on_drive=True) if minute % CHANGE_EVERY == 0 else None
        reported = time.monotonic()
        polled = poll_drive(config, store)
        if polled.error is not None:
            raise BenchError(f"a poll failed: {polled.error}")
        if polled.marks:
            cycle(config, store, scenario, CycleOptions(walk=False, drive=False))
        if pending is not None:
            if not linked(config, pending):
                raise BenchError(f"{pending} was not linked after the poll that reported it")
            scenario.latency_s.append(time.monotonic() - reported)
        if minute % WALK_EVERY == 0:
            trusted = False  # an rclone mount
            plan = cadence(config, store, trusted)
            cycle(config, store, scenario, CycleOptions(walk=plan.list_all, drive=False))
    scenario.cpu_s = time.process_time() - started
    scenario.drive_calls = sum(google.state.calls.values()) - calls_before
    return scenario


def bench(work: str, files: int, minutes: int) -> dict[str, Any]:
    src, mnt = os.path.join(work, "src"), os.path.join(work, "mnt")
    os.makedirs(mnt)
    print(f"library in {work} ...", file=sys.stderr)
    stats = genlib.generate(src, files)
    port = free_port()
    with FakeGoogle() as google, mounted(src, mnt, port):
        google.add_client(CLIENT_ID, CLIENT_SECRET)
        lib = Library(src, google, stats)
        write_rclone_conf(os.path.join(work, "rclone.conf"), google, lib.root)
        db_a, db_b = os.path.join(work, "a.db"), os.path.join(work, "b.db")
        plain = config_for(work, mnt, db_a, port, None)
        print("first run (index and links) ...", file=sys.stderr)
        with Store(db_a) as store:
            if run_cycle(plain, store, CycleOptions(drive=False)).exit_code != 0:
                raise BenchError("the first run failed")
        shutil.copy(db_a, db_b)
        links = os.path.join(work, "links")
        print(f"hour A ({minutes} simulated minutes, no feed) ...", file=sys.stderr)
        with Store(db_a) as store:
            a = hour_without_feed(plain, store, lib, minutes)
        for rel in lib.added:  # the same starting point for B
            os.unlink(os.path.join(src, rel))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(links, rel))
        lib.added.clear()
        print(f"hour B ({minutes} simulated minutes, Changes feed) ...", file=sys.stderr)
        with Store(db_b) as store:
            b = hour_with_feed(config_for(work, mnt, db_b, port, google), store, lib, google, minutes)
    ratio = a.folders_listed / max(b.folders_listed, 1)
    worst = max(b.latency_s or [0.0])
    return {
        "library": {"files": stats.files, "dirs": stats.dirs},
        "minutes": minutes,
        "scenarios": [asdict(a), asdict(b)],
        "listing_ratio": ratio,
        "worst_latency_beyond_interval_s": worst,
        "targets": {"listing_ratio >= 100": ratio >= 100, "latency <= interval + 5 s": worst <= 5.0},
    }


def report(doc: dict[str, Any]) -> None:
    lib = doc["library"]
    print(f"library: {lib['files']} files in {lib['dirs']} folders; {doc['minutes']} simulated minutes")
    print(f"{'scenario':<18} {'folders listed':>15} {'Drive calls':>12} {'CPU s':>8} {'cycles':>7}")
    for s in doc["scenarios"]:
        print(f"{s['name']:<18} {s['folders_listed']:>15} {s['drive_calls']:>12} {s['cpu_s']:>8.2f} {s['cycles']:>7}")
    print(f"folder listings, A / B: {doc['listing_ratio']:.0f}x (target >= 100x)")
    print(
        f"reported file linked within the {POLL_INTERVAL_S:.0f}s interval + "
        f"{doc['worst_latency_beyond_interval_s']:.2f}s (target: + 5 s)"
    )
    for target, ok in doc["targets"].items():
        print(f"  {target}: {'met' if ok else 'MISSED'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=genlib.DEFAULT_FILES)
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--workdir", help="where to build the library (default: a tmpfs)")
    args = parser.parse_args(argv)
    if args.files < 100 or args.minutes < CHANGE_EVERY:
        parser.error(f"--files must be at least 100 and --minutes at least {CHANGE_EVERY}")
    problem = rclone_missing()
    if problem:
        print(f"skipped: {problem}", file=sys.stderr)
        return 0
    try:
        with workspace(args.workdir, False, args.files) as work:
            doc = bench(work, args.files, args.minutes)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report(doc)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(doc, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
