"""Reading directories of the source: one listing per directory, bytes names.

This is the only code that lists the source. It runs on worker threads
(listing through FUSE parallelises) and never touches the database.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from graylink.store.db import join

log = logging.getLogger(__name__)

# errnos that mean "the mount is gone", not "this folder is gone". ECONNABORTED
# is what a request in flight gets when the FUSE daemon dies (rclone stopped).
MOUNT_ERRNOS = frozenset(
    {errno.ENOTCONN, errno.EIO, errno.ESTALE, errno.EHOSTDOWN, errno.ENODEV, errno.ECONNABORTED, errno.ETIMEDOUT}
)


class MountGone(OSError):
    """Listing failed in a way that says the whole mount is unusable."""


@dataclass(slots=True)
class Listing:
    """One directory as read from disk.

    ``files`` is None when the caller already knew this fingerprint: names,
    sizes and mtimes are unchanged, so there is nothing to compare or write.
    """

    rel: bytes
    mtime_ns: int
    fingerprint: bytes
    dirs: list[bytes]
    files: dict[bytes, tuple[int, int]] | None
    listed_ns: int = 0  # wall clock just before the listing began
    error: str = ""  # non-empty: the directory could not be listed (e.g. EACCES)
    missing: bool = False  # the directory no longer exists


# Of a folder's file names, those that may get links (graylink.source.rules.Rules.wanted).
Wants = Callable[[list[bytes]], list[bytes]]


def fingerprint(dirs: list[bytes], names: list[bytes], stats: Mapping[bytes, tuple[int, int]]) -> bytes:
    """A digest of a directory's folder and file names, and of the size and mtime
    of the files in ``stats``, independent of order. The sizes and mtimes make a
    file replaced in place (same name: every upgrade that keeps it) a change of
    the listing; only those of the files that may get links are looked at in a
    walk (one stat each: on FUSE a round trip to rclone's cache)."""
    sized = b"".join(b"%s\0%d\0%d\0" % (n, *stats[n]) for n in sorted(stats))
    joined = b"\0".join(sorted(dirs)) + b"\1" + b"\0".join(sorted(names)) + b"\1" + sized
    return hashlib.blake2b(joined, digest_size=16).digest()


# Listing relative to an open descriptor of the folder: the folder's mtime is
# an fstat, and each file's stat resolves one name instead of the whole path
# (about a tenth less time on a first run, most of it in the kernel).
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# Symlinks inside the source are never followed (they could loop or lead out
# of the source): a subfolder replaced by one is gone as a folder.
_OPEN_SUBDIR = _OPEN_DIR | os.O_NOFOLLOW
_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()


def list_dir(root: bytes, rel: bytes, known_fingerprint: bytes | None = None, wants: Wants | None = None) -> Listing:
    """List one directory; its files only when the fingerprint is not ``known_fingerprint``."""
    path = root + b"/" + rel if rel else root
    listed_ns = time.time_ns()
    try:
        fd = os.open(path, _OPEN_SUBDIR if rel else _OPEN_DIR)
    except (FileNotFoundError, NotADirectoryError):
        return Listing(rel, 0, b"", [], {}, missing=True)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.ENAMETOOLONG and rel and _gone(root, rel)):
            return Listing(rel, 0, b"", [], {}, missing=True)
        return _failed(rel, path, exc)
    try:
        return _list_open(fd, path, rel, listed_ns, known_fingerprint, wants)
    except MountGone:
        raise
    except OSError as exc:
        return _failed(rel, path, exc)
    finally:
        os.close(fd)


def _gone(root: bytes, rel: bytes) -> bool:
    """Whether a folder whose path is longer than PATH_MAX (made by relative steps:
    no system call takes its path) is gone, found one name at a time.

    Only its absence is learnt this way: one that is there stays unlistable (its
    links could not be made by path either) and is reported each run; one that
    was deleted is removed from the index once, instead of failing forever."""
    try:
        os.close(open_by_steps(root, rel))
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def open_by_steps(root: bytes, rel: bytes) -> int:
    """A descriptor of ``root/rel`` opened one folder at a time (symlinks not followed)."""
    fd = os.open(root, _OPEN_DIR)
    try:
        for name in rel.split(b"/"):
            inner = os.open(name, _OPEN_SUBDIR, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def _failed(rel: bytes, path: bytes, exc: OSError) -> Listing:
    if exc.errno in MOUNT_ERRNOS:
        raise MountGone(exc.errno, f"cannot list {os.fsdecode(path)}: {exc.strerror}") from None
    return Listing(rel, 0, b"", [], None, error=exc.strerror or str(exc))


def _list_open(
    fd: int, path: bytes, rel: bytes, listed_ns: int, known_fingerprint: bytes | None, wants: Wants | None
) -> Listing:
    # The mtime is read before the listing: a change during the listing then
    # shows as a newer mtime next time.
    mtime_ns = os.fstat(fd).st_mtime_ns
    dirs: list[bytes] = []
    names: list[bytes] = []
    by_name: dict[bytes, os.DirEntry[str]] = {}
    # Names come back as str from a descriptor; encoding them back as the
    # filesystem encoding does (surrogateescape) gives the exact bytes.
    encoding, errors = _FS_ENCODING, _FS_ERRORS
    with os.scandir(fd) as entries:
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    dirs.append(entry.name.encode(encoding, errors))
                elif entry.is_file(follow_symlinks=False):
                    name = entry.name.encode(encoding, errors)
                    names.append(name)
                    by_name[name] = entry
            except OSError:
                continue
    wanted = names if wants is None else wants(names)
    files: dict[bytes, tuple[int, int]] = {}
    if known_fingerprint is not None:
        # A walk: only the files that may get links are stat'ed to tell whether
        # anything changed (a replaced video keeps its name; its size tells).
        _stat_into(files, path, by_name, wanted)
        if len(files) != len(wanted):  # one vanished: the fingerprint names only what was indexed
            gone = set(wanted).difference(files)
            names = [n for n in names if n not in gone]
        fp = fingerprint(dirs, names, files)
        if fp == known_fingerprint:
            return Listing(rel, mtime_ns, fp, dirs, None, listed_ns)
        _stat_into(files, path, by_name, [n for n in names if n not in files])
    else:
        _stat_into(files, path, by_name, names)
    # The fingerprint names only what was indexed: one naming a file that
    # could not be stat'ed would hide it from every later walk.
    indexed = list(files)
    sized = {n: files[n] for n in wanted if n in files}
    return Listing(rel, mtime_ns, fingerprint(dirs, indexed, sized), dirs, files, listed_ns)


def _stat_into(
    files: dict[bytes, tuple[int, int]], path: bytes, entries: Mapping[bytes, os.DirEntry[str]], names: list[bytes]
) -> None:
    for name in names:
        try:
            st = entries[name].stat(follow_symlinks=False)
        except OSError as exc:
            if exc.errno in MOUNT_ERRNOS:
                raise MountGone(exc.errno, f"cannot stat in {os.fsdecode(path)}: {exc.strerror}") from None
            continue  # vanished between listing and stat
        files[name] = (st.st_size, st.st_mtime_ns)


Tick = Callable[[], None]


def no_tick() -> None:
    return None


def list_tree(
    root: bytes, rel: bytes, budget: int = 256, tick: Tick = no_tick, wants: Wants | None = None
) -> tuple[list[Listing], list[bytes]]:
    """List ``rel`` and the directories below it, parents before children.

    At most ``budget`` directories are listed; the subtrees left over are
    returned so the caller can list them as further tasks. That keeps every
    task small (memory stays flat on a huge first scan) and spreads a big
    tree over the worker threads.
    """
    out: list[Listing] = []
    stack = [rel]
    while stack and len(out) < budget:
        current = stack.pop()
        listing = list_dir(root, current, wants=wants)
        tick()
        out.append(listing)
        stack.extend(join(current, name) for name in reversed(sorted(listing.dirs)))
    return out, stack


def list_many(
    root: bytes, rels: list[tuple[bytes, bytes | None]], tick: Tick = no_tick, wants: Wants | None = None
) -> list[Listing]:
    """List each of several directories, each with its known fingerprint."""
    out = []
    for rel, fp in rels:
        out.append(list_dir(root, rel, fp, wants))
        tick()
    return out
