"""The service's database going away under it: noticed, said, and recreated.

A database deleted while the loop runs (a cleanup script, ``rm -r`` of the
state folder, a replaced volume) stays readable and writable through the open
connection, so nothing fails: the loop would keep writing into a file nobody
can see, ``status`` would say "no database yet", and the media-server updates
still queued would die with it. So before each job the loop compares the file
at the database's path with the one it opened (device and inode).

When they differ, the service does what a supervised daemon is expected to do
when it can: it goes on. What only the database knew — which links graylink
made, the media-server updates not yet delivered, whose library it is — is
carried over from the old file (still open) into a new database at the path,
and a full verification rebuilds the index from the source (the links on disk
are adopted, not made again). What cannot be carried is named in an ERROR line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass

from graylink.config import Config
from graylink.errors import GraylinkError
from graylink.links import ownership
from graylink.store.db import SQLITE_ERRORS, Mark, Store
from graylink.store.lock import InstanceLock
from graylink.store.readonlyfs import on_read_only_fs, read_only_refusal

log = logging.getLogger(__name__)

# Rebuilt from the source by the full verification, or history of the loop:
# everything else in the database is carried over to a new one.
NOT_CARRIED = frozenset(
    {"directory", "file", "dirty", "job_run", "applied_migration", "drive_folder", "drive_item", "drive_activity"}
)
# A table whose rows the new database may have already: its own rows win.
KEEP_NEW = frozenset({"meta_value"})
QUEUE_TABLE = "emby_queue"
_CARRY_ERRORS: tuple[type[Exception], ...] = (OSError, *SQLITE_ERRORS)


def file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def what_happened(store: Store, opened: tuple[int, int] | None) -> str | None:
    """How the database file at the store's path differs from the one opened, or None."""
    now = file_id(store.path)
    if now == opened:
        return None
    return "was deleted" if now is None else "was replaced by another file"


@dataclass(frozen=True)
class Carried:
    tables: dict[str, int]  # rows carried over, per table
    lost: str = ""  # why nothing could be carried (an ERROR was logged)

    @property
    def queued(self) -> int:
        return self.tables.get(QUEUE_TABLE, 0)


def _tables(store: Store, schema: str) -> list[str]:
    rows = store.execute(f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    return sorted(str(row[0]) for row in rows)


def _carry_path(database: str) -> str:
    folder = os.path.dirname(os.path.abspath(database))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        folder = tempfile.gettempdir()
    fd, path = tempfile.mkstemp(prefix=".graylink-carry-", suffix=".db", dir=folder)
    os.close(fd)
    os.unlink(path)  # SQLite makes it: an empty file is not a database to attach
    return path


def _save(old: Store, carry: str) -> dict[str, int]:
    """Copy what is carried from the old (vanished, still open) database into ``carry``."""
    old.execute("ATTACH DATABASE ? AS carry", (carry,))
    try:
        counts: dict[str, int] = {}
        with old.atomic():
            for table in _tables(old, "main"):
                if table in NOT_CARRIED:
                    continue
                old.execute(f'CREATE TABLE carry."{table}" AS SELECT * FROM main."{table}"')
                counts[table] = int(old.execute(f'SELECT count(*) FROM carry."{table}"').fetchone()[0])
        return counts
    finally:
        old.execute("DETACH DATABASE carry")


def _columns(store: Store, schema: str, table: str) -> list[str]:
    """The table's columns, less an INTEGER PRIMARY KEY (the new database numbers its own rows)."""
    info = store.execute(f'PRAGMA {schema}.table_info("{table}")').fetchall()
    keys = [row for row in info if row[5]]
    skip = {keys[0][1]} if len(keys) == 1 and str(keys[0][2]).upper() == "INTEGER" else set()
    return [str(row[1]) for row in info if row[1] not in skip]


def _restore(new: Store, carry: str) -> None:
    new.execute("ATTACH DATABASE ? AS carry", (carry,))
    try:
        with new.atomic():
            present = set(_tables(new, "main"))
            for table in _tables(new, "carry"):
                if table not in present:
                    continue
                # The new table's columns decide (a copy made by CREATE TABLE AS
                # has no primary key to tell the row number by).
                carried = {str(row[1]) for row in new.execute(f'PRAGMA carry.table_info("{table}")')}
                cols = ", ".join(f'"{c}"' for c in _columns(new, "main", table) if c in carried)
                verb = "INSERT OR IGNORE" if table in KEEP_NEW else "INSERT OR REPLACE"
                new.execute(f'{verb} INTO main."{table}" ({cols}) SELECT {cols} FROM carry."{table}"')
            new.add_marks([Mark(b"", "database-lost")])
    finally:
        new.execute("DETACH DATABASE carry")


JOURNALS = ("-wal", "-shm")


def journal_ids(database: str) -> dict[str, tuple[int, int] | None]:
    return {suffix: file_id(database + suffix) for suffix in JOURNALS}


def _remove_stale_journals(database: str, old: dict[str, tuple[int, int] | None]) -> None:
    """Remove the old database's ``-wal`` / ``-shm`` still at the path (a reader
    kept them): SQLite would replay that log into the new database, or share
    that memory index with it. Beside a missing database any of them is stale;
    beside a replacement, only the files the old database used."""
    gone = not os.path.lexists(database)
    for suffix in (*JOURNALS, "-journal"):
        now = file_id(database + suffix)
        if now is None or not (gone or now == old.get(suffix)):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(database + suffix)
            log.info("removed %s%s, left over from the vanished database", database, suffix)


def recreate(old: Store, journals: dict[str, tuple[int, int] | None] | None = None) -> tuple[Store, Carried]:
    """Close ``old`` (whose file vanished) and open a database at its path,
    carrying over what only the database knew. Raises GraylinkError when no
    database can be opened there."""
    path = old.path
    carry = ""
    counts: dict[str, int] = {}
    lost = ""
    try:
        carry = _carry_path(path)
        counts = _save(old, carry)
    except _CARRY_ERRORS as exc:
        lost = f"{exc.__class__.__name__}: {exc}"
        counts = {}
    old.close()
    old.db.autoconnect = False  # a late use of the old store must fail, not open the new file
    _remove_stale_journals(path, journals or {})
    try:
        new = Store(path)
        if counts:
            _restore(new, carry)
        else:
            with new.atomic():
                new.add_marks([Mark(b"", "database-lost")])
    except SQLITE_ERRORS as exc:
        raise GraylinkError(f"cannot recreate the database {path}: {exc}") from None
    finally:
        if carry:
            with contextlib.suppress(OSError):
                os.unlink(carry)
                os.unlink(carry + "-journal")
    return new, Carried(counts, lost)


class CannotGoOn(GraylinkError):
    """The loop must stop: its database or lock cannot be had again."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Guard:
    """The service's check, before each job, that its lock and database are the files it opened."""

    def __init__(self, store: Store, lock: InstanceLock | None = None) -> None:
        self.lock = lock
        self.opened = file_id(store.path)
        self.journals = journal_ids(store.path)

    def check(self, store: Store, config: Config) -> Store:
        """The store to go on with (``store``, or a new one); raises CannotGoOn."""
        if on_read_only_fs(store.path):
            # Every write would fail from now on (a disk the kernel remounted
            # read-only after errors does not come back by itself).
            raise CannotGoOn(str(read_only_refusal(store.path)))
        if self.lock is not None and self.lock.lost():
            try:
                self.lock.reacquire()
            except GraylinkError as exc:
                raise CannotGoOn(f"the lock file {self.lock.path} went away under the loop and {exc}") from None
            log.error("the lock file %s went away under the loop; it is locked again", self.lock.path)
        happened = what_happened(store, self.opened)
        if happened is None:
            self.journals = journal_ids(store.path)  # the files a replacement must not inherit
            return store
        return self._recreate(store, config, happened)

    def _recreate(self, store: Store, config: Config, happened: str) -> Store:
        path = store.path
        try:
            queued = store.count(QUEUE_TABLE)
        except Exception:  # a damaged old file: the carry-over says what it lost
            queued = 0
        log.error(
            "database %s %s under the loop: graylink stops writing into the old file and opens a new one; "
            "a full verification rebuilds the index",
            path,
            happened,
        )
        try:
            new, carried = recreate(store, self.journals)
        except GraylinkError as exc:
            raise CannotGoOn(f"{exc}: {queued} queued media-server updates are lost") from None
        self.opened = file_id(path)
        self.journals = journal_ids(path)
        if carried.lost:
            log.error(
                "nothing could be carried over from the old database (%s): %d queued media-server updates "
                "are lost; the links on disk are adopted by the full verification",
                carried.lost,
                queued,
            )
        else:
            log.info(
                "database %s opened again: %d links graylink made and %d queued media-server updates carried over",
                path,
                carried.tables.get("link", 0),
                carried.queued,
            )
        refusal = ownership.mismatch(config, new)
        if refusal is not None:
            new.close()
            raise CannotGoOn(refusal, exit_code=2)
        return new
