"""Conflicts and failed actions stay on the books until resolved; counts say what was done."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from graylink.cli import cli

from conftest import Library

NOBODY = 65534


def reconcile(lib: Library, *args: str, code: int = 0) -> dict[str, Any]:
    result = lib.cli("reconcile", "--json", *args)
    assert result.exit_code == code, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def status(lib: Library) -> dict[str, Any]:
    result = lib.cli("status", "--json")
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_a_conflict_is_reported_by_every_run_until_the_blocker_goes(lib: Library) -> None:
    lib.add("Movies/A/A.mkv")
    lib.add("Movies/B/B.mkv")
    (lib.target / "Movies/A").mkdir(parents=True)
    (lib.target / "Movies/A/A.mkv").write_bytes(b"my own file")
    first = reconcile(lib, code=1)
    assert first["counts"]["conflict"] == 1 and first["counts"]["create"] == 1
    for _ in range(2):  # ordinary runs, nothing changed in the source
        again = reconcile(lib, code=1)
        assert again["counts"]["conflict"] == 1, "a conflict must not be forgotten by the next run"
        assert [a["link"] for a in again["actions"] if a["op"] == "conflict"] == [str(lib.target / "Movies/A/A.mkv")]
    text = lib.cli("reconcile")
    assert (
        text.exit_code == 1 and "0 created, 0 repaired, 0 pruned, 1 conflict in" in text.output
    )  # issue 27 item 7: not "1 conflicts"
    problems = status(lib)["problems"]
    assert problems["conflict"] == 1 and problems["failed"] == 0
    assert problems["open"][0]["link"] == str(lib.target / "Movies/A/A.mkv")
    assert problems["open"][0]["detail"] == "a regular file"
    shown = lib.cli("status").output
    assert f"conflict: {lib.target / 'Movies/A/A.mkv'}: a regular file" in shown

    (lib.target / "Movies/A/A.mkv").unlink()
    fixed = reconcile(lib)  # no --full: the open problem's folder is planned again
    assert fixed["counts"]["create"] == 1 and fixed["counts"]["conflict"] == 0
    assert os.readlink(lib.target / "Movies/A/A.mkv") == str(lib.source / "Movies/A/A.mkv")
    assert status(lib)["problems"] == {"conflict": 0, "failed": 0, "unlistable": 0, "open": []}
    assert "problems: none open" in lib.cli("status").output
    assert reconcile(lib)["counts"] == {
        "create": 0, "repair": 0, "prune": 0, "conflict": 0, "braked": 0, "failed": 0, "not_tried": 0
    }  # fmt: skip


def test_an_open_conflict_keeps_the_time_it_was_first_seen(lib: Library) -> None:
    """status and the page say "since …": the first run that found it, not the latest."""
    lib.add("Movies/A/A.mkv")
    (lib.target / "Movies/A").mkdir(parents=True)
    (lib.target / "Movies/A/A.mkv").write_bytes(b"my own file")
    reconcile(lib, code=1)
    first = status(lib)["problems"]["open"][0]
    lib.add("Movies/B/B.mkv")  # a later run that plans the same folder again
    reconcile(lib, code=1)
    reconcile(lib, "--full", code=1)
    later = status(lib)["problems"]["open"][0]
    assert later["link"] == first["link"]
    assert later["since"] == first["since"], "the first time it was seen"
    assert later["last_seen"] > first["last_seen"]


def test_a_conflict_whose_source_is_deleted_leaves_the_book(lib: Library) -> None:
    lib.add("Movies/A/A.mkv")
    (lib.target / "Movies/A").mkdir(parents=True)
    (lib.target / "Movies/A/A.mkv").write_bytes(b"mine")
    reconcile(lib, code=1)
    (lib.source / "Movies/A/A.mkv").unlink()
    reconcile(lib)
    assert status(lib)["problems"]["conflict"] == 0
    assert (lib.target / "Movies/A/A.mkv").read_bytes() == b"mine"


def test_path_runs_report_the_open_conflicts_inside_the_path_only(lib: Library) -> None:
    lib.add("Movies/A/A.mkv")
    lib.add("TV/S/e1.mkv")
    (lib.target / "Movies/A").mkdir(parents=True)
    (lib.target / "Movies/A/A.mkv").write_bytes(b"mine")
    reconcile(lib, code=1)
    assert reconcile(lib, "--path", "TV")["counts"]["conflict"] == 0
    assert reconcile(lib, "--path", "Movies", code=1)["counts"]["conflict"] == 1
    assert status(lib)["problems"]["conflict"] == 1, "a --path run elsewhere does not resolve it"


def test_a_folder_in_the_way_is_a_failed_action_retried_each_run(lib: Library) -> None:
    lib.add("Movies/A/A.mkv")
    lib.add("Movies/B/B.mkv")
    (lib.target / "Movies").mkdir(parents=True)
    (lib.target / "Movies/A").write_bytes(b"a file where a folder belongs")
    for _ in range(2):
        doc = reconcile(lib, code=1)
        assert doc["counts"]["failed"] == 1
        assert [f["link"] for f in doc["failed"]] == [str(lib.target / "Movies/A/A.mkv")]
        assert "not a directory" in doc["failed"][0]["reason"]
    assert doc["counts"]["create"] == 0, "B was created by the first run; the second creates nothing"
    assert status(lib)["problems"]["failed"] == 1
    (lib.target / "Movies/A").unlink()
    doc = reconcile(lib)
    assert doc["counts"]["create"] == 1 and doc["counts"]["failed"] == 0
    assert status(lib)["problems"]["failed"] == 0


@pytest.fixture
def open_lib() -> Iterator[Library]:
    """A library outside pytest's private (0700) temporary folder, so that nobody can reach it."""
    base = Path(tempfile.mkdtemp(prefix="graylink-test-"))
    os.chmod(base, 0o755)
    source = base / "source"
    source.mkdir()
    library = Library(base, source, base / "links", base / "state" / "graylink.db", base / "graylink.ini")
    library.write_ini()
    try:
        yield library
    finally:
        shutil.rmtree(base)


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def _as_nobody(lib: Library, *args: str) -> Ran:
    """graylink's command line in a forked child that gave up root: a real EACCES."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 70
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            result = CliRunner().invoke(cli, ["-c", str(lib.ini), *args], catch_exceptions=True)
            payload = json.dumps([result.exit_code, result.stdout, result.stderr]).encode()
            with os.fdopen(write_end, "wb") as out:
                out.write(payload)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as incoming:
        payload = incoming.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child failed to run graylink"
    code, out, err = json.loads(payload)
    return Ran(code, out, err)


@pytest.mark.skipif(os.geteuid() != 0, reason="EACCES TEST SKIPPED: needs root to run graylink as nobody")
def test_a_create_refused_by_eacces_is_counted_failed_and_retried(open_lib: Library) -> None:
    """Today's defect: a create refused with EACCES was counted as created."""
    lib = open_lib
    lib.add("Movies/A/A.mkv")
    lib.add("Movies/B/B.mkv")
    (lib.target / "Movies/A").mkdir(parents=True)
    os.chmod(lib.target / "Movies/A", 0o755)  # root's folder: nobody cannot write in it
    for path in (lib.root, lib.target, lib.target / "Movies"):
        os.chmod(path, 0o777)
    lib.database.parent.mkdir()
    os.chown(lib.database.parent, NOBODY, NOBODY)
    os.chmod(lib.ini, 0o644)
    os.chmod(lib.source, 0o755)

    first = _as_nobody(lib, "reconcile")
    assert first.returncode == 1, first.stderr
    assert "1 created, 0 repaired, 0 pruned, 0 conflicts, 1 failed" in first.stdout
    assert "Permission denied" in first.stderr
    again = _as_nobody(lib, "reconcile", "--json")
    assert again.returncode == 1, again.stderr
    doc = json.loads(again.stdout)
    assert doc["counts"]["create"] == 0 and doc["counts"]["failed"] == 1
    assert doc["failed"] == [
        {
            "op": "create",
            "link": str(lib.target / "Movies/A/A.mkv"),
            "target": str(lib.source / "Movies/A/A.mkv"),
            "reason": "Permission denied",
        }
    ]
    os.chmod(lib.target / "Movies/A", 0o777)
    fixed = _as_nobody(lib, "reconcile")
    assert fixed.returncode == 0, fixed.stderr
    assert "1 created, 0 repaired, 0 pruned, 0 conflicts in" in fixed.stdout
    assert os.path.islink(lib.target / "Movies/A/A.mkv")


def test_status_lists_a_bounded_number_of_problems_and_counts_them_all(lib: Library) -> None:
    for i in range(60):
        lib.add(f"M/{i:02}.mkv")
    (lib.target / "M").mkdir(parents=True)
    for i in range(60):
        (lib.target / f"M/{i:02}.mkv").write_bytes(b"mine")
    reconcile(lib, code=1)
    problems = status(lib)["problems"]
    assert problems["conflict"] == 60 and len(problems["open"]) == 50
    assert "… and 10 more" in lib.cli("status").output


def test_the_loop_names_the_conflict_it_counts(lib: Library, loop_of: Any) -> None:
    """issue 27 item 7: the loop said '1 conflicts' every cycle, without the path."""
    from service_support import wait_for

    lib.add("Movies/A/A.mkv")
    (lib.target / "Movies/A").mkdir(parents=True)
    (lib.target / "Movies/A/A.mkv").write_bytes(b"not a link")
    lib.write_ini(scan={"interval": "1h"})
    loop = loop_of()
    wait_for("the first cycle", lambda: "reconcile (walk)" in loop.text(), loop.proc)
    assert loop.stop() == 0
    line = next(line for line in loop.text().splitlines() if "reconcile (walk)" in line)
    assert "1 conflict (conflict at Movies/A/A.mkv)" in line, line
