"""The feed's paths are the paths a real rclone mount shows: rclone's encoding and crypt remotes.

A local folder mounted with ``rclone mount SRC MNT --local-encoding InvalidUtf8``
shows names as a Drive remote does (Drive's default encoding, lib/encoder); a
crypt remote mounted over a local folder shows decrypted names of files that
rclone itself encrypted (backend/crypt). The loopback Google (tests/google_server.py)
holds the same tree with the names as stored, and reports the changes.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from graylink.config import parse_raw
from graylink.drive.feed import poll_drive
from graylink.reconcile.cycle import CycleOptions, run_cycle
from graylink.store.db import Store
from tests.google_server import MY_DRIVE_ROOT, FakeGoogle
from tests.test_drive import CLIENT_ID, CLIENT_SECRET, write_rclone_conf
from tests.test_mount import _MISSING, _start, _stop, wait_until

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(bool(_MISSING), reason=f"FUSE TESTS SKIPPED: {', '.join(_MISSING)} missing"),
]

OLD = time.time() - 7200
PASSWORD = "made-up-crypt-password"


@pytest.fixture
def google():
    with FakeGoogle() as server:
        server.add_client(CLIENT_ID, CLIENT_SECRET)
        yield server


def _age(folder: Path) -> None:
    for dirpath, _, _ in os.walk(folder):
        os.utime(dirpath, (OLD, OLD))


def _config(tmp_path: Path, google: FakeGoogle, mnt: Path, remote: str) -> dict[str, dict[str, str]]:
    return {
        "paths": {"source": str(mnt), "target": str(tmp_path / "links"), "database": str(tmp_path / "g.db")},
        "scan": {"trust_dir_mtime": "yes", "workers": "2"},
        "drive": {
            "enabled": "yes",
            "rclone_config": str(tmp_path / "rclone.conf"),
            "remote": remote,
            "api_endpoint": google.url,
            "token_uri": google.url + "/token",
            "token_file": str(tmp_path / "no-token.json"),
        },
    }


def _reconcile(raw: dict[str, dict[str, str]]) -> int:
    config = parse_raw(raw)
    with Store(config.paths.database) as store:
        return run_cycle(config, store, CycleOptions()).exit_code


def _links(target: Path) -> set[bytes]:
    root = os.fsencode(target)
    return {
        os.path.relpath(os.path.join(d, f), root)
        for d, _, files in os.walk(root)
        for f in files
        if os.path.islink(os.path.join(d, f))
    }


@pytest.fixture
def mounted(tmp_path):
    started: list[tuple[Path, subprocess.Popen[bytes]]] = []

    def start(src: str, *extra: str) -> Path:
        mnt = tmp_path / "mnt"
        mnt.mkdir(exist_ok=True)
        argv = ["rclone", "mount", src, str(mnt), "--dir-cache-time", "1s", "--attr-timeout", "0s", *extra]
        argv += ["--log-file", str(tmp_path / "rclone.log")]
        started.append((mnt, _start(argv, mnt)))
        return mnt

    yield start
    for mnt, process in started:
        _stop(mnt, process)


@pytest.mark.parametrize("feed", ["activity", "changes"])
def test_a_change_to_a_stored_name_links_the_file_the_mount_shows(tmp_path, google, mounted, feed):
    disk = tmp_path / "disk"
    (disk / "Fate／Zero" / "S1").mkdir(parents=True)
    (disk / "Fate／Zero" / "S1" / "e1.mkv").write_bytes(b"video")
    _age(disk)
    mnt = mounted(str(disk), "--config", os.devnull, "--local-encoding", "InvalidUtf8")
    assert "Fate‛／Zero" in os.listdir(mnt), "rclone shows a stored ／ quoted"
    root = google.add("Media", MY_DRIVE_ROOT, folder=True, record=False)
    show = google.add("Fate／Zero", root, folder=True, record=False)
    season = google.add("S1", show, folder=True, record=False)
    google.add("e1.mkv", season, record=False)
    write_rclone_conf(tmp_path / "rclone.conf", google, root_folder_id=root)
    raw = _config(tmp_path, google, mnt, "gdrive:")
    raw["drive"]["feed"] = feed
    assert _reconcile(raw) == 0
    assert _links(tmp_path / "links") == {"Fate‛／Zero/S1/e1.mkv".encode()}

    (disk / "Fate／Zero" / "S1" / "a‛b.mkv").write_bytes(b"video")
    _age(disk)  # the folder's mtime through the mount does not move (ARCHITECTURE §4)
    google.add("a‛b.mkv", season, record=True)
    wait_until(lambda: "a‛‛b.mkv" in os.listdir(mnt / "Fate‛／Zero" / "S1"), "the mount to list the new file")
    assert _reconcile(raw) == 0
    assert "Fate‛／Zero/S1/a‛‛b.mkv".encode() in _links(tmp_path / "links")


def test_a_remote_path_is_resolved_through_rclones_names(tmp_path, google):
    root = google.add("Media", MY_DRIVE_ROOT, folder=True, record=False)
    anime = google.add("Anime", root, folder=True, record=False)
    show = google.add("Fate／Zero", anime, folder=True, record=False)
    write_rclone_conf(tmp_path / "rclone.conf", google, root_folder_id=root)
    (tmp_path / "src").mkdir()
    config = parse_raw(_config(tmp_path, google, tmp_path / "src", "gdrive:Anime/Fate‛／Zero"))
    with Store(config.paths.database) as store:
        assert poll_drive(config, store).error is None
        assert store.get_meta("drive.root_id") == show


def _crypt_conf(path: Path, underlying: str, extra: str = "") -> None:
    obscured = subprocess.run(["rclone", "obscure", PASSWORD], capture_output=True, text=True, check=True).stdout
    path.write_text(f"{extra}\n[secret]\ntype = crypt\nremote = {underlying}\npassword = {obscured.strip()}\n")


def _mirror(google: FakeGoogle, disk: Path, parent: str, ids: dict[str, str], rel: str = "") -> None:
    """The encrypted tree on disk, as the loopback Drive stores it."""
    for entry in sorted(os.listdir(disk / rel if rel else disk)):
        sub = f"{rel}/{entry}" if rel else entry
        folder = (disk / sub).is_dir()
        if sub not in ids:
            ids[sub] = google.add(entry, parent, folder=folder, record=not folder)
        if folder:
            _mirror(google, disk, ids[sub], ids, sub)


@pytest.mark.parametrize("feed", ["activity", "changes"])
def test_a_crypt_remote_is_watched_below_and_linked_at_the_decrypted_paths(tmp_path, google, mounted, feed):
    under = tmp_path / "under"
    under.mkdir()
    mount_conf = tmp_path / "mount.conf"
    _crypt_conf(mount_conf, str(under))

    def put(rel: str) -> None:  # written through the crypt remote, as a user would
        subprocess.run(["rclone", "--config", str(mount_conf), "touch", f"secret:{rel}"], check=True, timeout=60)
        _age(under)

    put("Show/S1/e1.mkv")
    put("Movies/Fate／Zero (2011)/f.mkv")
    assert "Show" not in os.listdir(under), "names on the Drive are encrypted"
    mnt = mounted("secret:", "--config", str(mount_conf))
    root = google.add("Media", MY_DRIVE_ROOT, folder=True, record=False)
    enc = google.add("enc", root, folder=True, record=False)
    ids: dict[str, str] = {}
    _mirror(google, under, enc, ids)
    conf = tmp_path / "rclone.conf"
    write_rclone_conf(conf, google, root_folder_id=root)
    drive_part = conf.read_text()
    _crypt_conf(conf, "gdrive:enc", extra=drive_part)
    raw = _config(tmp_path, google, mnt, "secret:")
    raw["drive"]["feed"] = feed
    assert _reconcile(raw) == 0
    assert _links(tmp_path / "links") == {b"Show/S1/e1.mkv", "Movies/Fate／Zero (2011)/f.mkv".encode()}

    # A season pack: more names in one poll than one rclone cryptdecode takes (10, cmd/cryptdecode).
    pack = tmp_path / "pack"
    pack.mkdir()
    episodes = [f"e{n:02d}.mkv" for n in range(2, 15)]
    for name in episodes:
        (pack / name).write_bytes(b"video")
    copy = ["rclone", "--config", str(mount_conf), "copy", str(pack), "secret:Show/S2"]
    subprocess.run(copy, check=True, timeout=60)
    _age(under)
    _mirror(google, under, enc, ids)  # the loopback reports the new files with their encrypted names
    wait_until(lambda: (mnt / "Show" / "S2" / "e14.mkv").exists(), "the crypt mount to list the new files")
    assert _reconcile(raw) == 0
    assert {f"Show/S2/{e}".encode() for e in episodes} <= _links(tmp_path / "links")
    assert PASSWORD not in (tmp_path / "g.db").read_bytes().decode("latin-1")

    # A path inside the crypt remote is encrypted on the way down to the Drive.
    raw["drive"]["remote"] = "secret:Show"
    (tmp_path / "g.db").unlink()
    config = parse_raw(raw)
    with Store(config.paths.database) as store:
        assert poll_drive(config, store).error is None
        reverse = ["rclone", "--config", str(mount_conf), "cryptdecode", "--reverse", "secret:", "Show"]
        encrypted = subprocess.run(reverse, capture_output=True, text=True, check=True).stdout.split(" \t ")[1]
        assert store.get_meta("drive.root_id") == ids[encrypted.strip()]


def test_vfs_refresh_names_the_sources_vfs_when_rclone_serves_several(tmp_path, mounted):
    """One rclone (vfs/rc.go getVFS): a mount from its command line and one added with mount/mount."""
    import requests

    from graylink.config import load_config
    from graylink.rclone import rc as rclone_rc
    from tests.test_mount import free_port

    for name in ("disk1", "disk2"):
        (tmp_path / name / "S1").mkdir(parents=True)
        (tmp_path / name / "S1" / "e1.mkv").write_bytes(b"video")
    port = free_port()
    mnt = mounted(
        str(tmp_path / "disk1"), "--config", os.devnull, "--dir-cache-time", "1000h",
        "--rc", "--rc-addr", f"127.0.0.1:{port}", "--rc-no-auth",
    )  # fmt: skip
    second = tmp_path / "mnt2"
    second.mkdir()
    rc = f"http://127.0.0.1:{port}"
    answer = requests.post(
        f"{rc}/mount/mount",
        json={
            "fs": str(tmp_path / "disk2"),
            "mountPoint": str(second),
            "vfsOpt": {"DirCacheTime": 3600 * 10**9 * 1000},
        },
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    try:
        assert "more than one VFS" in requests.post(f"{rc}/vfs/refresh", json={}, timeout=60).text
        for source, disk in ((mnt, "disk1"), (second, "disk2")):
            ini = tmp_path / f"{disk}.ini"
            ini.write_text(
                f"[paths]\nsource = {source}\ntarget = {tmp_path / ('links-' + disk)}\n"
                f"database = {tmp_path / (disk + '.db')}\n[mount]\nrclone_rc = {rc}\n"
            )
            assert os.listdir(source / "S1") == ["e1.mkv"]
            (tmp_path / disk / "S1" / "e2.mkv").write_bytes(b"video")
            assert os.listdir(source / "S1") == ["e1.mkv"], "the directory cache holds"
            assert rclone_rc.vfs_refresh(load_config(str(ini)), [b"S1"]), disk
            assert sorted(os.listdir(source / "S1")) == ["e1.mkv", "e2.mkv"], disk
    finally:
        requests.post(f"{rc}/mount/unmount", json={"mountPoint": str(second)}, timeout=60)
