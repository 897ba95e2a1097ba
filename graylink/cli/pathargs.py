"""``reconcile --path``: what the user typed, as the scope a cycle works on.

A path may be given relative to the source, or absolute inside the source or
the link tree. It names a folder (its whole subtree is reconciled), a file
(its folder is), or something that has gone from the source since the last
run but is still in the index (reconciled all the same, which prunes its
links). A path that is in neither names nothing to do: a usage error.
"""

from __future__ import annotations

import os
import stat

from graylink.cli import pathforms
from graylink.config import Config
from graylink.errors import ConfigError
from graylink.source.sourcecheck import CHECK_TIMEOUT
from graylink.store.db import Store, normalize_rel, parent_of, subtree_bounds
from graylink.store.scopes import Scope
from graylink.system import deadline, fsinfo


def relative_path(config: Config, given: str) -> bytes:
    """``given`` relative to the source root; ConfigError when it lies outside."""
    raw = os.fsencode(given)
    if raw.startswith(b"/"):
        path = os.path.normpath(raw)
        for root in _roots(config):
            inside = pathforms.inside(path, root)
            if inside is not None:
                return inside
        raise ConfigError(f"--path {given} is neither inside the source nor inside the target")
    try:
        return normalize_rel(raw)
    except ValueError:
        raise ConfigError(f"--path {given} leaves the source") from None


def _roots(config: Config) -> list[bytes]:
    """The source and the link tree, as configured and as resolved (a path typed
    through a symlinked folder names the same place)."""
    roots: list[bytes] = []
    for root in (config.paths.source, config.paths.target):
        for form in (root, fsinfo.real(root)):  # under a deadline: the source may be a hung mount
            base = os.path.normpath(os.fsencode(form))
            if base not in roots:
                roots.append(base)
    return roots


def scope_of(config: Config, store: Store | None, given: str, *, refresh: bool = True) -> Scope:
    """The scope ``--path given`` asks for (``store``: the index, None when there is none yet).

    ``refresh`` false (a dry run, which changes nothing, rclone's cache included):
    rclone is not asked to re-read a folder; the path is judged as the mount shows it."""
    rel = relative_path(config, given)
    if not rel:
        return Scope(b"", True)
    try:
        # A path typed in another Unicode form (NFD from macOS) names what the source spells.
        rel = pathforms.resolve(config, store, rel, given)
        mode = _mode(config, rel, given)
        if mode is None and config.mount.rclone_rc and refresh:
            from graylink.rclone.rc import vfs_refresh  # loaded only with an rc to call

            if vfs_refresh(config, [parent_of(rel)]):
                # New on the Drive, not yet in rclone's directory cache: re-read, look again.
                mode = _mode(config, rel, given)
    except (OSError, deadline.NoAnswer):
        # The source cannot be looked at (a dead or hung mount): the cycle's health
        # gate reports that, and a subtree is the safe reading meanwhile.
        return Scope(rel, True)
    if mode is not None:
        return Scope(rel, True) if stat.S_ISDIR(mode) else Scope(parent_of(rel), False)
    known = _known(store, rel) if store is not None else None
    if known is None:
        try:
            wide = pathforms.hint(config, store, rel, given)
        except (OSError, deadline.NoAnswer):
            wide = ""
        raise ConfigError(f"--path {given}: not in the source, and not in the index either: nothing to reconcile{wide}")
    return known


def _mode(config: Config, rel: bytes, given: str) -> int | None:
    """The lstat mode of ``rel`` in the source; None when it is not there."""
    full = os.path.join(os.fsencode(config.paths.source), rel)
    try:
        return deadline.call(lambda: os.lstat(full).st_mode, CHECK_TIMEOUT, f"looking at {given}")
    except (FileNotFoundError, NotADirectoryError):
        return None


def _known(store: Store, rel: bytes) -> Scope | None:
    """What the index knows at ``rel`` (gone from the source since): a folder, or a file or link."""
    if store.execute("SELECT 1 FROM directory WHERE path = ?", (rel,)).fetchone() is not None:
        return Scope(rel, True)
    lo, hi = subtree_bounds(rel)
    if store.execute("SELECT 1 FROM link WHERE dir = ? OR (dir >= ? AND dir < ?) LIMIT 1", (rel, lo, hi)).fetchone():
        return Scope(rel, True)
    folder, _, name = rel.rpartition(b"/")
    if store.execute("SELECT 1 FROM link WHERE dir = ? AND name = ?", (folder, name)).fetchone() is not None:
        return Scope(folder, False)
    row = store.execute(
        "SELECT 1 FROM file JOIN directory ON directory.id = file.dir_id WHERE directory.path = ? AND file.name = ?",
        (folder, name),
    ).fetchone()
    return Scope(folder, False) if row is not None else None


def scopes_of(config: Config, given: tuple[str, ...], *, refresh: bool = True) -> tuple[Scope, ...]:
    """Every ``--path``, judged before anything is created (a bad one exits 2, leaving nothing)."""
    if not given:
        return ()
    database = config.paths.database
    if not os.path.isfile(database):
        return tuple(scope_of(config, None, p, refresh=refresh) for p in given)
    with Store(database, readonly=True) as store:
        return tuple(scope_of(config, store, p, refresh=refresh) for p in given)


def libraries_of(views: list[Config], given: tuple[str, ...]) -> list[Config]:
    """The libraries ``--path`` names, when no ``--library`` does: the one whose
    source or link tree holds each path. A relative path fits any library: with
    several, it needs ``--library``."""
    if len(views) == 1 or not given:
        return views
    chosen: list[Config] = []
    for path in given:
        if not path.startswith("/"):
            names = ", ".join(view.name for view in views)
            raise ConfigError(
                f"--path {path} is relative and there are several libraries: add --library NAME ({names})"
            )
        raw = os.path.normpath(os.fsencode(path))
        holder = next(
            (view for view in views for root in _roots(view) if pathforms.inside(raw, root) is not None), None
        )
        if holder is None:
            raise ConfigError(f"--path {path} is inside the source or link tree of no library")
        if holder not in chosen:
            chosen.append(holder)
    return chosen
