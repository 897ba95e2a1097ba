"""The database lost under a running loop, and a database on a read-only filesystem."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from emby_server import FakeMediaServer
from service_support import Loop, linked, wait_for

from conftest import Library, expected_links, links_in


def count(db: Path, table: str) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.Error:
        return -1
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.Error:
        return -1
    finally:
        conn.close()


def remove(lib: Library, what: str) -> None:
    db = str(lib.database)
    if what == "state folder":
        shutil.rmtree(lib.database.parent)  # the lock file goes too
        return
    for suffix in ("", "-wal", "-shm") if what == "database, -wal and -shm" else ("",):
        os.unlink(db + suffix)


@pytest.mark.parametrize("what", ["database", "database, -wal and -shm", "state folder"])
def test_database_deleted_under_the_loop_is_recreated_and_no_queued_update_is_lost(
    lib: Library, loop_of: Callable[[], Loop], what: str
) -> None:
    with FakeMediaServer("emby") as server:
        for i in range(30):
            lib.add(f"Movies/M{i:02d} (2001)/M{i:02d}.mkv")
        settings = {"scan": {"interval": "1s", "workers": "2"}, "mount": {"check_interval": "1s"}}
        # A wrong key: the server refuses, so every update stays queued.
        lib.write_ini(emby={"url": server.url, "api_key": "wrong-key", "server": "emby"}, **settings)
        loop = loop_of()
        wait_for(
            "30 links recorded and their updates queued",
            lambda: count(lib.database, "link") == 30 and count(lib.database, "emby_queue") == 30,
            loop.proc,
        )
        assert len(links_in(lib.target)) == 30

        remove(lib, what)
        loop.wait_log("opened again")
        text = loop.text()
        error = next(line for line in text.splitlines() if "under the loop: graylink stops writing" in line)
        assert " ERROR " in error and f"database {lib.database} was deleted under the loop" in error
        assert "30 links graylink made and 30 queued media-server updates carried over" in text
        # (Not the inode: ext4 hands the freed inode number to the new file at once.)
        wait_for("the new index", lambda: count(lib.database, "file") == 30, loop.proc)
        assert count(lib.database, "emby_queue") == 30
        if what == "state folder":
            assert "the lock file" in text and "it is locked again" in text
            second = lib.run("reconcile")
            assert second.returncode == 2 and "another graylink" in second.stderr

        status = lib.run("status", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["index"]["files"] == 30

        # The key fixed: the carried-over updates reach the server, once.
        lib.write_ini(emby={"url": server.url, "api_key": server.api_key, "server": "emby"}, **settings)
        loop.proc.send_signal(signal.SIGHUP)
        wait_for("the queue delivered", lambda: count(lib.database, "emby_queue") == 0, loop.proc)
        lib.add("Movies/Later/Later.mkv")
        wait_for("a link made after the loss", linked(lib, "Movies/Later/Later.mkv"), loop.proc)
        assert loop.stop() == 0
        text = loop.text()
        assert "delivered 30 queued changes" in text
        # The links on disk were adopted by the full verification, not made again.
        after_loss = text[text.index("opened again") :]
        assert all(
            " 0 created" in line or "1 created" in line
            for line in after_loss.splitlines()
            if "reconcile (" in line and "created" in line
        ), after_loss
        assert links_in(lib.target) == expected_links(lib.source)
        conn = sqlite3.connect(lib.database)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM link").fetchone()[0] == 31
        conn.close()
        assert "Traceback" not in text


# ----------------------------------------------------------- read-only filesystem


@pytest.fixture
def read_only_state(lib: Library) -> Iterator[Callable[[], None]]:
    """The database's folder on a tmpfs mounted for the test; the callable remounts it read-only."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("SKIPPED LOUDLY: mounting a tmpfs needs root; EROFS is not tested here")
    state = lib.database.parent
    state.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(state)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"SKIPPED LOUDLY: cannot mount a tmpfs here ({mounted.stderr!r}); EROFS is not tested")

    mounts = 1

    def read_only() -> None:
        nonlocal mounts
        remounted = subprocess.run(["mount", "-o", "remount,ro", str(state)], capture_output=True)
        if remounted.returncode != 0:
            # Busy (a writer has files open): a read-only bind mount over the same folder.
            subprocess.run(["mount", "--bind", str(state), str(state)], check=True)
            mounts += 1
            subprocess.run(["mount", "-o", "remount,bind,ro", str(state)], check=True)

    try:
        yield read_only
    finally:
        for _ in range(mounts):
            subprocess.run(["umount", "-l", str(state)], check=False)


def test_database_on_a_read_only_filesystem(lib: Library, read_only_state: Callable[[], None]) -> None:
    lib.add("Movies/A (2001)/A.mkv")
    lib.add("TV/Show/E01.mkv")
    assert lib.run("reconcile").returncode == 0
    read_only_state()
    assert not os.path.exists(f"{lib.database}-shm"), "a clean close leaves no shared-memory file"

    status = lib.run("status", "--json")
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    assert doc["index"]["files"] == 2
    snapshot = lib.run("snapshot", "-o", str(lib.root / "page.html"))
    assert snapshot.returncode == 0, snapshot.stderr
    dry = lib.run("reconcile", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    backup = lib.run("db", "backup", str(lib.root / "copy.db"))
    assert backup.returncode == 0, backup.stderr
    assert "2 files" in backup.stdout
    doctor = lib.run("doctor")
    assert f"✘ database: {lib.database} is on a read-only filesystem" in doctor.stdout
    assert "✔ library: the database belongs to this config's" in doctor.stdout

    lib.add("Movies/B.mkv")
    for args in (("reconcile",), ("reconcile", "--loop")):
        refused = lib.run(*args)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.strip().splitlines() == [
            f"graylink: database {lib.database} is on a read-only filesystem: reconcile needs to write it "
            "('graylink status' and 'graylink snapshot' can still read it)"
        ]
    assert b"Movies/B.mkv" not in links_in(lib.target)


def test_database_filesystem_turning_read_only_under_the_loop_stops_it(
    lib: Library, read_only_state: Callable[[], None], loop_of: Callable[[], Loop]
) -> None:
    lib.add("Movies/A.mkv")
    lib.write_ini(scan={"interval": "1s", "workers": "2"}, mount={"check_interval": "1s"})
    loop = loop_of()
    wait_for("the link", linked(lib, "Movies/A.mkv"), loop.proc)
    read_only_state()  # what the kernel does to a disk after I/O errors (errors=remount-ro)
    assert loop.proc.wait(timeout=60) == 1
    lines = [line for line in loop.text().splitlines() if "read-only filesystem" in line]
    assert len(lines) == 1 and " ERROR " in lines[0], loop.text()
    assert lines[0].endswith("can still read it); stopping")
    assert "Traceback" not in loop.text()
    status = lib.run("status")
    assert status.returncode == 0, status.stderr


def _log_grew(lib: Library) -> bool:
    return os.path.getsize(f"{lib.database}-wal") > 0


def test_database_replaced_under_the_loop_takes_the_new_file_without_the_old_log(
    lib: Library, loop_of: Callable[[], Loop]
) -> None:
    """``mv backup.db graylink.db`` while the loop runs, with a reader holding the old
    file open: its ``-wal`` / ``-shm`` stay at the path and must not be replayed into
    (or shared with) the replacement."""
    lib.add("Movies/A/A.mkv")
    lib.write_ini(scan={"interval": "1s", "workers": "2"}, mount={"check_interval": "1s"})
    loop = loop_of()
    wait_for("the first link", lambda: count(lib.database, "link") == 1, loop.proc)
    copy = lib.root / "copy.db"
    assert lib.run("db", "backup", str(copy)).returncode == 0
    backup = lib.root / "backup.db"
    with sqlite3.connect(copy) as conn:  # the same content, pages laid out anew, and one mark of its own
        conn.execute("INSERT INTO meta_value (key, value) VALUES ('test_replacement', 'yes')")
        conn.commit()
        conn.execute("VACUUM INTO ?", (str(backup),))
    for i in range(20):
        lib.add(f"Movies/B{i}/B{i}.mkv")
    wait_for("the later links", lambda: count(lib.database, "link") == 21, loop.proc)

    reader = sqlite3.connect(lib.database, isolation_level=None)  # like a `status` caught at that moment
    try:
        reader.execute("BEGIN")  # a read snapshot: the log cannot be reset under it
        assert reader.execute("SELECT count(*) FROM link").fetchone()[0] == 21
        wait_for("more writes into the log", lambda: count(lib.database, "job_run") >= 0 and _log_grew(lib), loop.proc)
        os.replace(backup, lib.database)
        loop.wait_log("opened again")
        assert f"database {lib.database} was replaced by another file under the loop" in loop.text()
        assert "21 links graylink made" in loop.text()
    finally:
        reader.close()
    lib.add("Movies/C/C.mkv")
    wait_for("a link after the swap", linked(lib, "Movies/C/C.mkv"), loop.proc)
    wait_for("everything recorded", lambda: count(lib.database, "link") == 22, loop.proc)
    assert loop.stop() == 0
    assert links_in(lib.target) == expected_links(lib.source)
    conn = sqlite3.connect(lib.database)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # The replacement itself, not the old file's log laid over it.
    assert conn.execute("SELECT value FROM meta_value WHERE key = 'test_replacement'").fetchone() == ("yes",)
    conn.close()
    assert "Traceback" not in loop.text()


def test_recreate_carries_queue_and_links_into_a_replacement_without_clobbering_its_rows(tmp_path: Path) -> None:
    from graylink.service.dbwatch import journal_ids, recreate
    from graylink.store.db import Store

    path = str(tmp_path / "graylink.db")
    old = Store(path)
    with old.atomic():
        old.executemany(
            "INSERT INTO emby_queue (path, op, queued_at) VALUES (?, 'create', 1.0)",
            [(f"/links/old{i}.mkv".encode(),) for i in range(3)],
        )
        old.executemany(
            "INSERT INTO link (dir, name, target) VALUES (?, ?, ?)",
            [(b"M", f"old{i}.mkv".encode(), b"/src/M/x") for i in range(3)],
        )
    journals = journal_ids(path)
    replacement = str(tmp_path / "other.db")
    with Store(replacement) as other, other.atomic():
        other.executemany(
            "INSERT INTO emby_queue (path, op, queued_at) VALUES (?, 'prune', 2.0)",
            [(f"/links/new{i}.mkv".encode(),) for i in range(2)],
        )
        other.execute(
            "INSERT INTO link (dir, name, target) VALUES (?, ?, ?)", (b"M", b"new.mkv", b"t")
        )
    os.replace(replacement, path)

    new, carried = recreate(old, journals)
    try:
        assert carried.queued == 3 and not carried.lost
        queued = sorted(bytes(r[0]) for r in new.execute("SELECT path FROM emby_queue"))
        assert queued == sorted(
            [f"/links/old{i}.mkv".encode() for i in range(3)] + [b"/links/new0.mkv", b"/links/new1.mkv"]
        )
        assert new.count("link") == 4
        assert new.execute("SELECT count(*) FROM dirty WHERE reason = 'database-lost'").fetchone()[0] == 1
        assert new.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        new.close()
    assert sorted(p.name for p in tmp_path.iterdir() if "carry" in p.name) == [], "the carry file is removed"
