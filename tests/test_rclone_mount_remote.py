"""doctor compares the remote the rclone mount serves with the one the Drive feed watches.

The command lines are rclone's own syntax (cmd/mount, fs/fspath connection
strings, backend/drive flags ``--drive-root-folder-id`` / ``--drive-team-drive``);
the last test reads a real ``rclone mount`` process from /proc.
"""

from __future__ import annotations

import os

import pytest

from graylink.config import parse_raw
from graylink.drive.mountmatch import compare, mount_check
from graylink.drive.remote import read_remote
from tests.test_mount import _MISSING, _start, _stop

CONF = (
    "[gdrive]\ntype = drive\nscope = drive\nroot_folder_id = 0AROOT\n"
    "[media]\ntype = alias\nremote = gdrive:Media\n"
    "[other]\ntype = drive\nscope = drive\n"
)


def _config(tmp_path, remote, source=None, **drive):
    (tmp_path / "rclone.conf").write_text(CONF)
    src = source or tmp_path / "src"
    os.makedirs(src, exist_ok=True)
    return parse_raw(
        {
            "paths": {"source": str(src), "target": str(tmp_path / "links"), "database": str(tmp_path / "g.db")},
            "drive": {"enabled": "yes", "rclone_config": str(tmp_path / "rclone.conf"), "remote": remote, **drive},
        }
    )


@pytest.mark.parametrize(
    ("ours", "argv", "prefix", "ok"),
    [
        ("gdrive:Media", ["rclone", "mount", "gdrive:Media", "/mnt/m"], "", True),
        ("media:", ["rclone", "mount", "gdrive:Media/", "/mnt/m"], "", True),  # an alias of the same folder
        ("gdrive:Media/TV", ["rclone", "--config", "x", "mount", "media:", "/mnt/m"], "TV", True),  # source inside
        ("gdrive:Media", ["rclone", "mount", "gdrive:", "/mnt/m"], "", False),
        ("gdrive:Media", ["rclone", "mount", "other:Media", "/mnt/m"], "", False),
        ("gdrive:", ["rclone", "mount", "gdrive:", "/mnt/m", "--drive-root-folder-id", "0AELSE"], "", False),
        ("gdrive:", ["rclone", "mount", "gdrive,team_drive=0ATEAM:", "/mnt/m"], "", False),
        ("gdrive,team_drive=0ATEAM:", ["rclone", "mount", "gdrive:", "/mnt/m", "--drive-team-drive=0ATEAM"], "", True),
        ("gdrive:", ["rclone", "mount", "/srv/local", "/mnt/m"], "", False),
    ],
)
def test_the_mounts_remote_is_compared_with_the_feeds(tmp_path, ours, argv, prefix, ok):
    config = _config(tmp_path, ours)
    check = compare(config, read_remote(config.drive), tuple(argv), {}, prefix)
    assert check.ok is ok, check
    if not ok:
        assert check.hint and "[drive] remote" in check.hint


def test_an_environment_variable_of_the_mount_counts_like_its_flag(tmp_path):
    config = _config(tmp_path, "gdrive:")
    argv = ("rclone", "mount", "gdrive:", "/mnt/m")
    check = compare(config, read_remote(config.drive), argv, {"RCLONE_DRIVE_ROOT_FOLDER_ID": "0AELSE"}, "")
    assert not check.ok and "0AELSE" in check.message


@pytest.mark.fuse
@pytest.mark.skipif(bool(_MISSING), reason=f"FUSE TESTS SKIPPED: {', '.join(_MISSING)} missing")
def test_doctor_reads_the_real_mount_process(tmp_path):
    disk, mnt = tmp_path / "disk", tmp_path / "mnt"
    disk.mkdir()
    mnt.mkdir()
    process = _start(["rclone", "mount", str(disk), str(mnt), "--config", os.devnull], mnt)
    try:
        config = _config(tmp_path, "gdrive:", source=mnt)
        check = mount_check(config, read_remote(config.drive))
    finally:
        _stop(mnt, process)
    assert check is not None and not check.ok
    assert str(disk) in check.message and "local path" in check.message
