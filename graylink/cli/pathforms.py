"""``--path`` as the source spells it: Unicode normalization forms and rclone's ``／``.

A path typed on macOS, or pasted from a web page, may be in NFD (``e`` + a
combining accent) while the Drive's name is NFC (``é``), or the other way
round; Linux compares names byte for byte, so such a path names nothing. The
name that exists is found folder by folder (in the source's listing, else in
the index, for what has gone since), comparing the NFC forms. A path whose
forms match two different names, none of them exactly, is refused: there is
no telling which was meant.

rclone shows a ``/`` inside a Drive name as ``／`` (U+FF0F: ``Fate／Zero``).
Someone who types ``Fate/Zero`` names two folders; when the path names
nothing but one with ``／`` for some of its ``/`` would, the error says so.
"""

from __future__ import annotations

import contextlib
import os
import unicodedata
from dataclasses import dataclass

from graylink.config import Config
from graylink.errors import ConfigError
from graylink.source.sourcecheck import CHECK_TIMEOUT
from graylink.store.db import Store, join, shown_rel
from graylink.system import deadline

FULLWIDTH_SLASH = "／"  # U+FF0F, what rclone's encoder shows for "/" in a Drive name
MAX_CANDIDATES = 8  # matches followed at once (several only when names differ in form alone)


@dataclass(frozen=True)
class Match:
    rel: bytes
    fullwidth: bool  # some "/" the user typed is a "／" of one name


def _key(name: bytes) -> str | None:
    """What two spellings of one name share: the NFC form (None: not UTF-8, compared as bytes)."""
    try:
        return unicodedata.normalize("NFC", name.decode("utf-8"))
    except UnicodeDecodeError:
        return None


def inside(path: bytes, root: bytes) -> bytes | None:
    """``path`` relative to ``root`` (b"" for the root itself), None when outside; a root
    typed in another Unicode form than the config's counts (the rest is resolved later)."""
    if path == root:
        return b""
    if path.startswith(root + b"/"):
        return path[len(root) + 1 :]
    path_key, root_key = _key(path), _key(root)
    if path_key is None or root_key is None:
        return None  # not UTF-8: the bytes said it
    if path_key == root_key:
        return b""
    if path_key.startswith(root_key + "/"):
        return path_key[len(root_key) + 1 :].encode()
    return None


class _Children:
    """The names in a folder of the source (listed once), and those the index knows there."""

    def __init__(self, config: Config, store: Store | None, given: str) -> None:
        self.source = os.fsencode(config.paths.source)
        self.store = store
        self.given = given
        self.seen: dict[bytes, dict[str | bytes, set[bytes]]] = {}

    def named(self, folder: bytes, name: bytes) -> set[bytes]:
        """The names in ``folder`` that ``name`` may mean."""
        if folder not in self.seen:
            by_key: dict[str | bytes, set[bytes]] = {}
            for child in self._names(folder):
                by_key.setdefault(_key(child) or child, set()).add(child)
            self.seen[folder] = by_key
        return self.seen[folder].get(_key(name) or name, set())

    def _names(self, folder: bytes) -> set[bytes]:
        full = os.path.join(self.source, folder) if folder else self.source
        names: set[bytes] = set()
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # gone: the index may know it
            names.update(deadline.call(lambda: os.listdir(full), CHECK_TIMEOUT, f"looking at {self.given}"))
        if self.store is not None:
            for query in (
                "SELECT d.path FROM directory d JOIN directory p ON d.parent_id = p.id WHERE p.path = ?",
                "SELECT f.name FROM file f JOIN directory d ON d.id = f.dir_id WHERE d.path = ?",
                "SELECT name FROM link WHERE dir = ?",
            ):
                names.update(bytes(row[0]).rpartition(b"/")[2] for row in self.store.execute(query, (folder,)))
        return names


def matches(config: Config, store: Store | None, rel: bytes, given: str) -> list[Match]:
    """Every path of the source or the index that ``rel`` may mean, folder by folder."""
    children = _Children(config, store, given)
    parts = rel.split(b"/")
    slash = FULLWIDTH_SLASH.encode()
    found: list[Match] = []
    # (folder matched so far, parts used, a "／" was read into a name)
    todo: list[tuple[bytes, int, bool]] = [(b"", 0, False)]
    while todo and len(found) < MAX_CANDIDATES:
        folder, used, fullwidth = todo.pop()
        if used == len(parts):
            found.append(Match(folder, fullwidth))
            continue
        for end in range(len(parts), used, -1):  # a name may hold "／" where "/" was typed
            name = slash.join(parts[used:end])
            for child in sorted(children.named(folder, name)):
                todo.append((join(folder, child), end, fullwidth or end - used > 1))
    return found


def resolve(config: Config, store: Store | None, rel: bytes, given: str) -> bytes:
    """``rel`` as the source or the index spells it; ``rel`` itself when nothing matches
    (the caller says so, with :func:`hint`). ConfigError when the forms are ambiguous."""
    full = os.path.join(os.fsencode(config.paths.source), rel)
    if deadline.call(lambda: os.path.lexists(full), CHECK_TIMEOUT, f"looking at {given}"):
        return rel  # spelled as the source spells it: nothing to list
    plain = sorted({m.rel for m in matches(config, store, rel, given) if not m.fullwidth})
    if rel in plain or not plain:
        return rel
    if len(plain) == 1:
        return plain[0]
    shown = ", ".join(shown_rel(p) for p in plain[:3])
    raise ConfigError(
        f"--path {given} matches {len(plain)} names that differ only in their Unicode form (NFC/NFD): {shown}; "
        "give the exact one (copy it from ls)"
    )


def hint(config: Config, store: Store | None, rel: bytes, given: str) -> str:
    """The "; did you mean …／…?" of the error line when a "／" for some "/" would name something, else ""."""
    if b"/" not in rel:
        return ""
    wide = sorted({m.rel for m in matches(config, store, rel, given) if m.fullwidth})
    if not wide:
        return ""
    typed = os.path.normpath(os.fsencode(given))
    base = typed[: len(typed) - len(rel)] if typed.endswith(rel) else b""
    return f"; did you mean {shown_rel(base + wide[0])}? (rclone shows a '/' inside a Drive name as '／')"
