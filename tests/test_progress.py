"""Progress where people look (issue 27 item 8): a live line on a terminal through every phase,
link creation included (a real pseudo-terminal, pexpect); INFO lines off a terminal (a real
process whose stderr is a pipe, and the service loop), whose last figures are the summary's;
nothing for a short run, nothing with ``-q``."""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path

import pexpect
from service_support import Loop

from graylink.system.progress import DRAW_EVERY, Meter

from conftest import REPO, Library

SHOWS, SEASONS, EPISODES = 30, 4, 25  # 3,000 videos in 150 folders: a first run of about a second
VIDEOS = SHOWS * SEASONS * EPISODES
SUMMARY = re.compile(r"(\d+) created, .* (\d+) listed, (\d+) files indexed")
DRAWN = re.compile(r"\r([^\r\x1b]*)\x1b\[K")
LOGGED_LISTING = re.compile(r"INFO progress: listing folders: (\d+)(?: of ~\d+)? \((\d+) files\)")
LOGGED_CREATING = re.compile(r"INFO progress: creating links: (\d+) of (\d+)")


def big_library(lib: Library, shows: int = SHOWS) -> None:
    for show in range(shows):
        for season in range(SEASONS):
            folder = lib.source / f"Show {show:02d}" / f"Season {season + 1}"
            folder.mkdir(parents=True)
            for episode in range(EPISODES):
                (folder / f"Show {show:02d} S{season + 1:02d}E{episode + 1:02d}.mkv").write_bytes(b"")


def summary_of(text: str) -> tuple[int, int, int]:
    found = SUMMARY.search(text)
    assert found, text
    created, listed, files = (int(n) for n in found.groups())
    return created, listed, files


def on_a_terminal(lib: Library, *args: str) -> str:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "graylink", *args, "-c", str(lib.ini), "reconcile"],
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"},
        encoding="utf-8",
        timeout=60,
        dimensions=(50, 200),
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    return child.before or ""


def test_the_terminal_line_goes_on_counting_while_links_are_made(lib: Library) -> None:
    """Before: the counter showed "scanning: N folders" and froze there while 3,000 links were made."""
    big_library(lib)
    out = on_a_terminal(lib)
    created, listed, files = summary_of(out)
    assert created == VIDEOS
    drawn = DRAWN.findall(out)
    creating = [int(m.group(1)) for m in map(re.compile(r"creating links: (\d+) of (\d+)$").match, drawn) if m]
    assert len(set(creating)) >= 2, drawn  # redrawn while links are made, not once
    assert creating == sorted(creating) and creating[-1] == created, creating
    assert all(f" of {VIDEOS}" in line for line in drawn if line.startswith("creating links")), drawn
    listing = [line for line in drawn if line.startswith("listing folders")]
    assert listing[-1] == f"listing folders: {listed} ({files} files)", drawn
    # Every phase shows, in order; the line is cleared before the summary.
    phases = [line.split(":")[0].rstrip("…") for line in drawn if line]
    order = ["listing folders", "planning links", "creating links", "recording links"]
    assert [p for p in dict.fromkeys(phases) if p in order] == order, phases
    assert out.index("\r\x1b[K" + f"{created} created") > out.rindex("recording links")


def test_quiet_on_a_terminal_draws_nothing(lib: Library) -> None:
    big_library(lib, shows=5)
    out = on_a_terminal(lib, "-q")
    assert "\r" not in out.replace("\r\n", "\n") and "progress" not in out, out


def test_off_a_terminal_info_lines_tell_listing_and_creating_with_the_summary_figures(lib: Library) -> None:
    """Before: a first run off a terminal (journal, docker logs) printed nothing until its summary."""
    big_library(lib)
    run = lib.run("reconcile", env={"GRAYLINK_PROGRESS_EVERY": "0.01"})
    assert run.returncode == 0, run.stderr
    created, listed, files = summary_of(run.stdout)
    listing = LOGGED_LISTING.findall(run.stderr)
    creating = LOGGED_CREATING.findall(run.stderr)
    assert listing and creating, run.stderr
    assert listing[-1] == (str(listed), str(files)), run.stderr
    assert creating[-1] == (str(created), str(VIDEOS)) and created == VIDEOS, run.stderr
    assert len(creating) >= 2, run.stderr  # told during the phase, and once more at its end


def test_a_full_verification_counts_of_the_folders_the_index_held(lib: Library) -> None:
    big_library(lib, shows=10)
    first = lib.run("reconcile", env={"GRAYLINK_PROGRESS_EVERY": "60"})
    assert first.returncode == 0, first.stderr
    _, listed, files = summary_of(first.stdout)
    full = lib.run("reconcile", "--full", env={"GRAYLINK_PROGRESS_EVERY": "0.01"})
    assert full.returncode == 0, full.stderr
    again = summary_of(full.stdout)
    assert again == (0, listed, files), full.stdout
    lines = re.findall(r"INFO progress: listing folders: (.*)", full.stderr)
    assert lines and lines[-1] == f"{listed} of ~{listed} ({files} files)", full.stderr
    assert "creating links" not in full.stderr  # nothing to create: no such phase


def test_each_library_of_a_run_says_its_name(lib: Library) -> None:
    big_library(lib, shows=2)
    other = lib.root / "other"
    for episode in range(50):
        (other / "Film" / f"Part {episode}.mkv").parent.mkdir(parents=True, exist_ok=True)
        (other / "Film" / f"Part {episode}.mkv").write_bytes(b"")
    paths = {"source": str(other), "target": str(lib.root / "other-links"), "database": str(lib.root / "other.db")}
    lib.write_ini(**{"library films": paths})
    run = lib.run("reconcile", env={"GRAYLINK_PROGRESS_EVERY": "0"})
    assert run.returncode == 0, run.stderr
    names = re.findall(r"^\[(\w+)\] (\d+) created", run.stdout, re.M)
    assert len(names) == 2 and ("films", "50") in names, run.stdout
    for name, created in names:
        told = re.findall(rf"INFO progress: \[{name}\] creating links: (\d+) of (\d+)", run.stderr)
        assert told and told[-1] == (created, created), run.stderr


def test_a_short_run_or_quiet_run_logs_no_progress(lib: Library) -> None:
    big_library(lib)
    run = lib.run("reconcile", env={"GRAYLINK_PROGRESS_EVERY": "60"})  # a run shorter than the interval
    assert run.returncode == 0, run.stderr
    assert "progress" not in run.stderr, run.stderr
    (lib.source / "Show 00" / "Season 1" / "new.mkv").write_bytes(b"")
    quiet = lib.run("-q", "reconcile", "--full", env={"GRAYLINK_PROGRESS_EVERY": "0"})
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_a_bad_interval_is_one_line(lib: Library) -> None:
    run = lib.run("reconcile", env={"GRAYLINK_PROGRESS_EVERY": "soon"})
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "GRAYLINK_PROGRESS_EVERY" in run.stderr, run.stderr
    assert not lib.target.exists() and not lib.database.exists()


def test_the_service_logs_progress_of_a_long_cycle_only(lib: Library, loop_of, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The loop logs through the same logger: its first cycle's figures are its summary's."""
    big_library(lib, shows=10)
    monkeypatch.setenv("GRAYLINK_PROGRESS_EVERY", "0.01")
    loop: Loop = loop_of()
    loop.wait_log("reconcile (walk): ")
    assert loop.stop() == 0
    text = loop.text()
    creating = LOGGED_CREATING.findall(text)
    videos = VIDEOS // 3
    assert creating and creating[-1] == (str(videos), str(videos)), text
    assert f"reconcile (walk): {videos} created" in text, text


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_meter_paces_its_lines(caplog) -> None:  # type: ignore[no-untyped-def]
    """At most one INFO line per interval, none in the first; the live line at most ten times a second."""
    clock = Clock()
    terminal = io.StringIO()
    logged = Meter(every=10.0, clock=clock)
    live = Meter(live=terminal, clock=clock)
    with caplog.at_level("INFO", logger="graylink.progress"):
        for meter in (logged, live):
            meter.begin("creating links", 1000)
        for done in range(1, 1001):
            clock.now += 0.02  # 20 s in all
            for meter in (logged, live):
                meter.count(done)
        for meter in (logged, live):
            meter.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and re.fullmatch(r"progress: creating links: 50\d of 1000", lines[0]), lines
    assert lines[1] == "progress: creating links: 1000 of 1000"  # the final figure, at the end
    draws = DRAWN.findall(terminal.getvalue())
    assert draws[-1] == "" and draws[-2] == "creating links: 1000 of 1000"
    assert len(draws) <= 20 / DRAW_EVERY + 4, len(draws)


def test_a_short_phase_logs_nothing(caplog, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    meter = Meter(every=10.0, clock=clock)
    with caplog.at_level("INFO", logger="graylink.progress"):
        meter.begin("listing folders")
        for done in range(100):
            clock.now += 0.05
            meter.count(done, done * 10)
        meter.begin("planning links", counted=False)
        meter.close()
    assert caplog.records == []
