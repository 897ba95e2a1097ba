"""Checks of the configured paths that run before anything is created.

A run refused for bad configuration must leave nothing behind (exit 2,
"nothing changed"): so the source, the link tree's root and the database's
folder are judged here, before the lock file or the database exist. The
cycle calls the same checks again, for the service after a config reload.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable

from graylink.config import Config
from graylink.errors import ConfigError
from graylink.source.sourcecheck import CHECK_TIMEOUT
from graylink.system import deadline


def nearest_existing(path: str) -> str:
    """``path`` itself when it exists, else its closest existing ancestor."""
    path = os.path.abspath(path)
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _creatable(what: str, path: str) -> None:
    """``path`` does not exist: its closest existing ancestor must be a writable folder."""
    ancestor = nearest_existing(os.path.dirname(os.path.abspath(path)))
    if not os.path.isdir(ancestor):
        raise ConfigError(f"{what} {path} cannot be created: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path} cannot be created: {ancestor} is not writable")


def check_source(config: Config, should_stop: Callable[[], bool] | None = None) -> None:
    """The source must be a directory. A source that cannot even be looked at
    (ENOTCONN, EIO, no answer: a dead or hung mount) passes: the mount's health
    gate reports it. A stop request ends the wait (SIGTERM on a frozen mount)."""
    source = config.paths.source
    try:
        mode = deadline.call(lambda: os.stat(source).st_mode, CHECK_TIMEOUT, f"looking at {source}", should_stop)
        is_dir = stat.S_ISDIR(mode)
    except (FileNotFoundError, NotADirectoryError):
        is_dir = False
    except (OSError, deadline.NoAnswer):
        return
    if not is_dir:
        raise ConfigError(f"[paths] source {source} is not a directory (or does not exist)")


def check_target(config: Config) -> None:
    """The link tree's root is a directory, or can be made."""
    target = config.paths.target
    if os.path.isdir(target):
        return
    if os.path.lexists(target):
        raise ConfigError(f"[paths] target {target} exists and is not a directory")
    _creatable("[paths] target", target)


def check_target_writable(config: Config) -> None:
    """An existing link tree's root must take new entries (a real run writes there)."""
    target = config.paths.target
    if not os.path.isdir(target) or os.access(target, os.W_OK | os.X_OK):
        return
    try:
        read_only = bool(os.statvfs(target).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    why = "is on a read-only filesystem" if read_only else "is not writable by this user"
    raise ConfigError(f"[paths] target {target} {why}: graylink makes its links there")


def make_target(config: Config) -> None:
    """Create the link tree's root (a real run, after :func:`check_target`)."""
    target = config.paths.target
    if os.path.isdir(target):
        return
    check_target(config)
    try:
        os.makedirs(target)
    except OSError as exc:
        raise ConfigError(f"[paths] target {target} cannot be created: {exc.strerror}") from None


def check_database(config: Config) -> None:
    """The database is a file, or can be made, and so can its lock file beside it."""
    database = config.paths.database
    try:
        mode = os.stat(database).st_mode
    except FileNotFoundError:
        _creatable("[paths] database", database)
        return
    except NotADirectoryError:
        _creatable("[paths] database", database)
        return
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise ConfigError(f"[paths] database {database}: {exc.strerror}") from None
        return  # unreadable: opening it reports why, in one line
    if stat.S_ISDIR(mode):
        raise ConfigError(f"[paths] database {database} is a directory: name a file (e.g. {database}/graylink.db)")


def check_paths(config: Config, *, source: bool, write: bool = True) -> None:
    """Everything a run needs before it creates its lock file and database.

    ``source``: check that the source is a folder too (once the index holds
    files, a missing source is a dropped mount, which the cycle reports).
    ``write``: the run makes links (not a dry run), so the link tree's root
    must be writable."""
    if source:
        check_source(config)
    check_target(config)
    if write:
        check_target_writable(config)
    check_database(config)
