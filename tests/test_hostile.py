"""Hostile input: odd names, symlinks in the source, unreadable folders, a full disk, a corrupt
database and corrupt credentials. Around it all, a sentinel tree proves that nothing outside the
target root is created and nothing graylink did not make is deleted."""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, Library, expected_links, links_in

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def _without_dac_override() -> None:
    """In the child, before exec: give up root's power to read past file permissions.

    The process keeps uid 0 (so it can still load an interpreter that lives
    under /root), but a folder with mode 000 now answers EACCES, as it does to
    any ordinary user.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def run(lib: Library, *args: str, unprivileged: bool = False) -> subprocess.CompletedProcess[str]:
    """graylink as a real process; ``unprivileged`` takes away root's bypass of permissions."""
    return subprocess.run(
        [sys.executable, "-m", "graylink", "-c", str(lib.ini), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "HOME": str(lib.root)},
        timeout=120,
        preexec_fn=_without_dac_override if unprivileged and os.geteuid() == 0 else None,
    )


def _can_drop_privileges(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    probe.chmod(0)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", f"import os; os.listdir({str(probe)!r})"],
            capture_output=True,
            preexec_fn=_without_dac_override if os.geteuid() == 0 else None,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"SKIPPED LOUDLY: cannot drop root's permission bypass here ({exc}); EACCES is not tested")
    finally:
        probe.chmod(0o755)
    if proc.returncode == 0:
        pytest.skip("SKIPPED LOUDLY: a mode-000 folder stays readable here; EACCES is not tested")


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("graylink: ")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


# ------------------------------------------------------------- the sentinel


def fingerprint_tree(root: Path, skip: Path) -> dict[str, tuple[str, str]]:
    """Every entry under ``root`` except ``skip``: kind and content hash (links: their text)."""
    out: dict[str, tuple[str, str]] = {}
    base = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) != os.fsencode(skip)]
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.fsdecode(os.path.relpath(full, base))
            st = os.lstat(full)
            if os.path.islink(full):
                out[rel] = ("link", os.fsdecode(os.readlink(full)))
            elif os.path.isdir(full):
                out[rel] = ("dir", oct(st.st_mode))
            else:
                with open(full, "rb") as handle:
                    out[rel] = ("file", hashlib.sha256(handle.read()).hexdigest() + oct(st.st_mode))
    return out


@pytest.fixture
def fenced(tmp_path: Path) -> Iterator[Library]:
    """A library whose target sits among things that are not graylink's, in and around it."""
    outer = tmp_path / "outer"
    source = tmp_path / "source"
    source.mkdir()
    target = outer / "media" / "links"
    lib = Library(tmp_path, source, target, tmp_path / "state" / "graylink.db", tmp_path / "graylink.ini")
    lib.write_ini()
    # Beside and above the target.
    (outer / "media" / "photos").mkdir(parents=True)
    (outer / "media" / "photos" / "holiday.mkv").write_bytes(b"not ours")
    (outer / "notes.txt").write_text("keep me")
    (outer / "media" / "links.bak").write_text("a file named like the target")
    os.symlink(source / "Movies", outer / "media" / "movies-shortcut")
    os.symlink("/nonexistent/elsewhere", outer / "dangling")
    # Inside the target, where graylink's links will go.
    target.mkdir()
    (target / "Movies").mkdir()
    (target / "Movies" / "README.txt").write_text("the user's own file")
    os.symlink(outer / "notes.txt", target / "Movies" / "user-link.mkv")
    (target / "TV").mkdir()
    os.symlink(outer / "media" / "photos", target / "TV" / "Show")  # a symlinked folder: never entered
    (target / "Movies" / "Taken (2008)").mkdir()
    (target / "Movies" / "Taken (2008)" / "Taken (2008).mkv").write_bytes(b"a real file where a link would go")
    before = fingerprint_tree(outer, skip=Path("/nonexistent"))
    yield lib
    after = fingerprint_tree(outer, skip=Path("/nonexistent"))
    ours = {rel for rel in after if rel not in before}
    missing = sorted(set(before) - set(after))
    changed = sorted(rel for rel in before if rel in after and before[rel] != after[rel])
    assert missing == [], f"graylink deleted what it did not make: {missing}"
    assert changed == [], f"graylink changed what it did not make: {changed}"
    prefix = "media/links/"
    outside = sorted(rel for rel in ours if not rel.startswith(prefix))
    assert outside == [], f"graylink created entries outside the target: {outside}"


def test_sentinel_tree_survives_every_hostile_run(fenced: Library) -> None:
    lib = fenced
    lib.add("Movies/Taken (2008)/Taken (2008).mkv")
    lib.add("Movies/user-link.mkv")
    lib.add("Movies/Alien (1979)/Alien.mkv")
    lib.add("TV/Show/Season 1/E01.mkv")
    lib.add("TV/Show/Season 1/E02.mkv")
    first = run(lib, "reconcile", "--json")
    assert first.returncode == 1, first.stderr  # the conflicts are reported
    doc = json.loads(first.stdout)
    conflicts = sorted(a["link"].rsplit("/links/", 1)[1] for a in doc["actions"] if a["op"] == "conflict")
    assert conflicts == ["Movies/Taken (2008)/Taken (2008).mkv", "Movies/user-link.mkv"]
    assert (lib.target / "Movies" / "Alien (1979)" / "Alien.mkv").is_symlink()
    assert doc["failures"], "the symlinked TV/Show folder must be reported, not entered"
    # Every video goes away (a source left empty would read as a dropped
    # mount): graylink prunes its own links, and only those.
    lib.add("Other/readme.txt")
    shutil.rmtree(lib.source / "Movies")
    shutil.rmtree(lib.source / "TV")
    gone = run(lib, "reconcile", "--json", "--force")
    assert gone.returncode == 0, gone.stderr
    assert not (lib.target / "Movies" / "Alien (1979)").exists()
    assert links_in(lib.target) == {
        b"Movies/user-link.mkv": os.fsencode(lib.root / "outer" / "notes.txt"),
        b"TV/Show": os.fsencode(lib.root / "outer" / "media" / "photos"),
    }


# ------------------------------------------------------------------- names


HOSTILE_NAMES = [
    b"..",  # as a part of longer names only: a folder cannot be called '..'
    b"..hidden start.mkv",
    b"... three dots.mkv",
    b"a..b.mkv",
    b"-rf.mkv",
    b"--help.mkv",
    b"-.mkv",
    b"new\nline.mkv",
    b"carriage\rreturn.mkv",
    b"tab\t.mkv",
    b"bad \xff\xfe.mkv",
    b"\xc0\xaf.mkv",  # an overlong encoding of '/'
    "ünïcødé 日本語 🎬.mkv".encode(),
    "e\u0301 combining.mkv".encode(),
    b"x" * 251 + b".mkv",  # 255 bytes: the longest name Linux allows
    b" leading space.mkv",
    b"trailing dot..mkv",
    b"back\\slash.mkv",
    b"star*?[].mkv",
    b"$(touch pwned).mkv",
]


def test_hostile_names_link_exactly(lib: Library) -> None:
    src = os.fsencode(lib.source)
    for name in HOSTILE_NAMES[1:]:
        lib.add(b"Movies/" + name)
    for folder in (b"..hidden", b"-dash", b"new\nline", b"\xff\xfe", b"x" * 255, b"$(id)"):
        os.makedirs(os.path.join(src, b"Folders", folder))
        lib.add(b"Folders/" + folder + b"/video.mp4")
    proc = run(lib, "reconcile", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    want = expected_links(lib.source)
    assert len(want) == len(HOSTILE_NAMES) - 1 + 6
    assert links_in(lib.target) == want
    assert not (Path.cwd() / "pwned").exists()
    # The plan is valid JSON even for names that are not UTF-8.
    doc = json.loads(proc.stdout)
    assert doc["counts"]["create"] == len(want)
    # Nothing leaked out of the target: every link sits below it, named as in the source.
    for rel in want:
        assert not rel.startswith(b"..") and b"/../" not in rel
    again = run(lib, "reconcile", "--json")
    assert json.loads(again.stdout)["counts"] == {
        "create": 0,
        "repair": 0,
        "prune": 0,
        "conflict": 0,
        "braked": 0,
        "failed": 0,
        "not_tried": 0,
    }


def test_path_option_cannot_leave_the_source(lib: Library) -> None:
    lib.add("Movies/A/A.mkv")
    for given in ("../", "Movies/../../etc", str(lib.root)):
        proc = run(lib, "reconcile", "--path", given)
        assert proc.returncode == 2, (given, proc.stderr)
        one_line_error(proc)
    assert not lib.target.exists() or links_in(lib.target) == {}


# --------------------------------------------------------- symlinks in source


def test_symlinks_in_the_source_are_never_followed(lib: Library, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.mkv").write_bytes(b"x")
    (outside / "deep").mkdir()
    (outside / "deep" / "more.mkv").write_bytes(b"x")
    lib.add("Movies/Real/Real.mkv")
    os.symlink(outside, lib.source / "Movies" / "escape")  # a folder out of the source
    os.symlink(outside / "secret.mkv", lib.source / "Movies" / "Real" / "linked.mkv")  # a file out of it
    os.symlink("..", lib.source / "Movies" / "Real" / "loop")  # a loop
    os.symlink(lib.source, lib.source / "Movies" / "self")  # another loop, absolute
    os.symlink("missing", lib.source / "Movies" / "dangling.mkv")
    proc = run(lib, "reconcile", "--json", "--full")
    assert proc.returncode == 0, proc.stderr
    assert links_in(lib.target) == {b"Movies/Real/Real.mkv": os.fsencode(lib.source / "Movies/Real/Real.mkv")}
    with sqlite3.connect(lib.database) as db:
        names = {bytes(n) for (n,) in db.execute("SELECT name FROM file")}
    assert names == {b"Real.mkv"}  # nothing behind a symlink was even indexed


# ------------------------------------------------------ unreadable directories


@pytest.mark.parametrize("how", ["untrusted", "full"])
def test_unreadable_folder_is_reported_and_its_links_kept(lib: Library, how: str, tmp_path: Path) -> None:
    _can_drop_privileges(tmp_path)
    if how == "untrusted":
        lib.write_ini(scan={"trust_dir_mtime": "no"})
    lib.add("TV/Locked/S01/E01.mkv")
    lib.add("TV/Locked/S01/E02.mkv")
    lib.add("TV/Open/E01.mkv")
    first = run(lib, "reconcile", "--json", unprivileged=True)
    assert first.returncode == 0, first.stderr
    assert len(links_in(lib.target)) == 3
    (lib.source / "TV" / "Locked").chmod(0)
    lib.add("TV/Open/E02.mkv")
    args = ["reconcile", "--json"] + (["--full"] if how == "full" else [])
    second = run(lib, *args, unprivileged=True)
    assert second.returncode == 1, second.stderr
    assert "Traceback" not in second.stderr
    assert "cannot list TV/Locked" in second.stderr and "Permission denied" in second.stderr
    doc = json.loads(second.stdout)
    assert doc["counts"]["prune"] == 0 and doc["counts"]["braked"] == 0
    assert any("TV/Locked" in f for f in doc["failures"])
    links = links_in(lib.target)
    assert b"TV/Locked/S01/E01.mkv" in links and b"TV/Locked/S01/E02.mkv" in links
    assert b"TV/Open/E02.mkv" in links
    # Readable again: everything converges, nothing was lost meanwhile.
    (lib.source / "TV" / "Locked").chmod(0o755)
    third = run(lib, "reconcile", "--json", "--full", unprivileged=True)
    assert third.returncode == 0, third.stderr
    assert links_in(lib.target) == expected_links(lib.source)


def test_unreadable_folder_on_first_run(lib: Library, tmp_path: Path) -> None:
    _can_drop_privileges(tmp_path)
    lib.add("A/Locked/x.mkv")
    lib.add("A/Open/y.mkv")
    (lib.source / "A" / "Locked").chmod(0)
    first = run(lib, "reconcile", unprivileged=True)
    assert first.returncode == 1
    assert "cannot list A/Locked" in first.stderr and "Traceback" not in first.stderr
    assert set(links_in(lib.target)) == {b"A/Open/y.mkv"}
    (lib.source / "A" / "Locked").chmod(0o755)
    second = run(lib, "reconcile", unprivileged=True)
    assert second.returncode == 0, second.stderr
    assert links_in(lib.target) == expected_links(lib.source)


# ---------------------------------------------------------------- full disk


@pytest.fixture
def tiny_target(lib: Library) -> Iterator[Library]:
    """The target on a tmpfs that holds only a few dozen inodes."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("SKIPPED LOUDLY: mounting a small tmpfs needs root; ENOSPC is not tested here")
    lib.target.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,nr_inodes=40", "tmpfs", str(lib.target)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"SKIPPED LOUDLY: cannot mount a tmpfs here ({mounted.stderr.strip()}); ENOSPC is not tested")
    try:
        yield lib
    finally:
        subprocess.run(["umount", "-l", str(lib.target)], check=False)


def test_full_target_stops_cleanly_and_resumes(tiny_target: Library) -> None:
    lib = tiny_target
    for show in range(8):
        for episode in range(10):
            lib.add(f"TV/Show {show}/E{episode:02d}.mkv")
    full = run(lib, "reconcile", "--json")
    assert full.returncode == 1, full.stderr
    assert "Traceback" not in full.stderr
    assert "No space left on device" in full.stderr
    made = links_in(lib.target)
    assert 0 < len(made) < 80
    with sqlite3.connect(lib.database) as db:
        recorded = {bytes(d) + b"/" + bytes(n) for d, n in db.execute("SELECT dir, name FROM link")}
        assert db.execute("SELECT count(*) FROM dirty").fetchone()[0] > 0  # the work is still marked
    assert recorded == set(made)  # what was done is recorded, nothing more
    subprocess.run(["mount", "-o", "remount,nr_inodes=10000,size=4m", str(lib.target)], check=True)
    resumed = run(lib, "reconcile", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert links_in(lib.target) == expected_links(lib.source)
    leftovers = [p for p in lib.target.rglob(".graylink-*")]
    assert leftovers == []


# ---------------------------------------------------------- corrupt database


def test_garbage_database_is_one_line_and_moving_it_away_rebuilds(lib: Library) -> None:
    lib.add("Movies/A/A.mkv")
    lib.add("Movies/B/B.mkv")
    assert run(lib, "reconcile").returncode == 0
    lib.database.write_bytes(b"this is not a database at all" * 100)
    for suffix in ("-wal", "-shm"):
        Path(str(lib.database) + suffix).unlink(missing_ok=True)
    proc = run(lib, "reconcile")
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert "graylink db restore" in line and "move it away" in line
    status = run(lib, "status")
    assert status.returncode == 2 and "Traceback" not in status.stderr, status.stderr
    assert "graylink db restore" in one_line_error(status)
    doctor = run(lib, "doctor")
    assert doctor.returncode == 1 and "Traceback" not in doctor.stderr, doctor.stderr
    lib.database.rename(lib.database.with_suffix(".broken"))
    rebuilt = run(lib, "reconcile", "--json")
    assert rebuilt.returncode == 0, rebuilt.stderr
    doc = json.loads(rebuilt.stdout)
    assert doc["counts"] == {
        "create": 0,
        "repair": 0,
        "prune": 0,
        "conflict": 0,
        "braked": 0,
        "failed": 0,
        "not_tried": 0,
    }  # adopted
    with sqlite3.connect(lib.database) as db:
        assert db.execute("SELECT count(*) FROM link").fetchone()[0] == 2


def test_database_damaged_inside_is_one_line(lib: Library) -> None:
    for i in range(400):
        lib.add(f"Movies/Film {i:03d}/Film {i:03d} with a fairly long name to fill pages.mkv")
    assert run(lib, "reconcile").returncode == 0
    with sqlite3.connect(lib.database) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(lib.database.read_bytes())
    assert len(data) > 8 * page_size
    # Keep page 1 (the header and schema) intact; smash the table pages.
    for offset in range(2 * page_size, len(data), page_size):
        data[offset : offset + 64] = b"\xa5" * 64
    lib.database.write_bytes(bytes(data))
    lib.add("Movies/New/New.mkv")
    proc = run(lib, "reconcile", "--full")
    assert proc.returncode == 2, proc.stderr
    line = one_line_error(proc)
    assert "graylink db restore" in line and "move it away" in line


# -------------------------------------------------------- corrupt credentials


RCLONE_OK = """[gdrive]
type = drive
client_id = made-up-client.apps.example
client_secret = made-up-client-secret
scope = drive,drive.activity.readonly
token = {token}
"""


@pytest.mark.parametrize(
    ("conf", "needle"),
    [
        ("[gdrive\ntype = drive\n", "rclone_config"),
        ("\x00\xff garbage \x00", "rclone_config"),
        (RCLONE_OK.format(token="{not json"), "not valid JSON"),
        (RCLONE_OK.format(token='{"token_type": "Bearer"}'), "no access_token"),
    ],
)
def test_corrupt_rclone_conf_is_a_clear_message(lib: Library, conf: str, needle: str) -> None:
    lib.add("Movies/A/A.mkv")
    conf_path = lib.root / "rclone.conf"
    conf_path.write_text(conf, encoding="utf-8", errors="surrogateescape")
    lib.write_ini(
        drive={
            "enabled": "yes",
            "remote": "gdrive:",
            "rclone_config": str(conf_path),
            "token_file": str(lib.root / "no-token.json"),
            # Nothing may reach Google from a test, even by mistake.
            "api_endpoint": "http://127.0.0.1:9",
            "token_uri": "http://127.0.0.1:9/token",
        }
    )
    proc = run(lib, "reconcile", "--json")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert needle in proc.stderr or needle in proc.stdout, (proc.stdout, proc.stderr)
    assert proc.returncode in (1, 2)
    if proc.returncode == 1:  # reported as a failed feed; the walk still did its job
        assert links_in(lib.target) == expected_links(lib.source)
    else:
        one_line_error(proc)


def test_corrupt_token_file_is_a_clear_message(lib: Library) -> None:
    lib.add("Movies/A/A.mkv")
    conf_path = lib.root / "rclone.conf"
    conf_path.write_text(RCLONE_OK.format(token='{"access_token": "made-up-access", "expiry": "x"}'))
    token = lib.root / "token.json"
    token.write_text('{"refresh_token": ')
    token.chmod(0o600)
    lib.write_ini(
        drive={
            "enabled": "yes",
            "remote": "gdrive:",
            "rclone_config": str(conf_path),
            "token_file": str(token),
            "api_endpoint": "http://127.0.0.1:9",
            "token_uri": "http://127.0.0.1:9/token",
        }
    )
    proc = run(lib, "reconcile", "--json")
    assert "Traceback" not in proc.stderr, proc.stderr
    text = proc.stderr + proc.stdout
    assert "token_file" in text or "not valid JSON" in text or "token" in text, text
    assert proc.returncode in (1, 2)


def test_damaged_database_comes_back_with_db_restore(lib: Library) -> None:
    lib.add("Movies/A/A.mkv")
    assert run(lib, "reconcile").returncode == 0
    backup = lib.root / "backup.db"
    made = run(lib, "db", "backup", str(backup))
    assert made.returncode == 0, made.stderr
    lib.add("Movies/B/B.mkv")
    assert run(lib, "reconcile").returncode == 0
    lib.database.write_bytes(b"\0garbage" * 512)
    for suffix in ("-wal", "-shm"):
        Path(f"{lib.database}-{suffix[1:]}").unlink(missing_ok=True)
    broken = run(lib, "reconcile")
    assert broken.returncode == 2
    assert "graylink db restore" in one_line_error(broken)
    restored = run(lib, "db", "restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    lib.add("Movies/C/C.mkv")
    after = run(lib, "reconcile", "--json")
    assert after.returncode == 0, after.stderr
    assert links_in(lib.target) == expected_links(lib.source)
    doc = json.loads(after.stdout)
    assert doc["counts"]["conflict"] == 0 and doc["counts"]["prune"] == 0
    with sqlite3.connect(lib.database) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT count(*) FROM link").fetchone()[0] == 3
