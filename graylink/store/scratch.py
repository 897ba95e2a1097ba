"""The scratch database of a dry run: a throw-away copy, so the real one is never written."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from graylink.errors import DiskFull
from graylink.store.db import Store
from graylink.store.failures import SQLITE_ERRORS, is_disk_full
from graylink.system.fsinfo import describe


@contextmanager
def scratch_copy(store: Store | None) -> Iterator[Store]:
    """A copy of ``store`` (or an empty database when None) in a temporary folder ($TMPDIR).

    Out of space there, the error names the scratch folder, not the real
    database (which a dry run never writes)."""
    with tempfile.TemporaryDirectory(prefix="graylink-dry-run-") as tmp:
        path = os.path.join(tmp, "dry-run.db")
        try:
            if store is not None:
                dst = sqlite3.connect(path)
                try:
                    store.db.connection().backup(dst)
                finally:
                    dst.close()
            copy = Store(path)
            try:
                yield copy
            finally:
                copy.close()
        except SQLITE_ERRORS as exc:
            if not is_disk_full(exc):
                raise
            where = f"{os.path.dirname(tmp)} ({describe(tmp)})"
            raise DiskFull(
                f"the dry run's scratch copy of the database ran out of space in {where}: "
                "set TMPDIR to a folder with room; the real database was not touched"
            ) from None
