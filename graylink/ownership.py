"""Whose is what: a database belongs to one source and one link tree.

The first run records the source and target it indexed in the database (and a
random identity of the database itself). A later config naming another source
or target is refused in one line, unless the user moves the library on purpose
with ``graylink reconcile --rebase``: two configs that share a database by
accident (both left ``[paths] database`` at its default) would otherwise read
each other's index as "everything deleted".
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass

from graylink.config import Config
from graylink.db import Store
from graylink.errors import ConfigError

log = logging.getLogger(__name__)

META_SOURCE = "library_source"
META_TARGET = "library_target"
META_DATABASE_ID = "database_id"


@dataclass(frozen=True)
class Library:
    """The source and link tree a database indexes."""

    source: str
    target: str

    def __str__(self) -> str:
        return f"source {self.source} and target {self.target}"

    @classmethod
    def of(cls, config: Config) -> Library:
        return cls(_norm(config.paths.source), _norm(config.paths.target))


def _norm(path: str) -> str:
    return os.path.normpath(os.path.abspath(path))


def recorded(store: Store) -> Library | None:
    source, target = store.get_meta(META_SOURCE), store.get_meta(META_TARGET)
    if source is None or target is None:
        return None
    return Library(source, target)


def database_id(store: Store) -> str | None:
    return store.get_meta(META_DATABASE_ID)


def mismatch(config: Config, store: Store) -> str | None:
    """The one-line refusal when ``store`` belongs to another library than ``config``'s, else None."""
    mine = recorded(store)
    wanted = Library.of(config)
    if mine is None or mine == wanted:
        return None
    return (
        f"database {config.paths.database} belongs to source {mine.source} and target {mine.target}; "
        f"this config has source {wanted.source} and target {wanted.target}: give it its own "
        "[paths] database, or move the library with 'graylink reconcile --rebase'"
    )


def _holds_nothing(store: Store) -> bool:
    """No file indexed and no link owned: a first run that went wrong (a typo in
    the source) has nothing to protect, so a corrected config simply takes over."""
    return (
        store.execute("SELECT 1 FROM file LIMIT 1").fetchone() is None
        and store.execute("SELECT 1 FROM link LIMIT 1").fetchone() is None
    )


def check(config: Config, store: Store, *, rebase: bool = False) -> None:
    """Refuse (exit 2) a config whose library is not the database's, unless it is a rebase."""
    refusal = mismatch(config, store)
    if refusal is None:
        return
    if rebase:
        before, after = recorded(store), Library.of(config)
        log.info("rebase: the database moves from %s to %s; everything is verified again", before, after)
        return
    if not _holds_nothing(store):
        raise ConfigError(refusal)


def record(config: Config, store: Store) -> None:
    """Record the config's library as the database's (inside the caller's transaction)."""
    wanted = Library.of(config)
    if recorded(store) == wanted and database_id(store) is not None:
        return
    if database_id(store) is None:
        store.set_meta(META_DATABASE_ID, uuid.uuid4().hex)
    store.set_meta(META_SOURCE, wanted.source)
    store.set_meta(META_TARGET, wanted.target)


def reload_refusal(running: Config, fresh: Config, store: Store) -> str | None:
    """Why a SIGHUP may not switch the loop to ``fresh`` (another library), or None.

    A changed source under the loop would read the old library as deleted, and
    the prune brake then asks for ``--force``, which cannot run beside the loop:
    moving a library is an explicit, stopped-service step instead."""
    if _holds_nothing(store):
        return None
    mine = recorded(store) or Library.of(running)
    wanted = Library.of(fresh)
    changes = [
        f"[paths] {key} changed from {old} to {new}"
        for key, old, new in (("source", mine.source, wanted.source), ("target", mine.target, wanted.target))
        if old != new
    ]
    if not changes:
        return None
    return (
        f"{'; '.join(changes)}: the database belongs to the old library; to move it, stop the service, "
        "run 'graylink reconcile --rebase' once, then start the service again"
    )
