"""Snapshot size and open time on a synthetic index.

    python benchmarks/snapshot_bench.py [--files 100000] [--no-browser] [--keep DIR]

Builds an index of N files shaped like a media library (shows with seasons of
episodes and subtitles, movie folders), every other video linked; renders the
snapshot; prints bytes per file and render time, then opens the page in
headless Chromium (/usr/bin/chromium) and prints the time to the first tree
render and the time of one search over the whole index. Figures only, no
assertions: machines are noisy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graylink.config import parse_raw
from graylink.report.snapshot import write_snapshot
from graylink.store.db import Store

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MTIME_NS = 1_700_000_000 * 10**9


def library_rows(n_files: int) -> tuple[list[bytes], list[tuple[int, bytes, int]], list[bytes]]:
    """Folders, files (folder number, name, size) and linked sources for ``n_files`` files."""
    folders: list[bytes] = [b"", b"Movies", b"TV"]
    files: list[tuple[int, bytes, int]] = []
    linked: list[bytes] = []
    show = 0
    while len(files) < n_files:
        if show % 4 == 3:  # a movie folder: the film, its subtitle, a poster
            title = f"A Movie Title Number {show} ({1950 + show % 70})"
            folders.append(f"Movies/{title}".encode())
            d = len(folders) - 1
            names = [f"{title} 2160p UHD BluRay x265.mkv", f"{title}.en.srt", "poster.jpg"]
        else:  # a show season: 10 episodes and their subtitles
            title = f"Some Show Title {show} ({2000 + show % 25})"
            if not folders[-1].startswith(f"TV/{title}".encode()):
                folders.append(f"TV/{title}".encode())
            folders.append(f"TV/{title}/Season {show % 9 + 1:02d}".encode())
            d = len(folders) - 1
            names = []
            for ep in range(1, 11):
                base = f"{title} - S{show % 9 + 1:02d}E{ep:02d} - Episode Name {ep} 1080p WEB-DL"
                names += [base + ".mkv", base + ".en.srt"]
        for k, name in enumerate(names):
            if len(files) >= n_files:
                break
            raw = name.encode()
            files.append((d, raw, 1_500_000_000 + 7919 * k if raw.endswith(b".mkv") else 40_000 + k))
            if raw.endswith(b".mkv") and len(files) % 2:
                linked.append(folders[d] + b"/" + raw)
        show += 1
    return folders, files, linked


def build_index(store: Store, n_files: int) -> None:
    folders, files, linked = library_rows(n_files)
    with store.atomic():
        store.executemany(
            "INSERT INTO directory (id, path, mtime_ns, listed_ns) VALUES (?, ?, ?, 0)",
            ((i + 1, path, MTIME_NS) for i, path in enumerate(sorted(set(folders)))),
        )
        ids = {path: i + 1 for i, path in enumerate(sorted(set(folders)))}
        store.executemany(
            "INSERT INTO file (dir_id, name, size, mtime_ns) VALUES (?, ?, ?, ?)",
            ((ids[folders[d]], name, size, MTIME_NS) for d, name, size in files),
        )
        store.executemany(
            "INSERT INTO link (dir, name, target) VALUES (?, ?, ?)",
            ((src.rpartition(b"/")[0], src.rpartition(b"/")[2], b"/media/" + src) for src in linked),
        )


def open_in_chromium(path: str) -> tuple[float, float, float, str]:
    """(wall seconds from navigation to first tree render, the page's own
    time to ready, one search's seconds, the search's result line)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        start = time.perf_counter()
        page.goto(Path(path).as_uri(), timeout=300_000)
        page.wait_for_selector("html[data-ready]", timeout=300_000)
        wall = time.perf_counter() - start
        ready_ms = float(page.evaluate("window.graylinkReadyAt"))
        page.fill("#gl-search", "s03e07")
        t0 = float(page.evaluate("performance.now()"))
        page.press("#gl-search", "Enter")
        page.wait_for_selector("table.search")
        search_ms = float(page.evaluate("performance.now()")) - t0
        hits = page.text_content("#gl-status") or ""
        browser.close()
    if errors:
        print("page errors:", errors)
    return wall, ready_ms / 1000, search_ms / 1000, hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000, help="files in the synthetic index (default 100000)")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium timing")
    parser.add_argument("--keep", metavar="DIR", help="build in DIR and keep the database and the page")
    args = parser.parse_args()

    work = args.keep or tempfile.mkdtemp(prefix="graylink-snapshot-bench-")
    os.makedirs(os.path.join(work, "src"), exist_ok=True)
    db = os.path.join(work, "graylink.db")
    for leftover in (db, db + "-wal", db + "-shm"):
        if os.path.exists(leftover):
            os.unlink(leftover)
    config = parse_raw(
        {"paths": {"source": os.path.join(work, "src"), "target": os.path.join(work, "links"), "database": db}}
    )
    t0 = time.perf_counter()
    with Store(db) as store:
        build_index(store, args.files)
    print(f"index: {args.files} files built in {time.perf_counter() - t0:.2f} s")

    out = os.path.join(work, "snapshot.html")
    t0 = time.perf_counter()
    with Store(db, readonly=True) as store:
        stats = write_snapshot(config, store, out)
    render_s = time.perf_counter() - t0
    print(
        f"render: {render_s:.2f} s, {stats.bytes_written / 1e6:.1f} MB, {stats.bytes_per_file:.1f} bytes/file "
        f"({stats.folders} folders, {stats.files} files, {stats.videos} videos, {stats.linked} linked)"
    )
    if not args.no_browser:
        if not os.path.exists(CHROMIUM):
            print(f"chromium: skipped, {CHROMIUM} is missing")
        else:
            wall, ready, search, hits = open_in_chromium(out)
            print(f"chromium: first tree render {wall:.2f} s after navigation (page's own clock {ready:.2f} s)")
            print(f"chromium: search over every name {search:.2f} s ({hits})")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
