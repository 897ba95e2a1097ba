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
from dataclasses import dataclass, replace

from graylink.checks import N_, Check, said
from graylink.config import Config
from graylink.errors import ConfigError, GraylinkError
from graylink.links import tree as linktree
from graylink.links.planner import LinkSpace
from graylink.store.db import Store
from graylink.store.lock import holder

log = logging.getLogger(__name__)

META_SOURCE = "library_source"
META_TARGET = "library_target"
META_DATABASE_ID = "database_id"
# Whether the source was a mount point when first indexed (triggers.mount):
# a fact about the recorded source, forgotten when a rebase changes the source.
META_WAS_MOUNTPOINT = "source_was_mountpoint"


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


def is_recorded_source(config: Config, store: Store) -> bool:
    """Whether the config's source is the one the database records (or none is recorded yet)."""
    mine = recorded(store)
    return mine is None or mine.source == Library.of(config).source


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


def check(config: Config, store: Store, *, rebase: bool = False, dry_run: bool = False) -> None:
    """Refuse (exit 2) a config whose library is not the database's, unless it is a rebase."""
    refusal = mismatch(config, store)
    if refusal is None:
        return
    if rebase:
        before, after = recorded(store), Library.of(config)
        if dry_run:  # nothing moves: the database, the claims and the links stay as they are
            log.info("rebase (dry run): the database would move from %s to %s; nothing is changed", before, after)
        else:
            log.info("rebase: the database moves from %s to %s; everything is verified again", before, after)
        return
    if not _holds_nothing(store):
        raise ConfigError(refusal)


def leave_old_tree(config: Config, store: Store) -> None:
    """A rebase onto another link tree: what the database recorded of the old
    tree (its links, folders and folder times) describes that tree, not the new
    one, where nothing of it is yet. Forgotten (the old tree itself is left as
    it is); links already in the new tree as graylink writes them are adopted."""
    before = recorded(store)
    if before is None or before.target == Library.of(config).target:
        return
    with store.atomic():
        for table in ("link", "link_dir", "link_tree_dir"):
            store.execute(f"DELETE FROM {table}")


def record(config: Config, store: Store) -> None:
    """Record the config's library as the database's (inside the caller's transaction)."""
    wanted = Library.of(config)
    before = recorded(store)
    if before == wanted and database_id(store) is not None:
        return
    if database_id(store) is None:
        store.set_meta(META_DATABASE_ID, uuid.uuid4().hex)
    elif before is not None and before.target != wanted.target:
        _withdraw_claim(before.target, str(database_id(store)))
    if before is not None and before.source != wanted.source:
        store.execute("DELETE FROM meta_value WHERE key = ?", (META_WAS_MOUNTPOINT,))
    store.set_meta(META_SOURCE, wanted.source)
    store.set_meta(META_TARGET, wanted.target)


def _withdraw_claim(target: str, my_id: str) -> None:
    """A rebase onto another link tree: the old tree is no longer this database's."""
    folder = os.path.join(target, MARKER_DIR)
    try:
        os.unlink(os.path.join(folder, _OWNER_PREFIX + my_id))
        os.rmdir(folder)  # only when no other graylink claims that tree
    except OSError:
        pass


def doctor_check(config: Config) -> Check | None:
    """``graylink doctor``: whether the database belongs to this config's library (None: no database yet)."""
    if not os.path.exists(config.paths.database):
        return None
    try:
        with Store(config.paths.database, readonly=True) as store:
            mine, refusal = recorded(store), mismatch(config, store)
    except GraylinkError:
        return None  # the database check reports an unusable database
    if refusal is not None:
        return Check("library", False, refusal, said(N_("see 'Moving a library' in docs/cli.md")))
    if mine is None:
        unrecorded = N_("not recorded yet: the next reconcile records this config's source and target")
        return Check("library", True, said(unrecorded))
    return Check("library", True, said(N_("the database belongs to this config's %(what)s"), what=mine))


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


# --------------------------------------------------------------- link tree

# Beside the links, at the top of the link tree: one file per graylink database
# that keeps links there. Hidden (media servers skip dot-folders), never a
# link, never planned: see docs/reliability.md, "Whose links".
MARKER_DIR = os.fsdecode(linktree.MARKER_DIR)
_OWNER_PREFIX = "owner-"


@dataclass(frozen=True)
class Claim:
    """One graylink database's claim on a link tree (a file in ``TARGET/.graylink``)."""

    database_id: str
    database: str
    source: str
    file: str = ""

    def text(self) -> str:
        return f"id = {self.database_id}\ndatabase = {self.database}\nsource = {self.source}\n"


def _parse(path: str) -> Claim | None:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            text = handle.read(4096)
    except OSError:
        return None
    values = dict(line.partition(" = ")[::2] for line in text.splitlines() if " = " in line)
    if not values.get("id"):
        return None
    return Claim(values["id"], values.get("database", ""), values.get("source", ""), path)


def claims(target: str) -> list[Claim] | None:
    """The claims on the link tree at ``target``; None when they cannot be read."""
    folder = os.path.join(target, MARKER_DIR)
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError:
        return None
    found = (_parse(os.path.join(folder, n)) for n in names if n.startswith(_OWNER_PREFIX))
    return [c for c in found if c is not None]


def ensure_id(store: Store) -> str:
    current = database_id(store)
    if current is None:
        current = uuid.uuid4().hex
        with store.atomic():
            store.set_meta(META_DATABASE_ID, current)
    return current


def _write(target: str, claim: Claim) -> None:
    folder = os.path.join(target, MARKER_DIR)
    os.makedirs(folder, exist_ok=True)
    final = os.path.join(folder, _OWNER_PREFIX + claim.database_id)
    temp = os.path.join(folder, f".{_OWNER_PREFIX}{claim.database_id}.tmp")
    with open(temp, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(claim.text())
    os.replace(temp, final)


@dataclass(frozen=True)
class TreeClaims:
    """What the claims on a link tree say to this database."""

    others: list[Claim]  # other databases that keep links there
    rebuilt: bool  # an earlier claim of this database under another identity: it was rebuilt


def claim_tree(config: Config, store: Store, *, write: bool) -> TreeClaims:
    """Record this database's claim on the link tree; what the other claims say.

    A claim is this database's when it carries its identity, or its path and
    source (the same database made anew: moved away and rebuilt, or recreated
    under the loop); an old claim of this database is replaced."""
    mine = Claim(ensure_id(store), _norm(config.paths.database), _norm(config.paths.source))
    target = config.paths.target
    found = claims(target)
    if found is None:
        log.warning(
            "cannot read %s: links not recorded in this database are left alone", os.path.join(target, MARKER_DIR)
        )
        return TreeClaims([Claim("unknown", "unknown", "unknown")], False)
    ours = [
        c for c in found if c.database_id == mine.database_id or (c.database, c.source) == (mine.database, mine.source)
    ]
    others = [c for c in found if c not in ours]
    rebuilt = any(c.database_id != mine.database_id for c in ours)
    if write and [replace(c, file="") for c in ours] != [mine]:
        try:
            _write(target, mine)
            for old in ours:
                if old.database_id != mine.database_id:
                    os.unlink(old.file)
        except OSError as exc:
            log.warning("cannot record this database's claim in %s: %s", os.path.join(target, MARKER_DIR), exc.strerror)
    return TreeClaims(others, rebuilt)


# Set while a rebuilt database has not yet finished the full verification in
# which it takes back the links of the database it replaces.
META_RECLAIM = "reclaim_links"


def claimed_space(config: Config, store: Store, space: LinkSpace, *, write: bool) -> LinkSpace:
    """``space``, set to reclaim the links into the source when this database was
    rebuilt on a link tree that it alone claimed (see docs/reliability.md, "Whose links")."""
    found = claim_tree(config, store, write=write)
    if write:
        _warn_of_running_owners(config, found.others)
    if found.others:
        log.debug(
            "the link tree %s is shared with %s: only links recorded in this database are repaired or pruned",
            config.paths.target,
            ", ".join(f"database {c.database} (source {c.source})" for c in found.others),
        )
        return replace(space, shared=True)
    reclaim = found.rebuilt or store.get_meta(META_RECLAIM) is not None
    if found.rebuilt and write:
        log.info(
            "the link tree %s was this database's before it was rebuilt: its links into the source are taken back",
            config.paths.target,
        )
        with store.atomic():
            store.set_meta(META_RECLAIM, "1")
    return replace(space, reclaim=True) if reclaim else space


def _warn_of_running_owners(config: Config, others: list[Claim]) -> None:
    """A run with its own database in a link tree that a running graylink keeps:
    two owners of one tree is legal (each keeps only its own links) but rarely
    meant -- mostly a second config whose [paths] database was left at its default
    elsewhere, or a run with the wrong -c. Said each run, as a WARNING."""
    for claim in others:
        pid = holder(claim.database) if claim.database and claim.database != "unknown" else None
        if pid is None:
            continue
        log.warning(
            "the link tree %s is also kept by a running graylink (pid %s, database %s, source %s); this run "
            "uses database %s: each keeps only its own links. If this run should be that service's, use its config",
            config.paths.target,
            pid or "unknown",
            claim.database,
            claim.source,
            _norm(config.paths.database),
        )
