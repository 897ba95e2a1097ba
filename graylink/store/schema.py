"""The database's schema: the peewee models and the forward migrations that build them.

Append only: a database records the names of the migrations it has, so a
newer graylink knows what to add and an older one can tell that a database
is newer than itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import peewee as pw

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
    # A link's path is its source file's path (relative to the source and to
    # the target alike), so the row holds only where it points.
    dir = pw.BlobField()
    name = pw.BlobField()
    target = pw.BlobField()

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
    """The service loop's jobs: the last run of each, and when it runs next (graylink.service.loop)."""

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


def _m0009_link_without_source(db: pw.SqliteDatabase) -> None:
    # link.source always equalled the link's own path: a fifth of each row
    # written for every link of a first run. Rebuilt rather than ALTER TABLE
    # DROP COLUMN, which SQLite before 3.35 lacks. (A database made new got
    # the table without it from the model in 0001.)
    columns = {row[1] for row in db.execute_sql("PRAGMA table_info(link)").fetchall()}
    if "source" not in columns:
        return
    db.execute_sql(
        'CREATE TABLE "link_new" ("dir" BLOB NOT NULL, "name" BLOB NOT NULL, "target" BLOB NOT NULL, '
        'PRIMARY KEY ("dir", "name")) WITHOUT ROWID'
    )
    db.execute_sql('INSERT INTO "link_new" ("dir", "name", "target") SELECT "dir", "name", "target" FROM "link"')
    db.execute_sql('DROP TABLE "link"')
    db.execute_sql('ALTER TABLE "link_new" RENAME TO "link"')


def _m0018_drive_item_listed(db: pw.SqliteDatabase) -> None:
    # Whether the Drive feed recorded every child of a folder (graylink.drive.seed): once
    # every folder under the root is, an item removed for good that the record does not
    # know was never under the root, and marks nothing.
    db.execute_sql("ALTER TABLE drive_item ADD COLUMN listed INTEGER NOT NULL DEFAULT 0")
    db.execute_sql(
        "CREATE INDEX drive_item_unlisted ON drive_item (id) "
        "WHERE folder = 1 AND listed = 0 AND trashed = 0 AND path IS NOT NULL"
    )


def _m0010_server_change(db: pw.SqliteDatabase) -> None:
    # Each change a media server was told, until it is an item in that
    # server's library (graylink.notify.changes): queued -> sent -> (resent) ->
    # confirmed | stuck. Keyed by the server's place in the queue and the link
    # path; ``item`` is the server's item ID once seen (a later deletion is
    # checked by it, and only then). Links still queued from before are tracked from now.
    db.execute_sql(
        "CREATE TABLE server_change (server TEXT NOT NULL, path BLOB NOT NULL, expect TEXT NOT NULL, "
        "state TEXT NOT NULL, linked_at REAL NOT NULL, sent_at REAL, confirmed_at REAL, "
        "item TEXT, reason TEXT NOT NULL DEFAULT '', PRIMARY KEY (server, path)) WITHOUT ROWID"
    )
    db.execute_sql("CREATE INDEX server_change_state ON server_change (server, state)")
    db.execute_sql(
        "INSERT OR REPLACE INTO server_change (server, path, expect, state, linked_at) "
        "SELECT server, path, CASE op WHEN 'prune' THEN 'absent' ELSE 'present' END, 'queued', queued_at "
        "FROM emby_queue WHERE op != 'prune' ORDER BY id"
    )


def _m0011_server_hold(db: pw.SqliteDatabase) -> None:
    # What graylink changed on a media server to protect its library while the
    # mount is down (graylink.notify.protect), written BEFORE the change is
    # made (state 'planned', then 'held') and undone on recovery, after a crash
    # too. ``saved`` is the user's value to put back; ``what`` = 'engaged' is
    # the marker of an active protection (no setting).
    db.execute_sql(
        "CREATE TABLE server_hold (server TEXT NOT NULL, what TEXT NOT NULL, saved TEXT NOT NULL, "
        "state TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (server, what)) WITHOUT ROWID"
    )


def _m0016_arr_wait_file(db: pw.SqliteDatabase) -> None:
    # One row per file a Sonarr / Radarr webhook waits for (graylink.web.arrwait):
    # a later webhook for the same folder adds its files, where arr_wait's one
    # row per folder had the later list replace the earlier (lost waits in a storm).
    db.execute_sql(
        "CREATE TABLE arr_wait_file (folder BLOB NOT NULL, file BLOB NOT NULL, origin TEXT NOT NULL, "
        "since REAL NOT NULL, until REAL NOT NULL, PRIMARY KEY (folder, file)) WITHOUT ROWID"
    )
    rows = db.execute_sql("SELECT folder, files, origin, since, until FROM arr_wait").fetchall()
    for folder, files, origin, since, until in rows:
        try:
            names = [os.fsencode(name) for name in json.loads(files) if isinstance(name, str)]
        except (ValueError, TypeError, UnicodeError):
            continue  # a list an older graylink could not have written: nothing to wait for
        for name in names:
            db.execute_sql(
                "INSERT OR IGNORE INTO arr_wait_file (folder, file, origin, since, until) VALUES (?, ?, ?, ?, ?)",
                (folder, name, origin, since, until),
            )
    db.execute_sql("DROP TABLE arr_wait")


def _m0012_link_tree_and_settling(db: pw.SqliteDatabase) -> None:
    # link_tree_dir: each folder of the link tree that holds graylink's links,
    # with its mtime as graylink last left it (graylink.triggers.linktree): the
    # link tree is local, so a folder whose mtime moved had a link deleted or
    # added by someone else. checked_ns: when that mtime was read (a change in
    # the same timestamp tick is caught by re-reading recent ones).
    db.execute_sql(
        "CREATE TABLE link_tree_dir (path BLOB PRIMARY KEY, mtime_ns INTEGER NOT NULL, "
        "checked_ns INTEGER NOT NULL) WITHOUT ROWID"
    )
    # settling: source files whose content the media servers have not heard of
    # yet (graylink.reconcile.settle): new files still being written, and
    # files replaced in place. Announced once their size and mtime hold still.
    db.execute_sql(
        "CREATE TABLE settling (path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, "
        "seen_ns INTEGER NOT NULL, kind TEXT NOT NULL) WITHOUT ROWID"
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
    ("0009_link_without_source", _m0009_link_without_source),
    ("0018_drive_item_listed", _m0018_drive_item_listed),
    ("0010_server_change", _m0010_server_change),
    ("0011_server_hold", _m0011_server_hold),
    ("0016_arr_wait_file", _m0016_arr_wait_file),
    ("0012_link_tree_and_settling", _m0012_link_tree_and_settling),
]

SCHEMA_VERSION = len(MIGRATIONS)
