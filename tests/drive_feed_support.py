"""The fixtures the Drive Changes feed tests share (tests/test_drive_changes.py,
tests/test_drive_record.py): the loopback Google (``tests/google_server.py``)
with the rclone remote's client, a Drive on it, and a config whose rclone.conf
holds rclone's default token (scope = drive) over the Drive's root folder.

A test module takes them by binding them at its top level (pytest finds
fixtures by module attribute): ``google, drive, setup = feed.google, …``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from graylink.config import Config
from graylink.store.db import Store
from tests.google_server import FakeGoogle
from tests.test_drive import CLIENT_ID, CLIENT_SECRET, Drive, make_config, write_rclone_conf


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle() as server:
        server.add_client(CLIENT_ID, CLIENT_SECRET)
        yield server


@pytest.fixture
def drive(google: FakeGoogle) -> Drive:
    return Drive(google)


@pytest.fixture
def setup(tmp_path: Path, google: FakeGoogle, drive: Drive) -> Iterator[tuple[Config, Store]]:
    write_rclone_conf(tmp_path / "rclone.conf", google, scopes="drive", root_folder_id=drive.root)
    config = make_config(tmp_path, google)
    with Store(config.paths.database) as store:
        yield config, store


def clear(store: Store) -> None:
    """Drop every pending mark: what the next poll marks is then all a test sees."""
    store.clear_marks(m.id for m in store.pending_marks())
