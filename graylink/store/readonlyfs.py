"""A database on a read-only filesystem (EROFS): read it, refuse to write it, in one line."""

from __future__ import annotations

import os
import urllib.parse

from graylink.errors import DatabaseError


def on_read_only_fs(path: str) -> bool:
    """Whether the filesystem that holds (or would hold) ``path`` is mounted read-only."""
    folder = os.path.dirname(os.path.abspath(path))
    while folder and not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def read_only_refusal(path: str) -> DatabaseError:
    return DatabaseError(
        f"database {path} is on a read-only filesystem: reconcile needs to write it "
        "('graylink status' and 'graylink snapshot' can still read it)"
    )


def immutable_uri(path: str) -> str:
    """``immutable=1`` ignores the write-ahead log: safe only when it holds nothing."""
    try:
        wal = os.path.getsize(path + "-wal")
    except OSError:
        wal = 0
    if wal:
        raise DatabaseError(
            f"{path} is on a read-only filesystem with unfinished writes in {path}-wal; "
            "it can be read once its filesystem is writable again"
        )
    return "file:" + urllib.parse.quote(os.path.abspath(path)) + "?immutable=1"
