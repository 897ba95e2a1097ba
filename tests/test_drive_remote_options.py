"""Drive remote options that change what the mount shows (rclone backend/drive/drive.go).

``shared_with_me`` and ``starred_only`` list the root as a search
(``sharedWithMe=true`` / ``starred=true``, no parent, in ``list``);
``trashed_only`` shows the trash; ``skip_shortcuts`` hides every shortcut,
which rclone otherwise follows, a remote path through a folder shortcut
included (``FindLeaf`` lists folders *and* shortcuts and resolves them);
``env_auth`` (rclone >= 1.66) takes credentials from the environment
(``createOAuthClient``: after a service account, before the token). graylink
honours what it can and refuses the rest in one line naming the option.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from graylink.drive.feed import poll_drive
from graylink.errors import ConfigError
from graylink.store.db import Store
from tests.google_server import MY_DRIVE_ROOT, FakeGoogle
from tests.test_drive import CLIENT_ID, CLIENT_SECRET, make_config, write_rclone_conf


@pytest.fixture
def google():
    with FakeGoogle() as server:
        server.add_client(CLIENT_ID, CLIENT_SECRET)
        yield server


def _poll(tmp_path: Path, google: FakeGoogle, remote: str = "gdrive:", **drive: str):
    config = make_config(tmp_path, google, remote, **drive)
    with Store(config.paths.database) as store:
        result = poll_drive(config, store)
        return result, store.get_meta("drive.root_id")


@pytest.mark.parametrize(
    ("option", "words"),
    [
        ("trashed_only", "the Drive's trash"),
        ("shared_with_me", "[drive] folder_id"),
        ("starred_only", "[drive] folder_id"),
        ("env_auth", "graylink drive auth"),
    ],
)
def test_an_option_graylink_cannot_follow_is_refused_in_one_line(tmp_path, google, option, words):
    write_rclone_conf(tmp_path / "rclone.conf", google, extra=f"{option} = true\n")
    with pytest.raises(ConfigError) as caught:
        _poll(tmp_path, google)
    message = str(caught.value)
    assert f"{option} = true" in message and words in message and "\n" not in message


def test_the_refusal_is_exit_2_and_a_doctor_failure(tmp_path, google, lib):
    write_rclone_conf(tmp_path / "rclone.conf", google, extra="shared_with_me = true\n")
    lib.write_ini(
        drive={
            "enabled": "yes",
            "rclone_config": str(tmp_path / "rclone.conf"),
            "remote": "gdrive:",
            "api_endpoint": google.url,
            "token_uri": google.url + "/token",
            "token_file": str(tmp_path / "no-token.json"),
        }
    )
    run = lib.run("reconcile")
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().count("\n") == 0 and "shared_with_me = true" in run.stderr, run.stderr
    doctor = lib.run("doctor")
    assert doctor.returncode == 1 and "shared_with_me = true" in doctor.stdout + doctor.stderr


def test_shared_with_me_is_followed_with_a_folder_id(tmp_path, google):
    shared = google.add("Shared TV", MY_DRIVE_ROOT, folder=True, record=False)
    write_rclone_conf(tmp_path / "rclone.conf", google, extra="shared_with_me = true\nstarred_only = false\n")
    result, root = _poll(tmp_path, google, folder_id=shared)
    assert result.error is None and root == shared


def test_a_remote_path_through_a_folder_shortcut_watches_its_target(tmp_path, google):
    media = google.add("Media", MY_DRIVE_ROOT, folder=True, record=False)
    elsewhere = google.add("Library of a friend", MY_DRIVE_ROOT, folder=True, record=False)
    google.add_shortcut("TV", media, elsewhere, record=False)
    google.add("TV", MY_DRIVE_ROOT, record=False)  # a file of that name elsewhere is no folder
    write_rclone_conf(tmp_path / "rclone.conf", google, root_folder_id=media)
    result, root = _poll(tmp_path, google, "gdrive:TV")
    assert result.error is None, result.error
    assert root == elsewhere

    os.unlink(tmp_path / "graylink.db")
    write_rclone_conf(tmp_path / "rclone.conf", google, root_folder_id=media, extra="skip_shortcuts = true\n")
    result, _ = _poll(tmp_path, google, "gdrive:TV")
    assert result.error is not None and "folder 'TV'" in result.error and "not found" in result.error


@pytest.mark.parametrize("skip", [False, True])
def test_skip_shortcuts_hides_shortcuts_from_the_feed_as_from_the_mount(tmp_path, skip):
    from graylink.drive.items import ItemInfo, ItemRecord, Resolver
    from graylink.drive.names import Names

    with Store(tmp_path / "g.db") as store:
        resolver = Resolver(ItemRecord(store), "root1", lambda _id: None, Names(skip_shortcuts=skip))
        folder = ItemInfo("s1", "Anime", ("root1",), True, False, target="t1", shortcut=True)
        file = ItemInfo("s2", "e1.mkv", ("root1",), False, False, shortcut=True)
        plain = ItemInfo("v1", "e2.mkv", ("root1",), False, False)
        with store.atomic():
            assert resolver.place(folder).path == (None if skip else b"Anime")
            assert resolver.place(file).path == (None if skip else b"e1.mkv")
            assert resolver.place(plain).path == b"e2.mkv"
