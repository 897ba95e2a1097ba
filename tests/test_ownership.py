"""A database belongs to one library: refused elsewhere, moved on purpose (``--rebase``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

from service_support import Loop, linked, wait_for

from tests.test_mount import Mounted, rclone_mount  # noqa: F401  (the fixture)

from conftest import Library, expected_links, links_in, tree_state


def meta(db: Path, key: str) -> str | None:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT value FROM meta_value WHERE key = ?", (key,)).fetchone()
    finally:
        conn.close()
    return None if row is None else str(row[0])


def other_source(lib: Library, name: str, files: list[str]) -> Path:
    source = lib.root / name
    for rel in files:
        path = source / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return source


def test_two_configs_sharing_a_database_the_second_is_refused_naming_both(lib: Library) -> None:
    lib.add("Movies/A (2001)/A.mkv")
    first = lib.run("reconcile")
    assert first.returncode == 0, first.stderr
    assert meta(lib.database, "library_source") == str(lib.source)
    assert meta(lib.database, "library_target") == str(lib.target)
    links = links_in(lib.target)

    tv = other_source(lib, "tv", ["Show/S01E01.mkv"])
    lib.write_ini(paths={"source": str(tv)})
    for args in (("reconcile",), ("reconcile", "--dry-run"), ("reconcile", "--loop")):
        refused = lib.run(*args)
        assert refused.returncode == 2, (args, refused.stderr)
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1, refused.stderr
        assert f"belongs to source {lib.source} and target {lib.target}" in lines[0]
        assert f"this config has source {tv} and target {lib.target}" in lines[0]
        assert "graylink reconcile --rebase" in lines[0]
    assert links_in(lib.target) == links, "a refused config changes nothing"
    assert meta(lib.database, "library_source") == str(lib.source)
    doctor = lib.run("doctor")
    assert doctor.returncode == 1
    line = next(x for x in doctor.stdout.splitlines() if "library" in x and "belongs to source" in x)
    assert f"this config has source {tv}" in line
    # status reads that database all the same, but says first whose index it shows.
    status = lib.run("status")
    head = status.stdout.splitlines()[0]
    assert head.startswith("WARNING: database ") and f"this config has source {tv}" in head, status.stdout
    assert "WARNING" in status.stderr and f"belongs to source {lib.source}" in status.stderr
    doc = json.loads(lib.run("status", "--json").stdout)
    assert f"this config has source {tv}" in doc["library_mismatch"]


def test_a_first_run_on_a_wrong_source_does_not_lock_the_database(lib: Library) -> None:
    empty = lib.root / "typo"
    empty.mkdir()
    lib.write_ini(paths={"source": str(empty)})
    assert lib.run("reconcile").returncode == 0
    lib.write_ini()
    lib.add("Movies/A.mkv")
    fixed = lib.run("reconcile")
    assert fixed.returncode == 0, fixed.stderr
    assert links_in(lib.target) == expected_links(lib.source)
    assert meta(lib.database, "library_source") == str(lib.source)


def test_rebase_moves_a_library_whose_mount_point_moved(lib: Library) -> None:
    for i in range(30):
        lib.add(f"Movies/M{i:02d}/M{i:02d}.mkv")
    assert lib.run("reconcile").returncode == 0
    moved = lib.root / "mnt-new"
    shutil.move(str(lib.source), str(moved))
    lib.write_ini(paths={"source": str(moved)})
    assert lib.run("reconcile").returncode == 2

    rebased = lib.run("reconcile", "--rebase")
    assert rebased.returncode == 0, rebased.stderr
    assert "rebase: the database moves from" in rebased.stderr
    assert "30 repaired, 0 pruned" in rebased.stdout
    assert links_in(lib.target) == expected_links(moved)
    assert meta(lib.database, "library_source") == str(moved)
    again = lib.run("reconcile")
    assert again.returncode == 0 and "0 created, 0 repaired, 0 pruned" in again.stdout


def test_rebase_takes_neither_loop_nor_path(lib: Library) -> None:
    for args in (("--rebase", "--loop"), ("--rebase", "--path", "Movies")):
        refused = lib.run("reconcile", *args)
        assert refused.returncode == 2
        assert refused.stderr.strip() == (
            "graylink: --rebase verifies the whole library once: it takes neither --loop nor --path"
        )
    assert not lib.database.exists()


def test_sighup_to_another_source_is_refused_and_rebase_completes_the_move(
    lib: Library, loop_of: Callable[[], Loop]
) -> None:
    old_files = [f"Old/O{i:02d}.mkv" for i in range(30)]
    for rel in old_files:
        lib.add(rel)
    lib.write_ini(scan={"interval": "1s", "workers": "2"})
    loop = loop_of()
    wait_for("the old library's links", lambda: len(links_in(lib.target)) == 30, loop.proc)

    new = other_source(lib, "new", ["New/N1.mkv", "New/N2.mkv"])
    good = lib.ini.read_text()
    lib.write_ini(paths={"source": str(new)}, scan={"interval": "1s", "workers": "2"})
    loop.proc.send_signal(signal.SIGHUP)
    loop.wait_log("SIGHUP: [paths] source changed from")
    line = next(x for x in loop.text().splitlines() if "SIGHUP: [paths] source" in x)
    assert " ERROR " in line and f"from {lib.source} to {new}" in line
    assert "stop the service, run 'graylink reconcile --rebase' once" in line
    assert line.endswith("keeping the old config")
    # The loop goes on with the old library.
    lib.add("Old/Later.mkv")
    wait_for("a link under the old config", linked(lib, "Old/Later.mkv"), loop.proc)
    assert "prunes withheld" not in loop.text()
    assert loop.stop() == 0

    # The documented move: one rebase (a different library: its prunes need --force).
    rebased = lib.run("reconcile", "--rebase")
    assert rebased.returncode == 1 and "31 prunes withheld" in rebased.stdout, rebased.stdout
    forced = lib.run("reconcile", "--force")
    assert forced.returncode == 0, forced.stderr
    assert links_in(lib.target) == expected_links(new)
    again = loop_of()
    wait_for("the service on the new library", lambda: "reconcile (walk)" in again.text(), again.proc)
    assert again.stop() == 0
    assert "ERROR" not in again.text(), again.text()
    assert links_in(lib.target) == expected_links(new)
    assert good != lib.ini.read_text()
    assert os.path.exists(lib.database)


# ------------------------------------------------------- whose links: the marker


def nested_pair(lib: Library) -> tuple[Library, Library]:
    """A over src/Movies, B over src (which holds A's source), one shared link tree, two databases."""
    src = lib.root / "src"
    a = Library(lib.root, src / "Movies", lib.target, lib.root / "a" / "a.db", lib.root / "a.ini")
    b = Library(lib.root, src, lib.target, lib.root / "b" / "b.db", lib.root / "b.ini")
    a.source.mkdir(parents=True)
    a.write_ini()
    b.write_ini()
    for rel in ("Movies/X (2001)/X.mkv", "Movies/Y (2002)/Y.mkv", "TV/Show/S01E01.mkv", "TV/Show/S01E02.mkv"):
        b.add(rel)
    return a, b


def wanted(lib: Library, prefix: str = "") -> dict[bytes, bytes]:
    return {os.fsencode(prefix) + rel: content for rel, content in expected_links(lib.source).items()}


def run_ok(lib: Library, *args: str) -> str:
    done = lib.run("reconcile", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_two_graylinks_sharing_a_target_never_prune_each_others_links(lib: Library) -> None:
    a, b = nested_pair(lib)
    run_ok(a)
    assert links_in(lib.target) == wanted(a)
    assert "0 pruned" in run_ok(b), "B must not prune A's links, which point into B's source"
    both = wanted(a) | wanted(b)
    assert links_in(lib.target) == both
    assert "0 created, 0 repaired, 0 pruned, 0 conflicts" in run_ok(a)
    assert "0 created, 0 repaired, 0 pruned, 0 conflicts" in run_ok(b)
    assert links_in(lib.target) == both

    owners = sorted(p.name for p in (lib.target / ".graylink").iterdir())
    assert len(owners) == 2 and all(name.startswith("owner-") for name in owners)
    claims = {meta(db, "database_id"): db for db in (a.database, b.database)}
    for name in owners:
        text = (lib.target / ".graylink" / name).read_text()
        db = claims[name.removeprefix("owner-")]
        assert f"database = {db}\n" in text
        assert f"source = {a.source if db == a.database else b.source}\n" in text

    # A deleted movie: each graylink prunes its own link to it, and only that.
    os.unlink(a.source / "X (2001)" / "X.mkv")
    assert "1 pruned" in run_ok(a)
    assert "1 pruned" in run_ok(b)
    assert links_in(lib.target) == wanted(a) | wanted(b)

    # The marker is no link, no conflict, no page entry, and no update for a media server.
    dry = b.run("reconcile", "--dry-run", "--json")
    assert ".graylink/" not in dry.stdout and "owner-" not in dry.stdout
    snapshot = b.run("snapshot", "-o", str(lib.root / "page.html"))
    assert snapshot.returncode == 0 and "owner-" not in (lib.root / "page.html").read_text()


def test_a_rebuilt_database_takes_its_link_tree_back(lib: Library) -> None:
    """Alone on its link tree, a database moved away and rebuilt adopts the links
    into its source and prunes the orphans (its old claim is its own: same path, same source)."""
    lib.add("Movies/A.mkv")
    lib.add("Movies/B.mkv")
    assert lib.run("reconcile").returncode == 0
    old_id = meta(lib.database, "database_id")
    os.rename(lib.database, lib.root / "away.db")
    os.unlink(lib.source / "Movies" / "B.mkv")
    rebuilt = lib.run("reconcile")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "0 created, 0 repaired, 1 pruned" in rebuilt.stdout
    assert links_in(lib.target) == expected_links(lib.source)
    new_id = meta(lib.database, "database_id")
    assert new_id != old_id
    assert [p.name for p in (lib.target / ".graylink").iterdir()] == [f"owner-{new_id}"]


def test_a_users_own_links_into_the_source_survive_the_full_verification(lib: Library) -> None:
    """graylink touches only links it recorded: a user's second name for a film, into
    the source, is left alone by every run, the daily full verification included;
    a rebuilt database's first run alone takes back unrecorded links (above)."""
    lib.add("Movies/Alien (1979)/Alien (1979).mkv")
    lib.add("Movies/Heat (1995)/Heat (1995).mkv")
    run_ok(lib)
    favourites = lib.target / "Favourites"
    favourites.mkdir()
    alien = lib.source / "Movies/Alien (1979)/Alien (1979).mkv"
    os.symlink(alien, favourites / "Alien.mkv")
    os.symlink(lib.source / "Movies/Gone.mkv", favourites / "Dangling.mkv")  # into the source, pointing nowhere
    for args in ((), ("--full",), ("--full", "--force")):
        out = run_ok(lib, *args)
        assert "0 created, 0 repaired, 0 pruned, 0 conflicts" in out, (args, out)
    assert os.readlink(favourites / "Alien.mkv") == str(alien)
    assert os.readlink(favourites / "Dangling.mkv") == str(lib.source / "Movies/Gone.mkv")
    # The film's own link still goes with its file; the user's stays theirs.
    alien.unlink()
    assert "1 pruned" in run_ok(lib, "--full")
    assert (favourites / "Alien.mkv").is_symlink()


def test_a_link_tree_another_database_claims_keeps_its_unrecorded_links(lib: Library) -> None:
    a, b = nested_pair(lib)
    run_ok(a)
    run_ok(b)
    # B's database is lost: its links are not recorded in the rebuilt one and A
    # still claims the tree, so B adopts what it wants and leaves the rest alone.
    shutil.rmtree(b.database.parent)
    os.unlink(b.source / "TV" / "Show" / "S01E02.mkv")
    out = run_ok(b)
    assert "0 created, 0 repaired, 0 pruned" in out
    assert b"TV/Show/S01E02.mkv" in links_in(lib.target), "not recorded by B's new database: left alone"
    assert links_in(lib.target) == wanted(a) | wanted(b) | {
        b"TV/Show/S01E02.mkv": os.fsencode(b.source / "TV" / "Show" / "S01E02.mkv")
    }


def test_rebase_onto_another_link_tree_withdraws_the_old_claim(lib: Library) -> None:
    lib.add("Movies/A.mkv")
    assert lib.run("reconcile").returncode == 0
    my_id = meta(lib.database, "database_id")
    assert (lib.target / ".graylink" / f"owner-{my_id}").is_file()
    fresh = lib.root / "links2"
    lib.write_ini(paths={"target": str(fresh)})
    assert lib.run("reconcile").returncode == 2
    rebased = lib.run("reconcile", "--rebase")
    assert rebased.returncode == 0, rebased.stderr
    assert links_in(fresh) == expected_links(lib.source)
    assert not (lib.target / ".graylink").exists(), "the old tree is no longer claimed"
    assert links_in(lib.target) == expected_links(lib.source), "nothing outside the target is deleted"
    assert [p.name for p in (fresh / ".graylink").iterdir()] == [f"owner-{my_id}"]


def test_a_dry_run_rebase_says_what_would_move_and_changes_nothing(lib: Library) -> None:
    lib.add("Movies/A.mkv")
    lib.add("TV/Show/Season 01/E01.mkv")
    assert lib.run("reconcile").returncode == 0
    moved = other_source(lib, "source2", ["Movies/A.mkv", "TV/Show/Season 01/E01.mkv"])
    fresh = lib.root / "links2"
    lib.write_ini(paths={"source": str(moved), "target": str(fresh)})

    def files_of(folder: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    before = (files_of(lib.database.parent), files_of(lib.target / ".graylink"), tree_state(lib.target))
    dry = lib.run("reconcile", "--rebase", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"rebase (dry run): the database would move from source {lib.source} and target {lib.target}" in dry.stderr
    assert "moves" not in dry.stderr and "Traceback" not in dry.stderr
    assert "dry run: 2 created" in dry.stdout
    after = (files_of(lib.database.parent), files_of(lib.target / ".graylink"), tree_state(lib.target))
    assert after == before, "a dry run changed the database, the claims or the links"
    assert not fresh.exists()
    assert lib.run("reconcile").returncode == 2, "the database still belongs to the old library"
    rebased = lib.run("reconcile", "--rebase")
    assert rebased.returncode == 0 and "rebase: the database moves from" in rebased.stderr, rebased.stderr
    assert links_in(fresh) == expected_links(moved)


def test_rebase_off_an_rclone_mount_onto_a_local_copy(
    rclone_mount: Callable[..., Mounted],  # noqa: F811  (the imported fixture)
    tmp_path: Path,
) -> None:
    """The memory "the source was a mount point" belongs to the old source: the new one is judged afresh."""
    m = rclone_mount()
    assert m.graylink("reconcile").returncode == 0
    assert meta(m.ini.parent / "graylink.db", "source_was_mountpoint") == "1"
    local = tmp_path / "local"
    shutil.copytree(m.src, local)
    m.ini.write_text(m.ini.read_text().replace(f"source = {m.mnt}", f"source = {local}"))
    dry = m.graylink("reconcile", "--rebase", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "mount check" not in dry.stderr and "3 repaired" in dry.stdout, dry.stdout + dry.stderr
    rebased = m.graylink("reconcile", "--rebase")
    assert rebased.returncode == 0, rebased.stderr
    assert "0 created, 3 repaired, 0 pruned" in rebased.stdout
    assert links_in(m.links) == expected_links(local)
    again = m.graylink("reconcile")
    assert again.returncode == 0 and "0 created, 0 repaired, 0 pruned" in again.stdout, again.stderr
    assert meta(m.ini.parent / "graylink.db", "source_was_mountpoint") == "0"


def test_a_run_joining_a_link_tree_a_running_service_keeps_is_warned_and_claims_are_shown(lib: Library) -> None:
    """B's service runs; A, with its own database, joins B's link tree: legal (each
    keeps its own links) but rarely meant, so A is warned naming the service, and
    status and doctor list both claims (the service's as running)."""
    a, b = nested_pair(lib)
    loop = Loop(b)
    try:
        loop.wait_log("reconcile (walk)")
        done = a.run("reconcile")
        assert done.returncode == 0, done.stderr
        warned = [line for line in done.stderr.splitlines() if "also kept by a running graylink" in line]
        assert len(warned) == 1 and f"pid {loop.proc.pid}" in warned[0] and str(b.database) in warned[0], done.stderr
        status = a.run("status").stdout
        line = next(line for line in status.splitlines() if line.startswith("link tree: "))
        assert "2 owners: " in line and "this database" in line, status
        assert f"database {b.database} (source {b.source}), held by a running graylink (pid {loop.proc.pid})" in line
        doctor = a.run("doctor")
        assert "claims: the link tree is shared: 2 owners" in doctor.stdout, doctor.stdout
    finally:
        assert loop.stop() == 0
    # Alone in its own tree, a run says nothing of claims.
    again = a.run("reconcile")
    assert "also kept" not in again.stderr
