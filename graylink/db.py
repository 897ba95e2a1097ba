"""The SQLite database: peewee models, forward migrations, dirty marks, metadata.

Paths are stored as BLOBs holding the exact bytes the filesystem gave us,
relative to the source root (the root itself is ``b""``). Names that are not
valid UTF-8 or that contain newlines therefore round-trip exactly; a subtree
is a byte range (``p`` or ``p/...``), which SQLite answers from the index.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import peewee as pw

# SQLITE_ERRORS and database_failure are re-exported: the store's callers import them from here.
from graylink.dbfailures import SQLITE_ERRORS as SQLITE_ERRORS
from graylink.dbfailures import chain
from graylink.dbfailures import database_failure as database_failure
from graylink.errors import DatabaseError
from graylink.readonlyfs import immutable_uri, on_read_only_fs, read_only_refusal

log = logging.getLogger(__name__)

META_LAST_FULL = "last_full_verify"  # when everything was last listed and checked


# ------------------------------------------------------------------- models


class _Base(pw.Model):
    class Meta:
        legacy_table_names = False


class MetaValue(_Base):
    key = pw.TextField(primary_key=True)
    value = pw.TextField()


class AppliedMigration(_Base):
    name = pw.TextField(primary_key=True)
    applied_at = pw.FloatField()


class Directory(_Base):
    path = pw.BlobField(unique=True)
    parent_id = pw.IntegerField(null=True, index=True)
    mtime_ns = pw.BigIntegerField(default=0)
    fingerprint = pw.BlobField(null=True)
    listed_ns = pw.BigIntegerField(default=0)
    videos = pw.IntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])  # wanted files here, per the last plan


class IndexedFile(_Base):
    directory = pw.ForeignKeyField(Directory, on_delete="CASCADE", column_name="dir_id", index=False)
    name = pw.BlobField()
    size = pw.BigIntegerField()
    mtime_ns = pw.BigIntegerField()

    class Meta:
        # Keyed by (folder, name) without a rowid: one B-tree to write, not two.
        table_name = "file"
        primary_key = pw.CompositeKey("directory", "name")
        without_rowid = True


class DirtyMark(_Base):
    path = pw.BlobField(index=True)
    reason = pw.TextField()
    marked_at = pw.FloatField()
    recursive = pw.BooleanField(default=True)
    indexed = pw.BooleanField(default=False)

    class Meta:
        table_name = "dirty"


class OwnedLink(_Base):
    dir = pw.BlobField()
    name = pw.BlobField()
    target = pw.BlobField()
    source = pw.BlobField()

    class Meta:
        table_name = "link"
        primary_key = pw.CompositeKey("dir", "name")
        without_rowid = True


class LinkDir(_Base):
    path = pw.BlobField(primary_key=True)

    class Meta:
        table_name = "link_dir"


class EmbyQueued(_Base):
    """A link change the media server has not been told about yet (graylink.notify.emby)."""

    path = pw.BlobField()  # absolute path of the link in the link tree
    op = pw.TextField()  # create | repair | prune
    queued_at = pw.FloatField()
    server = pw.TextField(
        default="emby", constraints=[pw.SQL("DEFAULT 'emby'")]
    )  # whose place in the queue: emby | plex (graylink.notify.queue)

    class Meta:
        table_name = "emby_queue"


class JobRun(_Base):
    """The service loop's jobs: the last run of each, and when it runs next (graylink.service)."""

    name = pw.TextField(primary_key=True)
    last_start = pw.FloatField(null=True)
    duration_s = pw.FloatField(null=True)
    ok = pw.BooleanField(null=True)
    result = pw.TextField(default="")
    runs = pw.IntegerField(default=0)
    failures = pw.IntegerField(default=0)
    next_run = pw.FloatField(null=True)  # NULL while no loop runs

    class Meta:
        table_name = "job_run"


MODELS: list[type[pw.Model]] = [
    MetaValue,
    AppliedMigration,
    Directory,
    IndexedFile,
    DirtyMark,
    OwnedLink,
    LinkDir,
    EmbyQueued,
    JobRun,
]


# --------------------------------------------------------------- migrations


def _m0001_initial(db: pw.SqliteDatabase) -> None:
    db.create_tables([Directory, IndexedFile, DirtyMark, OwnedLink, LinkDir])


def _m0002_emby_queue(db: pw.SqliteDatabase) -> None:
    db.create_tables([EmbyQueued])


def _m0002_drive(db: pw.SqliteDatabase) -> None:
    # The Drive feed's own state: folder ID -> path under the source root (so a
    # folder costs one files.get, ever), and the keys of activities already
    # handled (so the overlap of consecutive queries marks nothing twice).
    db.execute_sql("CREATE TABLE drive_folder (id TEXT PRIMARY KEY, path BLOB NOT NULL)")
    db.execute_sql("CREATE INDEX drive_folder_path ON drive_folder (path)")
    db.execute_sql("CREATE TABLE drive_activity (key TEXT PRIMARY KEY, time_ms INTEGER NOT NULL)")
    db.execute_sql("CREATE INDEX drive_activity_time ON drive_activity (time_ms)")


def _m0004_service(db: pw.SqliteDatabase) -> None:
    db.create_tables([JobRun])


def _m0005_problems(db: pw.SqliteDatabase) -> None:
    # Open conflicts and failed actions (graylink.problems), one per link path.
    db.execute_sql(
        "CREATE TABLE problem (link BLOB PRIMARY KEY, kind TEXT NOT NULL, op TEXT NOT NULL, "
        "detail TEXT NOT NULL, first_seen REAL NOT NULL, last_seen REAL NOT NULL) WITHOUT ROWID"
    )


def _m0006_queue_server(db: pw.SqliteDatabase) -> None:
    # One row per change and server: each server's updates leave the queue
    # only after that server's 2xx. Rows queued before Plex were Emby's. (A new
    # database got the column from the model in 0002 already.)
    columns = {row[1] for row in db.execute_sql("PRAGMA table_info(emby_queue)").fetchall()}
    if "server" not in columns:
        db.execute_sql("ALTER TABLE emby_queue ADD COLUMN server TEXT NOT NULL DEFAULT 'emby'")
    db.execute_sql("CREATE INDEX emby_queue_server ON emby_queue (server, id)")


def _m0007_drive_item(db: pw.SqliteDatabase) -> None:
    # What the Drive feed knows of each item it met, files too: its path under
    # the source root (NULL: outside the root), so that a move, a rename, a
    # trash or a permanent delete marks the folder the item left.
    db.execute_sql(
        "CREATE TABLE drive_item (id TEXT PRIMARY KEY, path BLOB, folder INTEGER NOT NULL, "
        "trashed INTEGER NOT NULL DEFAULT 0)"
    )
    db.execute_sql("CREATE INDEX drive_item_path ON drive_item (path)")
    db.execute_sql("INSERT INTO drive_item (id, path, folder) SELECT id, path, 1 FROM drive_folder")
    db.execute_sql("DROP TABLE drive_folder")


def _m0008_arr_wait(db: pw.SqliteDatabase) -> None:
    # Folders a Sonarr / Radarr webhook named whose files have not reached the
    # mount yet (graylink.web.arr): re-marked until they appear or time runs out.
    db.execute_sql(
        "CREATE TABLE arr_wait (folder BLOB PRIMARY KEY, files TEXT NOT NULL, "
        "origin TEXT NOT NULL, since REAL NOT NULL, until REAL NOT NULL)"
    )


# Forward migrations, applied in order, each once, by name. Append only: a
# database records the names it has, so a newer graylink knows what to add and
# an older one can tell that a database is newer than itself.
MIGRATIONS: list[tuple[str, Callable[[pw.SqliteDatabase], None]]] = [
    ("0001_initial", _m0001_initial),
    ("0002_emby_queue", _m0002_emby_queue),
    ("0002_drive", _m0002_drive),
    ("0004_service", _m0004_service),
    ("0005_problems", _m0005_problems),
    ("0006_queue_server", _m0006_queue_server),
    ("0007_drive_item", _m0007_drive_item),
    ("0008_arr_wait", _m0008_arr_wait),
]

SCHEMA_VERSION = len(MIGRATIONS)


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

    # -- metadata

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.execute("SELECT value FROM meta_value WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.execute("INSERT OR REPLACE INTO meta_value (key, value) VALUES (?, ?)", (key, value))

    # -- dirty marks

    def add_marks(self, marks: Iterable[Mark]) -> int:
        now = time.time()
        rows = [(m.path, m.reason, now, int(m.recursive), int(m.indexed)) for m in marks]
        if rows:
            self.executemany(
                "INSERT INTO dirty (path, reason, marked_at, recursive, indexed) VALUES (?, ?, ?, ?, ?)", rows
            )
        return len(rows)

    def pending_marks(self) -> list[StoredMark]:
        cursor = self.execute("SELECT id, path, reason, marked_at, recursive, indexed FROM dirty ORDER BY id")
        return [StoredMark(row[0], bytes(row[1]), row[2], row[3], bool(row[4]), bool(row[5])) for row in cursor]

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
