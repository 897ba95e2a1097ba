"""The file index: what the source holds, as last listed.

Reads are one query per directory (or one streaming query per subtree);
writes are batched with executemany inside one transaction per batch of
directories — never a query per file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from graylink.store.db import Store, subtree_bounds

FileStat = tuple[int, int]  # (size, mtime_ns)


@dataclass(slots=True)
class FileDiff:
    added: dict[bytes, FileStat] = field(default_factory=dict)
    changed: dict[bytes, FileStat] = field(default_factory=dict)
    removed: list[bytes] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def compare_files(indexed: Mapping[bytes, FileStat], current: Mapping[bytes, FileStat]) -> FileDiff:
    """What changed in one directory: added, changed (size or mtime) and removed files."""
    diff = FileDiff()
    for name, stat in current.items():
        old = indexed.get(name)
        if old is None:
            diff.added[name] = stat
        elif old != stat:
            diff.changed[name] = stat
    diff.removed = [name for name in indexed if name not in current]
    return diff


@dataclass(slots=True)
class DirRow:
    id: int
    mtime_ns: int
    fingerprint: bytes | None
    listed_ns: int


@dataclass(slots=True)
class DirUpdate:
    """Everything to write for one listed directory."""

    rel: bytes
    dir_id: int
    parent_id: int | None
    is_new: bool
    mtime_ns: int
    fingerprint: bytes
    listed_ns: int
    diff: FileDiff
    removed_subdirs: list[bytes] = field(default_factory=list)


SETTLE_NEW = "new"  # a file first seen while (maybe) still being written: its Created waits
SETTLE_CHANGED = "changed"  # a file whose size or mtime changed under its name: a Modified waits


class Index:
    """Queries and batched writes on the directory and file tables.

    ``settle_ns``: a file first seen with an mtime younger than this (against
    the moment its folder was listed) may still be written; it goes on the
    ``settling`` book (graylink.reconcile.settle), as does every file whose
    size or mtime changed, so the media servers hear of it once it holds still."""

    def __init__(
        self, store: Store, settle_ns: int = 0, wants: Callable[[list[bytes]], list[bytes]] | None = None
    ) -> None:
        self.store = store
        self.settle_ns = settle_ns
        self.wants = wants  # which file names may get links (only theirs go on the book)
        row = store.execute("SELECT max(id) FROM directory").fetchone()
        self._next_id = int(row[0] or 0) + 1

    def allocate_dir_id(self) -> int:
        # One writer at a time (the instance lock), so ids can be handed out
        # here and the inserts batched.
        dir_id = self._next_id
        self._next_id += 1
        return dir_id

    # ------------------------------------------------------------ reads

    def dir_row(self, rel: bytes) -> DirRow | None:
        row = self.store.execute(
            "SELECT id, mtime_ns, fingerprint, listed_ns FROM directory WHERE path = ?", (rel,)
        ).fetchone()
        if row is None:
            return None
        return DirRow(row[0], row[1], None if row[2] is None else bytes(row[2]), row[3])

    def files_of(self, dir_id: int) -> dict[bytes, FileStat]:
        cursor = self.store.execute("SELECT name, size, mtime_ns FROM file WHERE dir_id = ?", (dir_id,))
        return {bytes(name): (size, mtime) for name, size, mtime in cursor}

    def child_dirs(self, dir_id: int) -> dict[bytes, int]:
        cursor = self.store.execute("SELECT path, id FROM directory WHERE parent_id = ?", (dir_id,))
        return {bytes(path).rpartition(b"/")[2]: dir_id for path, dir_id in cursor}

    def iter_dir_chunks(self, racy_ns: int, size: int = 4096) -> Iterator[list[tuple[bytes, int]]]:
        """Every known directory as (path, mtime_ns it must still have), streamed in chunks.

        A directory whose recorded mtime is within ``racy_ns`` of its listing
        may have changed again in the same timestamp tick: it comes with -1,
        which no mtime matches, so it is listed again."""
        cursor = self.store.execute(
            "SELECT path, CASE WHEN mtime_ns >= listed_ns - ? THEN -1 ELSE mtime_ns END FROM directory", (racy_ns,)
        )
        while chunk := cursor.fetchmany(size):
            yield chunk

    def dir_fingerprints(self) -> list[tuple[bytes, bytes | None]]:
        cursor = self.store.execute("SELECT path, fingerprint FROM directory ORDER BY path")
        return [(bytes(p), None if fp is None else bytes(fp)) for p, fp in cursor]

    def names_by_dir(self, rel: bytes, recursive: bool) -> Iterator[tuple[bytes, list[bytes]]]:
        """The folders in ``rel`` (and below it when recursive) that hold files,
        ordered by path, each with its file names.

        One row per folder, its names joined by NUL (which no file name can
        hold) and split here: a tenth of the rows a join would hand to Python."""
        names = "CAST((SELECT group_concat(f.name, x'00') FROM file f WHERE f.dir_id = d.id) AS BLOB)"
        if recursive:
            lo, hi = subtree_bounds(rel)
            cursor = self.store.execute(
                f"SELECT d.path, {names} FROM directory d WHERE d.path = ? OR (d.path >= ? AND d.path < ?) "
                "ORDER BY d.path",
                (rel, lo, hi),
            )
        else:
            cursor = self.store.execute(f"SELECT d.path, {names} FROM directory d WHERE d.path = ?", (rel,))
        for path, joined in cursor:
            if joined:
                yield path, joined.split(b"\0")

    # ----------------------------------------------------------- writes

    def update_database(self, updates: list[DirUpdate]) -> None:
        """Write a batch of listed directories. The caller holds the transaction."""
        store = self.store
        for update in updates:
            for sub in update.removed_subdirs:
                self.delete_subtree(sub)
        store.insert_many(
            "INSERT INTO directory (id, path, parent_id, mtime_ns, fingerprint, listed_ns)",
            6,
            [(u.dir_id, u.rel, u.parent_id, u.mtime_ns, u.fingerprint, u.listed_ns) for u in updates if u.is_new],
        )
        store.executemany(
            "UPDATE directory SET mtime_ns = ?, fingerprint = ?, listed_ns = ?, parent_id = coalesce(?, parent_id) "
            "WHERE id = ?",
            ((u.mtime_ns, u.fingerprint, u.listed_ns, u.parent_id, u.dir_id) for u in updates if not u.is_new),
        )
        store.executemany(
            "DELETE FROM file WHERE dir_id = ? AND name = ?",
            ((u.dir_id, name) for u in updates for name in u.diff.removed),
        )
        store.executemany(
            "UPDATE file SET size = ?, mtime_ns = ? WHERE dir_id = ? AND name = ?",
            ((st[0], st[1], u.dir_id, name) for u in updates for name, st in u.diff.changed.items()),
        )
        store.insert_many(
            "INSERT INTO file (dir_id, name, size, mtime_ns)",
            4,
            [(u.dir_id, name, st[0], st[1]) for u in updates for name, st in u.diff.added.items()],
        )
        self._settling(updates)

    def _settling(self, updates: list[DirUpdate]) -> None:
        """Put new files that may still be written, and changed files, on the settling book."""
        rows: list[tuple[bytes, int, int, int, str]] = []
        gone: list[tuple[bytes]] = []
        settle_ns, wants = self.settle_ns, self.wants
        for u in updates:
            diff = u.diff
            changed = diff.changed
            # A first run lists every folder once with nothing changed: its
            # loop must cost next to nothing per folder.
            if not (changed or diff.removed or (settle_ns > 0 and diff.added)):
                continue
            prefix = u.rel + b"/" if u.rel else b""
            if changed:
                names = list(changed) if wants is None else wants(list(changed))
                rows.extend((prefix + n, changed[n][0], changed[n][1], u.listed_ns, SETTLE_CHANGED) for n in names)
            if settle_ns > 0 and diff.added:
                fresh_after = u.listed_ns - settle_ns
                added = {n: st for n, st in diff.added.items() if st[1] > fresh_after}
                names = list(added) if wants is None else wants(list(added))
                rows.extend((prefix + n, added[n][0], added[n][1], u.listed_ns, SETTLE_NEW) for n in names)
            gone.extend((prefix + name,) for name in diff.removed)
        if gone:
            self.store.executemany("DELETE FROM settling WHERE path = ?", gone)
        if rows:
            # A file still waiting for its Created stays "new" when it changes again.
            self.store.executemany(
                "INSERT INTO settling (path, size, mtime_ns, seen_ns, kind) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, "
                "seen_ns = excluded.seen_ns",
                rows,
            )

    def delete_subtree(self, rel: bytes) -> None:
        lo, hi = subtree_bounds(rel)
        where = "path = ? OR (path >= ? AND path < ?)"
        self.store.execute(f"DELETE FROM file WHERE dir_id IN (SELECT id FROM directory WHERE {where})", (rel, lo, hi))
        self.store.execute(f"DELETE FROM directory WHERE {where}", (rel, lo, hi))
