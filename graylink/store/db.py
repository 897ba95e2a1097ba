"""The SQLite database: the store, dirty marks, metadata (the schema is in :mod:`graylink.store.schema`).

Paths are stored as BLOBs holding the exact bytes the filesystem gave us,
relative to the source root (the root itself is ``b""``). Names that are not
valid UTF-8 or that contain newlines therefore round-trip exactly; a subtree
is a byte range (``p`` or ``p/...``), which SQLite answers from the index.
"""

from __future__ import annotations

import itertools
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import peewee as pw

# SQLITE_ERRORS and database_failure are re-exported: the store's callers import them from here.
from graylink import story
from graylink.errors import DatabaseError
from graylink.store.failures import SQLITE_ERRORS as SQLITE_ERRORS
from graylink.store.failures import chain
from graylink.store.failures import database_failure as database_failure
from graylink.store.readonlyfs import immutable_uri, on_read_only_fs, read_only_refusal
from graylink.store.schema import MIGRATIONS, MODELS, AppliedMigration, MetaValue
from graylink.system.text import one_line

log = logging.getLogger(__name__)

META_LAST_FULL = "last_full_verify"  # when everything was last listed and checked


# -------------------------------------------------------------- path ranges


def subtree_bounds(path: bytes) -> tuple[bytes, bytes]:
    """The half-open byte range ``[lo, hi)`` of every path strictly below ``path``."""
    if not path:
        return b"", b"\xff" * 8  # the root: every non-empty relative path
    return path + b"/", path + b"0"  # '0' is the byte after '/'


def parent_of(path: bytes) -> bytes:
    head, _, _ = path.rpartition(b"/")
    return head


def join(parent: bytes, name: bytes) -> bytes:
    return parent + b"/" + name if parent else name


def normalize_rel(path: bytes) -> bytes:
    """``a//b/./c/`` → ``a/b/c``; refuses ``..`` so a mark can never leave the root."""
    parts = [p for p in path.split(b"/") if p and p != b"."]
    if b".." in parts:
        raise ValueError(f"path leaves the root: {path!r}")
    return b"/".join(parts)


PATH_MAX = 4096  # Linux: the longest path a system call takes, with its NUL
NAME_MAX = 255  # Linux: the longest name in a folder, in bytes


def mark_problem(path: bytes) -> str:
    """Why a dirty mark at ``path`` (relative to the source) cannot be used; "" when it can.

    Marks come from the walk, the Drive feed, webhooks and older graylinks; one
    that no system call can take (a NUL, a name too long) or that leaves the
    root (``..``) must be dropped, never retried: it would fail every cycle. A
    path longer than ``PATH_MAX`` is kept: such folders exist (made by relative
    steps), the walk meets them, and the cycle reports them as unlistable each
    run, as it should, instead of forgetting them; once deleted, the listing
    finds them gone one name at a time and they leave the index in one run."""
    if not isinstance(path, bytes):
        return "not a path"
    if b"\0" in path:
        return "holds a NUL byte"
    if path != normalize_rel_quiet(path):
        return "is not a plain relative path (a leading '/', '.', '..' or an empty name)"
    if any(len(part) > NAME_MAX for part in path.split(b"/")):
        return f"has a name longer than {NAME_MAX} bytes"
    return ""


def normalize_rel_quiet(path: bytes) -> bytes | None:
    """:func:`normalize_rel`, None for a path that leaves the root."""
    try:
        return normalize_rel(path)
    except ValueError:
        return None


def shown_rel(path: bytes, limit: int = 300) -> str:
    """A path for one log line: bytes that are not UTF-8 and control characters escaped."""
    return one_line(path[:limit].decode("utf-8", "backslashreplace") + ("…" if len(path) > limit else ""))


# -------------------------------------------------------------------- marks


@dataclass(frozen=True, slots=True)
class Mark:
    """A dirty subtree: ``recursive`` covers everything below ``path``, else
    only its direct entries; ``indexed`` says the index is already fresh for it."""

    path: bytes
    reason: str
    recursive: bool = True
    indexed: bool = False


@dataclass(frozen=True, slots=True)
class StoredMark:
    id: int
    path: bytes
    reason: str
    marked_at: float
    recursive: bool
    indexed: bool


_ROWS_PER_INSERT = 100  # rows per multi-row INSERT (Store.insert_many)

# The root row (the source itself) is not one of the library's folders.
COUNT_FOLDERS_SQL = "SELECT count(*) FROM directory WHERE path != x''"


# -------------------------------------------------------------------- store


class Store:
    """One open graylink database."""

    def __init__(self, path: str, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self.db = pw.SqliteDatabase(None)
        self._open()

    # -- lifecycle

    def _open(self) -> None:
        if self.readonly:
            if not os.path.exists(self.path):
                raise DatabaseError(f"no database at {self.path}: run 'graylink reconcile' first")
        else:
            if on_read_only_fs(self.path):
                raise read_only_refusal(self.path)
            parent = os.path.dirname(os.path.abspath(self.path))
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(f"cannot create database folder {parent}: {exc.strerror}") from None
        # Reads through a memory map skip a copy per page: a no-change walk reads
        # every folder row, and is ~15 % faster for it. The database belongs on
        # a local disk (WAL needs one anyway): a mapped read fails only when
        # that disk itself does.
        pragmas: dict[str, object] = {
            "foreign_keys": 1,
            "busy_timeout": 10000,
            "cache_size": -16000,
            "mmap_size": 64 << 20,
        }
        if self.readonly:
            pragmas["query_only"] = 1  # a reader (status, snapshot, dry run) cannot write, even by mistake
        else:
            pragmas.update({"journal_mode": "wal", "synchronous": "normal"})
        try:
            try:
                self._connect(self.path, pragmas)
            except (pw.DatabaseError, sqlite3.DatabaseError):
                if not (self.readonly and on_read_only_fs(self.path)):
                    raise
                # A WAL database on a read-only filesystem: SQLite cannot make
                # its shared-memory file, so it is read as an immutable file.
                self._close_quietly()
                self._connect(immutable_uri(self.path), pragmas, uri=True)
        except (pw.DatabaseError, sqlite3.DatabaseError) as exc:
            self._close_quietly()
            raise DatabaseError(
                f"{self.path} is not a usable graylink database ({exc}); "
                "restore a backup with 'graylink db restore FILE' or move it away to rebuild by a full scan"
            ) from None
        except pw.OperationalError as exc:  # pragma: no cover - covered by the DatabaseError branch on most builds
            self._close_quietly()
            raise DatabaseError(f"cannot open database {self.path}: {exc}") from None
        self.migrate()

    def _connect(self, name: str, pragmas: dict[str, object], *, uri: bool = False) -> None:
        self.db.init(name, pragmas=pragmas, check_same_thread=False, uri=uri)
        self.db.bind(MODELS, bind_refs=False, bind_backrefs=False)
        self.db.connect()
        self.db.execute_sql("SELECT count(*) FROM sqlite_master").fetchone()

    def _close_quietly(self) -> None:
        with suppress(pw.PeeweeException):
            self.db.close()

    def close(self) -> None:
        if not self.db.is_closed():
            self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- migrations

    def applied_migrations(self) -> list[str]:
        if not self.db.table_exists("applied_migration"):
            return []
        return [row[0] for row in self.db.execute_sql("SELECT name FROM applied_migration")]

    def migrate(self) -> None:
        applied = set(self.applied_migrations())
        known = [name for name, _ in MIGRATIONS]
        unknown = applied - set(known)
        if unknown:
            raise DatabaseError(
                f"{self.path} was written by a newer graylink (schema {sorted(unknown)[-1]}); upgrade graylink"
            )
        pending = [(name, fn) for name, fn in MIGRATIONS if name not in applied]
        if not pending:
            return
        if self.readonly:
            raise DatabaseError(f"{self.path} needs an upgrade: run 'graylink reconcile' once")
        with self.db.atomic():
            self.db.create_tables([MetaValue, AppliedMigration])
            for name, fn in pending:
                log.debug("applying migration %s", name)
                fn(self.db)
                AppliedMigration.insert(name=name, applied_at=time.time()).execute()
            self.db.execute_sql(f"PRAGMA user_version = {len(known)}")

    @property
    def schema_version(self) -> int:
        return len(self.applied_migrations())

    # -- transactions

    @contextmanager
    def atomic(self) -> Iterator[None]:
        try:
            with self.db.atomic():
                yield
        except SQLITE_ERRORS as exc:
            # SQLite rolls a transaction back by itself on some errors (SQLITE_FULL,
            # SQLITE_IOERR); peewee's own ROLLBACK then fails with "cannot rollback -
            # no transaction is active", hiding the reason. Raise the reason.
            if "no transaction is active" not in str(exc):
                raise
            for cause in chain(exc):
                if isinstance(cause, SQLITE_ERRORS) and "no transaction is active" not in str(cause):
                    raise cause from None
            raise

    def execute(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        cursor: sqlite3.Cursor = self.db.execute_sql(sql, params)
        return cursor

    def executemany(self, sql: str, rows: Iterable[tuple[object, ...]]) -> None:
        self.db.connection().executemany(sql, rows)

    def insert_many(self, head: str, width: int, rows: Iterable[tuple[object, ...]]) -> None:
        """``head VALUES (…), (…), …``: many rows a statement.

        ``executemany`` pays SQLite's and the sqlite3 module's per-statement
        work for every row; a hundred rows a statement pay it once (writing a
        first run's index and links is ~40 % faster). 100 rows of up to 9
        columns stay under the 999 parameters of the oldest SQLite builds."""
        pending = rows if isinstance(rows, list) else list(rows)
        if not pending:
            return
        one = "(" + ",".join("?" * width) + ")"
        full = len(pending) - len(pending) % _ROWS_PER_INSERT
        conn = self.db.connection()
        if full:
            sql = f"{head} VALUES {','.join([one] * _ROWS_PER_INSERT)}"
            conn.executemany(
                sql,
                (
                    tuple(itertools.chain.from_iterable(pending[i : i + _ROWS_PER_INSERT]))
                    for i in range(0, full, _ROWS_PER_INSERT)
                ),
            )
        if full < len(pending):
            rest = pending[full:]
            conn.execute(f"{head} VALUES {','.join([one] * len(rest))}", tuple(itertools.chain.from_iterable(rest)))

    # -- metadata

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.execute("SELECT value FROM meta_value WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.execute("INSERT OR REPLACE INTO meta_value (key, value) VALUES (?, ?)", (key, value))

    # -- dirty marks

    def add_marks(self, marks: Iterable[Mark]) -> int:
        now = time.time()
        marks = list(marks)
        rows = [(m.path, m.reason, now, int(m.recursive), int(m.indexed)) for m in marks]
        if rows and story.on():
            story.marked(marks)
        if rows:
            self.executemany(
                "INSERT INTO dirty (path, reason, marked_at, recursive, indexed) VALUES (?, ?, ?, ?, ?)", rows
            )
        return len(rows)

    def pending_marks(self) -> list[StoredMark]:
        cursor = self.execute("SELECT id, path, reason, marked_at, recursive, indexed FROM dirty ORDER BY id")
        return [StoredMark(row[0], bytes(row[1]), row[2], row[3], bool(row[4]), bool(row[5])) for row in cursor]

    def usable_marks(self, marks: list[StoredMark], *, drop: bool) -> list[StoredMark]:
        """``marks`` without those :func:`mark_problem` refuses: each is logged once and,
        with ``drop``, deleted, so a bad mark from any source never blocks the queue."""
        bad = {m.id: why for m in marks if (why := mark_problem(m.path))}
        if not bad:
            return marks
        for m in marks:
            if m.id in bad:
                log.warning(
                    "dropped a dirty mark (from %s) that cannot be used: %s %s", m.reason, shown_rel(m.path), bad[m.id]
                )
        if drop:
            with self.atomic():
                self.clear_marks(bad)
        return [m for m in marks if m.id not in bad]

    def set_marks_indexed(self, ids: Iterable[int]) -> None:
        self.executemany("UPDATE dirty SET indexed = 1 WHERE id = ?", ((i,) for i in ids))

    def clear_marks(self, ids: Iterable[int]) -> None:
        self.executemany("DELETE FROM dirty WHERE id = ?", ((i,) for i in ids))

    # -- counts

    def count(self, table: str) -> int:
        if table not in {"directory", "file", "dirty", "link", "link_dir", "emby_queue", "problem"}:
            raise ValueError(table)
        return int(self.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def total_changes(self) -> int:
        """Rows inserted, changed or deleted through this connection since it opened."""
        return int(self.db.connection().total_changes)

    def count_folders(self) -> int:
        """Folders below the source, as ``status``, ``snapshot`` and ``db backup`` all count them."""
        return int(self.execute(COUNT_FOLDERS_SQL).fetchone()[0])

    def is_empty(self) -> bool:
        return self.execute("SELECT 1 FROM directory LIMIT 1").fetchone() is None
