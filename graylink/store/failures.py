"""What SQLite's errors mean for the user: damage, a busy database, a full disk, or a bug of ours."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator

import peewee as pw

from graylink.errors import DatabaseError, DiskFull, GraylinkError
from graylink.system.fsinfo import describe

# What SQLite raises, bare (raw cursor calls) or wrapped by peewee.
SQLITE_ERRORS: tuple[type[Exception], ...] = (sqlite3.DatabaseError, pw.DatabaseError)
_BUSY_ERRORS = (sqlite3.OperationalError, pw.OperationalError)
_BUG_ERRORS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, pw.IntegrityError, pw.ProgrammingError)


def chain(exc: BaseException) -> Iterator[BaseException]:
    """An error, what it wraps (peewee passes SQLite's error as its first argument) and what caused it."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend([current.__cause__, current.__context__])
        todo.extend(arg for arg in current.args if isinstance(arg, BaseException))


def is_disk_full(exc: BaseException) -> bool:
    """Whether SQLite failed because the database's filesystem is full (SQLITE_FULL)."""
    for error in chain(exc):
        if getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return True
        if isinstance(error, SQLITE_ERRORS) and "database or disk is full" in str(error):
            return True
    return False


def disk_full_error(path: str, what: str = "the database") -> DiskFull:
    where = describe(os.path.dirname(os.path.abspath(path)))
    return DiskFull(
        f"the filesystem of {what} ({where}) is full: {path} cannot grow; the run stopped and nothing "
        "was lost, free space there and run again"
    )


def database_failure(exc: Exception, path: str) -> GraylinkError | None:
    """The one-line error for a failure SQLite raised mid-run, or None for a bug of ours.

    A database can pass the check at open and still be damaged in a page read
    later ("database disk image is malformed"): the user then needs the way
    back, not a traceback. A full filesystem is neither damage nor bad
    configuration: exit 1, and the next run with space goes on.
    """
    if is_disk_full(exc):
        return disk_full_error(path)
    if isinstance(exc, _BUG_ERRORS):
        return None
    if isinstance(exc, _BUSY_ERRORS):
        return DatabaseError(f"database {path}: {exc}")
    return DatabaseError(
        f"{path} is damaged ({exc}); restore a backup with 'graylink db restore FILE' "
        "or move it away to rebuild by a full scan"
    )
