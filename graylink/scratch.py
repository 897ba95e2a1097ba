"""The scratch database of a dry run: a throw-away copy, so the real one is never written."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from graylink.db import Store


@contextmanager
def scratch_copy(store: Store | None) -> Iterator[Store]:
    """A copy of ``store`` (or an empty database when None) in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="graylink-dry-run-") as tmp:
        path = os.path.join(tmp, "dry-run.db")
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
