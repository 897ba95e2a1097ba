"""``graylink db backup`` and ``db restore``: whole-database copies.

Both go through SQLite's online backup API, which copies one consistent
snapshot even while the service writes (a backup is a read transaction), and
writes into a live database as one transaction (a restore, so a reader never
sees half of it). A file copy would do neither: with WAL, the main file alone
can be stale or torn.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from dataclasses import dataclass

from graylink.errors import ConfigError, DatabaseError, GraylinkError
from graylink.store.db import COUNT_FOLDERS_SQL, Mark, Store
from graylink.store.readonlyfs import immutable_uri, on_read_only_fs
from graylink.store.schema import MIGRATIONS

BEFORE_RESTORE_SUFFIX = ".before-restore"
_COUNT_FILES_LINKS = ("SELECT count(*) FROM file", "SELECT count(*) FROM link")
REQUIRED_TABLES = frozenset({"applied_migration", "meta_value", "directory", "file", "dirty", "link", "link_dir"})


@dataclass(frozen=True)
class DbInfo:
    path: str
    migrations: tuple[str, ...]
    dirs: int
    files: int
    links: int


def _connect_ro(path: str) -> sqlite3.Connection:
    try:
        uri = "file:" + _quote(os.path.abspath(path)) + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True)
        conn.execute("PRAGMA busy_timeout = 10000")
        if on_read_only_fs(path):
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError:
                # A WAL database on a read-only filesystem: no shared-memory file
                # can be made there, so it is read as an immutable file.
                conn.close()
                conn = sqlite3.connect(immutable_uri(path), uri=True)
        return conn
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open {path}: {exc}") from None


def _quote(path: str) -> str:
    return path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")


def inspect_database(path: str) -> DbInfo:
    """Check that ``path`` is an intact graylink database this graylink can use."""
    if not os.path.isfile(path):
        what = "is not a file" if os.path.lexists(path) else "no such file"
        raise ConfigError(f"{path}: {what}")
    conn = _connect_ro(path)
    try:
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            missing = REQUIRED_TABLES - tables
            if missing:
                raise DatabaseError(f"{path} is not a graylink database (no table {sorted(missing)[0]})")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise DatabaseError(f"{path} is damaged ({check})")
            applied = tuple(str(r[0]) for r in conn.execute("SELECT name FROM applied_migration ORDER BY name"))
            known = {name for name, _ in MIGRATIONS}
            newer = sorted(set(applied) - known)
            if newer:
                raise DatabaseError(f"{path} was written by a newer graylink (schema {newer[-1]}); upgrade graylink")
            counts = [conn.execute(sql).fetchone()[0] for sql in (COUNT_FOLDERS_SQL, *_COUNT_FILES_LINKS)]
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(f"{path} is not a graylink database ({exc})") from None
    finally:
        conn.close()
    return DbInfo(path, applied, int(counts[0]), int(counts[1]), int(counts[2]))


def _copy_to_new_file(src: sqlite3.Connection, dest: str) -> None:
    """Copy ``src`` into a new standalone file at ``dest`` (atomically: temp + rename)."""
    folder = os.path.dirname(os.path.abspath(dest))
    fd, temp = tempfile.mkstemp(prefix=".graylink-backup-", suffix=".db", dir=folder)
    os.close(fd)
    try:
        out = sqlite3.connect(temp)
        try:
            src.backup(out)
            # A backup file stands alone: no -wal beside it is needed to read it.
            out.execute("PRAGMA journal_mode = DELETE")
        finally:
            out.close()
        os.chmod(temp, 0o600)
        os.replace(temp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def check_backup_args(database: str, dest: str, *, force: bool) -> None:
    """Refusals of ``db backup`` that are the user's to fix (exit 2, nothing written)."""
    if not os.path.exists(database):
        raise ConfigError(f"no database at {database}: nothing to back up")
    if os.path.isdir(dest):
        raise ConfigError(f"{dest} is a directory; name the backup file")
    if os.path.lexists(dest) and not force:
        raise ConfigError(f"{dest} exists; use --force to overwrite it")
    if not os.path.isdir(os.path.dirname(os.path.abspath(dest))):
        raise ConfigError(f"folder of {dest} does not exist")
    if os.path.realpath(dest) == os.path.realpath(database):
        raise ConfigError("the backup file cannot be the database itself")


def check_restore_args(database: str, backup: str) -> None:
    """Refusals of ``db restore`` that are the user's to fix, judged before the lock is taken."""
    if not os.path.isfile(backup):
        what = "is not a file" if os.path.lexists(backup) else "no such file"
        raise ConfigError(f"{backup}: {what}: nothing to restore")
    if os.path.lexists(database) and os.path.realpath(backup) == os.path.realpath(database):
        raise ConfigError("the file to restore is the database itself")


def backup_database(database: str, dest: str, *, force: bool = False) -> DbInfo:
    """Write a consistent copy of ``database`` to ``dest``; works while the service runs."""
    check_backup_args(database, dest, force=force)
    src = _connect_ro(database)
    try:
        _copy_to_new_file(src, dest)
    except (sqlite3.Error, OSError) as exc:
        raise GraylinkError(f"backup to {dest} failed: {getattr(exc, 'strerror', None) or exc}") from None
    finally:
        src.close()
    return inspect_database(dest)


def _usable(database: str) -> bool:
    try:
        conn = _connect_ro(database)
    except DatabaseError:
        return False
    try:
        return bool(conn.execute("PRAGMA quick_check").fetchone()[0] == "ok")
    except sqlite3.DatabaseError:
        return False
    finally:
        conn.close()


def _keep_copy(database: str, kept: str) -> None:
    current = _connect_ro(database)
    try:
        _copy_to_new_file(current, kept)
    finally:
        current.close()


def _copy_into_live(src: sqlite3.Connection, database: str) -> None:
    """Into the live file, as one transaction: its WAL stays coherent and a
    reader (status) sees the old or the new database, never a mix."""
    dst = sqlite3.connect(database)
    try:
        dst.execute("PRAGMA busy_timeout = 10000")
        src.backup(dst)
    finally:
        dst.close()


def restore_database(database: str, backup: str) -> tuple[DbInfo, str | None]:
    """Replace ``database`` with the contents of ``backup``. The caller holds the
    instance lock. Returns the backup's info and where the old database was kept."""
    check_restore_args(database, backup)
    info = inspect_database(backup)
    kept: str | None = None
    src = _connect_ro(backup)
    try:
        if not os.path.exists(database):
            os.makedirs(os.path.dirname(os.path.abspath(database)), exist_ok=True)
            _copy_to_new_file(src, database)
        elif _usable(database):
            kept = database + BEFORE_RESTORE_SUFFIX
            _keep_copy(database, kept)
            _copy_into_live(src, database)
        else:
            # A damaged database (the usual reason to restore) cannot be read
            # by the backup API: its files are moved aside as they are.
            kept = database + BEFORE_RESTORE_SUFFIX
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(database + suffix):
                    os.replace(database + suffix, kept + suffix)
            _copy_to_new_file(src, database)
    except (sqlite3.Error, OSError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        where = f"; the old database is kept as {kept}" if kept else ""
        raise GraylinkError(f"restore from {backup} failed: {reason}{where}") from None
    finally:
        src.close()
    # Bring an older backup's schema forward, then ask for a full verification:
    # the source and the link tree moved on since the backup was taken, and the
    # next reconcile re-lists everything and converges the links to it.
    with Store(database) as store, store.atomic():
        store.add_marks([Mark(b"", "restore", recursive=True)])
    return info, kept
