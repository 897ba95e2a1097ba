"""Cost against the size of a change: 10,000 and 20,000 changed folders.

    python benchmarks/marks_bench.py [--sizes 10000,20000] [--repeat K] [--workdir DIR]

For each size N, a library of 2N folders (one video each) is linked, then the
video of N folders is deleted: the walk marks N folders dirty and the plan
holds N prunes, half of all links, so

  7a  the braked run (prunes withheld, every mark kept)       cycle time per size
  7b  the --force run that then prunes them                   cycle time per size

are timed inside this process (graylink's cycle, as the service runs it): the
CPU time of the cycle, which a machine busy with other work inflates far less
than the wall time (printed beside it). Printed: each median, and the ratio
of the largest size to the smallest with its target: cost grows with the
change, so doubling N may at most (about) double it, ratio <= 2.2 (wall
times were 3.1x for 7a and 3.5x for 7b when every mark was compared with
every scope). The exit code is 1 only when graylink
failed or a count was wrong; the ratio is reported, not enforced.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from run import BenchError, workspace, write_ini  # noqa: E402  (the harness, a sibling script)

sys.path.insert(0, os.path.dirname(HERE))  # this checkout's graylink

from graylink.config import Config, load_config  # noqa: E402
from graylink.reconcile.cycle import CycleOptions, CycleResult, run_cycle  # noqa: E402
from graylink.store.db import Store  # noqa: E402

TARGET_RATIO = 2.2
RACY_WAIT_S = 1.5  # folders changed within the last second are re-listed anyway: let them age


@dataclass
class Round:
    braked_cpu: float
    braked_wall: float
    forced_cpu: float
    forced_wall: float


@dataclass
class Sized:
    size: int
    rounds: list[Round]

    def median(self, pick: Callable[[Round], float]) -> float:
        return statistics.median(pick(r) for r in self.rounds)


def build(root: str, folders: int) -> str:
    source = os.path.join(root, "source")
    for i in range(folders):
        folder = os.path.join(source, "Shows", f"Show {i // 100:04d}", f"Season {i % 100:02d}")
        os.makedirs(folder)
        open(os.path.join(folder, f"Show {i // 100:04d} S{i % 100:02d}E01.mkv"), "wb").close()
    return source


def delete_half(source: str, changed: int) -> None:
    for i in range(changed):
        folder = os.path.join(source, "Shows", f"Show {i // 100:04d}", f"Season {i % 100:02d}")
        os.unlink(os.path.join(folder, f"Show {i // 100:04d} S{i % 100:02d}E01.mkv"))


def timed(config: Config, store: Store, options: CycleOptions) -> tuple[CycleResult, float, float]:
    """One cycle in this process: its result, its CPU time (user + system, every thread) and its wall time."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = run_cycle(config, store, options)
    return result, time.process_time() - cpu, time.perf_counter() - wall


def expect(what: str, got: int, wanted: int) -> None:
    if got != wanted:
        raise BenchError(f"{what}: {got}, expected {wanted}")


def one_round(work: str, size: int, index: int) -> Round:
    root = os.path.join(work, f"n{size}-{index}")
    os.makedirs(root)
    source = build(root, 2 * size)
    ini = write_ini(
        os.path.join(root, "graylink.ini"),
        source,
        os.path.join(root, "links"),
        os.path.join(root, "graylink.db"),
        trust="yes",
    )
    config = load_config(ini)
    time.sleep(RACY_WAIT_S)
    with Store(config.paths.database) as store:
        first, _, _ = timed(config, store, CycleOptions())
        expect("links made by the first run", first.counts()["create"], 2 * size)
        delete_half(source, size)
        time.sleep(RACY_WAIT_S)
        braked, braked_cpu, braked_wall = timed(config, store, CycleOptions())
        expect("prunes withheld by the brake", braked.counts()["braked"], size)
        forced, forced_cpu, forced_wall = timed(config, store, CycleOptions(force=True))
        expect("prunes made by --force", forced.counts()["prune"], size)
    return Round(braked_cpu, braked_wall, forced_cpu, forced_wall)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,20000", help="changed folders per run, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per size; medians are shown (default 3)")
    parser.add_argument("--workdir", metavar="DIR", help="where to build (default: a folder on /dev/shm)")
    args = parser.parse_args(argv)
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",")})
    except ValueError:
        parser.error("--sizes takes whole numbers, comma-separated")
    if len(sizes) < 2 or sizes[0] < 30:
        parser.error("--sizes needs two sizes or more, each at least 30 (the brake spares 20 prunes)")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    logging.disable(logging.ERROR)  # the brake's own ERROR line is the expected result here
    results: list[Sized] = []
    try:
        with workspace(args.workdir, False, 4 * sizes[-1] * args.repeat) as work:
            for size in sizes:
                print(f"{size} changed folders ...", file=sys.stderr, flush=True)
                results.append(Sized(size, [one_round(work, size, i) for i in range(args.repeat)]))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    small, large = results[0], results[-1]
    allowed = TARGET_RATIO * large.size / small.size / 2
    rows: list[tuple[str, str, Callable[[Round], float], Callable[[Round], float]]] = [
        ("7a", "braked run", lambda r: r.braked_cpu, lambda r: r.braked_wall),
        ("7b", "--force run", lambda r: r.forced_cpu, lambda r: r.forced_wall),
    ]
    for key, title, cpu, wall in rows:
        times = "  ".join(f"{r.size}: {r.median(cpu):.2f} s cpu ({r.median(wall):.2f} s wall)" for r in results)
        ratio = large.median(cpu) / max(small.median(cpu), 1e-9)
        verdict = "ok" if ratio <= allowed else "OVER"
        print(f"{key}  {title:<12} {times}   cpu ratio {ratio:.2f} (target <= {allowed:.2f}: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
