"""What confirming changes costs a media server, against the size of its library: 1k and 100k items.

    python benchmarks/confirm_bench.py [--sizes 1000,100000] [--changes 50] [--workdir DIR]

For each size N the loopback Jellyfin and Plex of the test suite
(tests/emby_server.py, tests/plex_server.py) hold N items, and graylink
delivers C new links, then runs the cycle that asks which reached each
library. Two libraries per size:

  quiet   the N items were saved long ago (what a library is most days)
  busy    the N items were all saved again just after the new ones came (a
          metadata refresh touched every item): the worst case for "what was
          saved since": the new items sort behind all N, beyond the pages a
          cycle may read, and stay pending (re-sent, then stuck, if it lasts)

Printed per size and library: the requests the confirmation cycle sent to
each server, the changes it confirmed, and its wall time. The requests must
not grow with N (Emby/Jellyfin: at most 3 pages of 200; Plex: at most 3
pages of 100 per section, plus the section list); the exit code is 1 when
they do, or when a change that arrived was not confirmed in a quiet library.
Not part of the test suite (100k items take a while to build).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, REPO)  # this checkout's graylink

from emby_server import FakeMediaServer  # noqa: E402
from plex_server import FakePlex  # noqa: E402

from graylink.config import parse_raw  # noqa: E402
from graylink.links.planner import Op  # noqa: E402
from graylink.notify.deliver import deliver_all  # noqa: E402
from graylink.notify.queue import enqueue  # noqa: E402
from graylink.store.db import Store  # noqa: E402

KEY = "bench-key-0000"
TOKEN = "bench-token-0000"


def measure(size: int, changes: int, busy: bool, workdir: str) -> dict[str, float]:
    root = tempfile.mkdtemp(prefix=f"confirm-{size}-", dir=workdir)
    source, target = os.path.join(root, "src"), os.path.join(root, "links")
    links = []
    for n in range(changes):
        folder = "TV/New Show/Season 1"
        os.makedirs(os.path.join(source, folder), exist_ok=True)
        os.makedirs(os.path.join(target, folder), exist_ok=True)
        name = f"New Show - S01E{n + 1:02d}.mkv"
        open(os.path.join(source, folder, name), "wb").close()
        os.symlink(os.path.join(source, folder, name), os.path.join(target, folder, name))
        links.append(os.fsencode(os.path.join(target, folder, name)))
    with FakeMediaServer("jellyfin", KEY) as emby, FakePlex(TOKEN) as plex:
        emby.library.fs_map = {"/media": target}
        plex.library.fs_map = {"/data": target}
        emby.library.fill(size, "/media/TV")
        plex.library.fill(size, "/data/TV")
        config = parse_raw(
            {
                "paths": {"source": source, "target": target, "database": os.path.join(root, "g.db")},
                "emby": {"url": emby.url, "api_key": KEY, "path_map": f"{target}=/media"},
                "plex": {"url": plex.url, "token": TOKEN, "path_map": f"{target}=/data"},
            }
        )
        with Store(config.paths.database) as store:
            with store.atomic():
                enqueue(store, [(Op.CREATE, link) for link in links], ("emby", "plex"))
            deliver_all(config, store)  # the delivery
            emby.tick()
            plex.tick()
            if busy:  # every old item saved again after the new ones came: they sort behind all N
                later = time.time() + 60
                for item in [*emby.library.items.values(), *plex.library.items.values()]:
                    if "/Old " in item.path:
                        item.saved_at = later
            before_emby, before_plex = len(emby.requests), len(plex.urls)
            began = time.monotonic()
            results = deliver_all(config, store)  # the confirmation
            took = time.monotonic() - began
            return {
                "emby_requests": len(emby.requests) - before_emby,
                "plex_requests": len(plex.urls) - before_plex,
                "emby_confirmed": results["emby"].confirmed,
                "plex_confirmed": results["plex"].confirmed,
                "seconds": took,
            }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    workdir = args.workdir or tempfile.mkdtemp(prefix="confirm-bench-")
    failed = False
    print(f"{'items':>8} {'library':>7} {'emby req':>9} {'plex req':>9} {'confirmed':>10} {'seconds':>8}")
    seen: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for size in sizes:
        for busy in (False, True):
            got = measure(size, args.changes, busy, workdir)
            confirmed = f"{int(got['emby_confirmed'])}/{int(got['plex_confirmed'])}"
            print(
                f"{size:>8} {'busy' if busy else 'quiet':>7} {int(got['emby_requests']):>9} "
                f"{int(got['plex_requests']):>9} {confirmed:>10} {got['seconds']:>8.3f}"
            )
            seen[busy].append((got["emby_requests"], got["plex_requests"]))
            if not busy and (got["emby_confirmed"] != args.changes or got["plex_confirmed"] != args.changes):
                failed = True
    for busy, counts in seen.items():
        if len({c for c in counts}) > 1:
            print(f"requests grew with the library's size ({'busy' if busy else 'quiet'}): {counts}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
