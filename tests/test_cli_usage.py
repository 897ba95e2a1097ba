"""Usage errors: ``reconcile --loop`` refusals, ``--path`` meaning what was typed,
and every exit 2 leaving nothing behind (no database, no lock file, no link tree)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from service_support import WAIT_S, wait_for

from conftest import REPO, Library, links_in


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("graylink: "), proc.stderr
    return lines[0]


def leftovers(*roots: Path) -> list[str]:
    """Database and lock files anywhere under (or beside) the given folders."""
    found: list[str] = []
    for root in roots:
        for sibling in root.parent.glob(root.name + "*.lock"):
            found.append(str(sibling))
        for path in root.rglob("*"):
            if path.name.endswith((".db", ".lock", ".db-wal", ".db-shm")):
                found.append(str(path))
    return sorted(found)


# ------------------------------------------------------------------ --loop


@pytest.mark.parametrize(
    ("option", "needle"),
    [
        (["--dry-run"], "--dry-run"),
        (["--path", "Movies"], "--path"),
        (["--json"], "--json"),
        (["--force"], "--force"),
    ],
)
def test_loop_refuses_what_it_cannot_honour(lib: Library, option: list[str], needle: str) -> None:
    lib.add("Movies/A/A.mkv")
    proc = lib.run("reconcile", "--loop", *option)
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert f"--loop cannot be combined with {needle}" in line
    # Refused before anything ran: no link, no database, no lock.
    assert not lib.target.exists()
    assert leftovers(lib.root) == []


def test_loop_full_verifies_everything_in_its_first_cycle(lib: Library) -> None:
    lib.write_ini(scan={"trust_dir_mtime": "yes", "interval": "1h"}, mount={"check_interval": "1h"})
    lib.add("Movies/A/A.mkv")
    assert lib.run("reconcile").returncode == 0
    before = json.loads(lib.run("status", "--json").stdout)["last_reconcile"]["at"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "graylink", "-c", str(lib.ini), "reconcile", "--loop", "--full"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:

        def walked() -> bool:
            last = json.loads(lib.run("status", "--json").stdout).get("last_reconcile") or {}
            return bool(last.get("at", 0) > before and last.get("trigger") == "walk")

        wait_for("the loop's first walk", walked, proc)
        last = json.loads(lib.run("status", "--json").stdout)["last_reconcile"]
        assert last["full"] is True
        assert last["dirs_listed"] >= 3  # every folder listed again, not just stat'ed
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=WAIT_S)
        assert proc.stderr is not None
        proc.stderr.close()


# ------------------------------------------------------------------ --path


def test_path_naming_a_file_reconciles_its_folder(lib: Library) -> None:
    lib.write_ini(scan={"trust_dir_mtime": "yes"})
    lib.add("TV/S/E1.mkv")
    lib.add("Movies/A/A.mkv")
    assert lib.run("reconcile").returncode == 0
    lib.add("TV/S/E2.mkv")
    lib.add("Movies/A/A2.mkv")
    for given in ("TV/S/E2.mkv", str(lib.source / "TV/S/E2.mkv")):
        (lib.target / "TV/S/E2.mkv").unlink(missing_ok=True)
        proc = lib.run("reconcile", "--json", "--path", given)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert [a["link"] for a in doc["actions"]] == [f"{lib.target}/TV/S/E2.mkv"], given
    # Only that folder: the other new video waits for its own run.
    assert b"Movies/A/A2.mkv" not in links_in(lib.target)


def test_path_gone_from_the_source_but_in_the_index_prunes_its_links(lib: Library) -> None:
    lib.add("TV/S1/E1.mkv")
    lib.add("TV/S1/E2.mkv")
    lib.add("TV/S2/E1.mkv")
    lib.add("Movies/A/A.mkv")
    assert lib.run("reconcile").returncode == 0
    # A file deleted since the last run, named by its path in the source.
    (lib.source / "TV/S1/E1.mkv").unlink()
    proc = lib.run("reconcile", "--json", "--path", "TV/S1/E1.mkv")
    assert proc.returncode == 0, proc.stderr
    assert [(a["op"], a["link"]) for a in json.loads(proc.stdout)["actions"]] == [
        ("prune", f"{lib.target}/TV/S1/E1.mkv")
    ]
    # A folder deleted since, named by its place in the link tree.
    (lib.source / "TV/S2/E1.mkv").unlink()
    (lib.source / "TV/S2").rmdir()
    proc = lib.run("reconcile", "--json", "--path", str(lib.target / "TV/S2"))
    assert proc.returncode == 0, proc.stderr
    assert [(a["op"], a["link"]) for a in json.loads(proc.stdout)["actions"]] == [
        ("prune", f"{lib.target}/TV/S2/E1.mkv")
    ]
    assert not (lib.target / "TV/S2").exists()
    # A file whose whole folder went.
    (lib.source / "TV/S1/E2.mkv").unlink()
    (lib.source / "TV/S1").rmdir()
    proc = lib.run("reconcile", "--json", "--path", "TV/S1/E2.mkv")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["counts"]["prune"] == 1
    assert set(links_in(lib.target)) == {b"Movies/A/A.mkv"}


def test_a_subfolder_gone_under_a_folder_listed_alone_loses_its_links_in_that_run(lib: Library, tmp_path: Path) -> None:
    """A folder reconciled on its own (--path naming a file, a Drive feed's
    folder mark) whose listing shows a subfolder gone: that whole subtree's
    links go in the same run, not at the next full verification."""
    lib.write_ini(scan={"trust_dir_mtime": "yes"})
    lib.add("TV/Show/tvshow.nfo")
    lib.add("TV/Show/Season 1/E1.mkv")
    lib.add("TV/Show/Season 1/Extras/Making of.mkv")
    lib.add("Movies/A/A.mkv")
    assert lib.run("reconcile").returncode == 0
    shutil.rmtree(lib.source / "TV/Show/Season 1")
    proc = lib.run("reconcile", "--json", "--path", "TV/Show/tvshow.nfo")
    assert proc.returncode == 0, proc.stderr
    assert sorted((a["op"], a["link"]) for a in json.loads(proc.stdout)["actions"]) == [
        ("prune", f"{lib.target}/TV/Show/Season 1/E1.mkv"),
        ("prune", f"{lib.target}/TV/Show/Season 1/Extras/Making of.mkv"),
    ]
    assert set(links_in(lib.target)) == {b"Movies/A/A.mkv"}
    assert not (lib.target / "TV/Show/Season 1").exists()
    # A folder swapped for a symlink to a folder outside the source is gone as
    # a folder: its links go, and nothing is linked through the symlink.
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "elsewhere.mkv").write_bytes(b"x")
    shutil.rmtree(lib.source / "Movies/A")
    os.symlink(outside, lib.source / "Movies/A")
    proc = lib.run("reconcile", "--json", "--path", "Movies/A")
    assert proc.returncode == 0, proc.stderr
    assert [(a["op"], a["link"]) for a in json.loads(proc.stdout)["actions"]] == [
        ("prune", f"{lib.target}/Movies/A/A.mkv")
    ]
    assert links_in(lib.target) == {}
    assert lib.run("reconcile", "--full").returncode == 0
    assert links_in(lib.target) == {}


def test_path_in_neither_the_source_nor_the_index_is_a_usage_error(lib: Library) -> None:
    lib.add("Movies/A/A.mkv")
    # No database yet: only the source can say.
    proc = lib.run("reconcile", "--path", "Movies/B")
    assert proc.returncode == 2
    assert "--path Movies/B: not in the source, and not in the index either" in one_line_error(proc)
    assert leftovers(lib.root) == [] and not lib.target.exists()
    assert lib.run("reconcile").returncode == 0
    links = links_in(lib.target)
    for given in ("Movies/B", "Movies/A/B.mkv", str(lib.target / "TV"), str(lib.source / "TV/S1/E1.mkv")):
        proc = lib.run("reconcile", "--path", given)
        assert proc.returncode == 2, given
        one_line_error(proc)
        dry = lib.run("reconcile", "--dry-run", "--path", given)
        assert dry.returncode == 2, given
    assert links_in(lib.target) == links


# ------------------------------------------------------- exit 2 leaves nothing


def _bad(lib: Library, tmp_path: Path, case: str) -> list[str]:
    """Set up one bad run; returns its arguments."""
    source, target, database = str(lib.source), str(lib.target), str(lib.database)
    args = ["reconcile"]
    if case == "source missing":
        source = str(tmp_path / "nowhere")
    elif case == "source is a file":
        (tmp_path / "file").write_text("x")
        source = str(tmp_path / "file")
    elif case == "target is a file":
        (tmp_path / "file").write_text("x")
        target = str(tmp_path / "file")
    elif case == "target under a file":
        (tmp_path / "file").write_text("x")
        target = str(tmp_path / "file" / "links")
    elif case == "target under /proc":
        target = "/proc/graylink-links"  # writable to root by access(), yet no folder can be made there
    elif case == "loop with a target under /proc":
        target = "/proc/graylink-links"
        args += ["--loop"]
    elif case == "database under a file":
        (tmp_path / "file").write_text("x")
        database = str(tmp_path / "file" / "state" / "graylink.db")
    elif case == "database is a folder":
        (tmp_path / "dbdir").mkdir()
        database = str(tmp_path / "dbdir")
    elif case == "unknown key":
        lib.ini.write_text(f"[paths]\nsource = {source}\ntarget = {target}\ndatabase = {database}\nsorce = x\n")
        return args
    elif case == "path outside":
        args += ["--path", "/etc"]
    elif case == "path empty":
        args += ["--path", ""]
    elif case == "path nowhere":
        args += ["--path", "Nothing/Here"]
    elif case == "loop dry run":
        args += ["--loop", "--dry-run"]
    elif case == "loop with a bad source":
        source = str(tmp_path / "nowhere")
        args += ["--loop"]
    elif case == "restore a missing file":
        args = ["db", "restore", str(tmp_path / "missing.db")]
    elif case == "restore into a folder under a file":
        (tmp_path / "file").write_text("x")
        database = str(tmp_path / "file" / "graylink.db")
        lib.ini.write_text(f"[paths]\nsource = {source}\ntarget = {target}\ndatabase = {database}\n")
        return ["db", "restore", str(lib.ini)]  # any existing file: refused before it is read
    elif case == "backup without a database":
        args = ["db", "backup", str(tmp_path / "backup.db")]
    elif case == "snapshot without a database":
        args = ["snapshot", "-o", str(tmp_path / "page.html")]
    lib.ini.write_text(f"[paths]\nsource = {source}\ntarget = {target}\ndatabase = {database}\n")
    return args


EXIT_2_CASES = [
    "source missing",
    "source is a file",
    "target is a file",
    "target under a file",
    "target under /proc",
    "loop with a target under /proc",
    "database under a file",
    "database is a folder",
    "unknown key",
    "path outside",
    "path nowhere",
    "path empty",
    "loop dry run",
    "loop with a bad source",
    "restore a missing file",
    "restore into a folder under a file",
    "backup without a database",
    "snapshot without a database",
]


@pytest.mark.parametrize("case", EXIT_2_CASES)
def test_exit_2_leaves_nothing_behind(lib: Library, tmp_path: Path, case: str) -> None:
    lib.add("Movies/A/A.mkv")
    args = _bad(lib, tmp_path, case)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    proc = lib.run(*args)
    assert proc.returncode == 2, (case, proc.returncode, proc.stderr)
    one_line_error(proc)
    assert leftovers(tmp_path) == [], case
    after = sorted(str(p) for p in tmp_path.rglob("*"))
    assert after == before, case


def test_a_dry_run_refused_for_its_target_leaves_nothing_either(lib: Library, tmp_path: Path) -> None:
    lib.add("Movies/A/A.mkv")
    (tmp_path / "file").write_text("x")
    lib.ini.write_text(
        f"[paths]\nsource = {lib.source}\ntarget = {tmp_path / 'file' / 'links'}\ndatabase = {lib.database}\n"
    )
    proc = lib.run("reconcile", "--dry-run")
    assert proc.returncode == 2
    assert "cannot be created" in one_line_error(proc)
    assert leftovers(tmp_path) == []


def test_a_folder_swapped_for_a_symlink_is_not_followed_by_an_untrusted_walk(lib: Library, tmp_path: Path) -> None:
    """The untrusted walk lists every known folder by its path: one that became
    a symlink to a folder outside the source is gone, not listed through it."""
    lib.write_ini(scan={"trust_dir_mtime": "no"})
    lib.add("Movies/A/A.mkv")
    lib.add("Movies/B/B.mkv")
    assert lib.run("reconcile").returncode == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "elsewhere.mkv").write_bytes(b"x")
    shutil.rmtree(lib.source / "Movies/A")
    os.symlink(outside, lib.source / "Movies/A")
    proc = lib.run("reconcile", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [(a["op"], a["link"]) for a in json.loads(proc.stdout)["actions"]] == [
        ("prune", f"{lib.target}/Movies/A/A.mkv")
    ]
    assert set(links_in(lib.target)) == {b"Movies/B/B.mkv"}


# ------------------------------------------------------------------ Ctrl-C

# A child that runs the ``graylink`` command exactly as ``[project.scripts]`` names it,
# and sends itself SIGINT (a real Ctrl-C: Python's own handler turns it into
# KeyboardInterrupt) when the module named on its command line is first imported.
_CTRL_C_AT_IMPORT = """
import importlib, os, signal, sys, tomllib
module, *args = sys.argv[1:]
class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == module:
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, CtrlC())
with open("pyproject.toml", "rb") as handle:  # the child runs in the repository
    entry = tomllib.load(handle)["project"]["scripts"]["graylink"]
where, _, name = entry.partition(":")
sys.argv = ["graylink", *args]
getattr(importlib.import_module(where), name)()
"""


@pytest.mark.parametrize(
    "module",
    [
        "graylink.cli.init",  # while the command line itself is imported (a second or more on a busy machine)
        "graylink.report.status",  # inside the command
    ],
)
def test_ctrl_c_is_exit_130_with_one_line(lib: Library, module: str) -> None:
    lib.add("Movies/A/A.mkv")
    proc = subprocess.run(
        [sys.executable, "-c", _CTRL_C_AT_IMPORT, module, "-c", str(lib.ini), "status"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 130, proc.stderr
    assert one_line_error(proc) == "graylink: interrupted"


def test_ctrl_c_while_click_reads_the_command_is_exit_130(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside every command's own handler (the group's setup): click would say "Aborted!" and exit 1."""
    from click.testing import CliRunner

    import graylink.cli

    def interrupted(verbosity: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(graylink.cli, "setup_logging", interrupted)
    result = CliRunner().invoke(graylink.cli.cli, ["status"])
    assert result.exit_code == 130 and "graylink: interrupted" in result.output, result.output
