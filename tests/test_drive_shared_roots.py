"""A move whose parent is a shared drive's root: the Activity API names that parent with a
DriveReference (``{"drive": {"name": "drives/ID"}}``), not a ``driveItem``
(developers.google.com/drive/activity/v2/reference/rest/v2/activity/targetreference);
the root folder of a shared drive has the drive's ID (Drive API v3 ``drives``)."""

from __future__ import annotations

import pytest

from graylink.drive.activity import parse_activity
from graylink.drive.feed import poll_drive
from graylink.store.db import Store
from tests.google_server import FakeGoogle
from tests.test_drive import CLIENT_ID, CLIENT_SECRET, make_config, marks, start, write_rclone_conf

SHARED = "0ASharedDriveId"


@pytest.fixture
def google():
    with FakeGoogle() as server:
        server.add_client(CLIENT_ID, CLIENT_SECRET)
        yield server


def test_a_move_out_of_a_shared_drive_root_marks_the_root_and_the_new_folder(tmp_path, google):
    google.add_shared_drive(SHARED, "Team Media")
    season = google.add("Season 1", SHARED, folder=True, record=False, drive_id=SHARED)
    episode = google.add("e1.mkv", SHARED, record=False, drive_id=SHARED)  # met before graylink started
    write_rclone_conf(tmp_path / "rclone.conf", google, extra=f"team_drive = {SHARED}\n")
    config = make_config(tmp_path, google, feed="activity")
    with Store(config.paths.database) as store:
        start(config, store)
        google.move(episode, season)
        assert poll_drive(config, store).error is None
        assert marks(store) == {(b"", False), (b"Season 1", False)}


def test_shared_drive_references_are_parents():
    activity = {
        "timestamp": "2026-12-01T12:00:00Z",
        "primaryActionDetail": {
            "move": {
                "addedParents": [{"drive": {"name": "drives/0AOne", "title": "One"}}],
                "removedParents": [{"teamDrive": {"name": "teamDrives/0ATwo"}}, {"driveItem": {"name": "items/f1"}}],
            }
        },
        "targets": [{"driveItem": {"name": "items/v1", "title": "e.mkv", "mimeType": "video/x-matroska"}}],
    }
    change = parse_activity(activity).changes[0]
    assert change.added_parents == ("0AOne",) and change.removed_parents == ("0ATwo", "f1")


def test_a_shared_drive_reference_may_name_another_collection():
    """driveactivity v2 discovery document, ``DriveReference.name``: "The format is
    `COLLECTION_ID/DRIVE_ID`. Clients should not assume a specific collection ID"."""
    activity = {
        "timestamp": "2026-12-01T12:00:00Z",
        "primaryActionDetail": {
            "move": {
                "addedParents": [{"drive": {"name": "sharedDrives/0AOne", "title": "One"}}],
                "removedParents": [{"teamDrive": {"name": "someCollection/0ATwo"}}],
            }
        },
        "targets": [{"driveItem": {"name": "items/v1", "title": "e.mkv", "mimeType": "video/x-matroska"}}],
    }
    change = parse_activity(activity).changes[0]
    assert change.added_parents == ("0AOne",) and change.removed_parents == ("0ATwo",)


def test_a_folder_shortcut_is_a_folder_and_changes_in_its_target_mark_it(tmp_path, google):
    """Drive v3 shortcuts (File.shortcutDetails.targetId / targetMimeType); rclone shows a folder
    shortcut as a folder (backend/drive: shortcuts are followed), so the mount lists the
    target's content at the shortcut's path."""
    from tests.google_server import MY_DRIVE_ROOT

    root = google.add("Media", MY_DRIVE_ROOT, folder=True, record=False)
    elsewhere = google.add("Elsewhere", MY_DRIVE_ROOT, folder=True, record=False)
    show = google.add("Show", elsewhere, folder=True, record=False)
    google.add("e1.mkv", show, record=False)
    write_rclone_conf(tmp_path / "rclone.conf", google, scopes="drive", root_folder_id=root)
    config = make_config(tmp_path, google, feed="changes")
    with Store(config.paths.database) as store:
        start(config, store)
        shortcut = google.add_shortcut("Show (shortcut)", root, show)
        assert poll_drive(config, store).error is None
        assert marks(store) == {(b"", False), (b"Show (shortcut)", True)}
        store.clear_marks(m.id for m in store.pending_marks())
        google.add("e2.mkv", show)  # inside the target, outside the root
        assert poll_drive(config, store).error is None
        assert marks(store) == {(b"Show (shortcut)", False)}
        store.clear_marks(m.id for m in store.pending_marks())
        google.rename(shortcut, "Show")
        assert poll_drive(config, store).error is None
        assert marks(store) == {(b"", False), (b"Show (shortcut)", True), (b"Show", True)}
        store.clear_marks(m.id for m in store.pending_marks())
        google.add("e3.mkv", show)
        assert poll_drive(config, store).error is None
        assert marks(store) == {(b"Show", False)}
