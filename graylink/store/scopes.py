"""Scopes: which subtrees a cycle works on, from its dirty marks (pure).

A mark is a (path, recursive) pair: a recursive one covers its folder and
everything below, a flat one only the folder's own entries. Both questions
asked of thousands of marks at once -- the fewest scopes that cover them all,
and which marks touch a set of links -- are answered with a walk up each
path's ancestors through hashed sets, so their cost grows with the number of
marks times the depth of a path, never with marks times marks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Scope:
    path: bytes
    recursive: bool


def covers(scope: Scope, path: bytes, recursive: bool) -> bool:
    """Whether ``scope`` includes everything a mark at ``path`` asks for."""
    if scope.recursive:
        return not scope.path or path == scope.path or path.startswith(scope.path + b"/")
    return not recursive and path == scope.path


def ancestors(path: bytes) -> Iterator[bytes]:
    """``path`` itself, then each folder above it, ending with the root ``b""``."""
    while path:
        yield path
        path = path.rpartition(b"/")[0]
    yield b""


def _depth(path: bytes) -> int:
    return path.count(b"/") if path else -1


def collapse(items: Iterable[tuple[bytes, bool]]) -> list[Scope]:
    """The fewest scopes that cover every (path, recursive) pair.

    Shallow first and recursive before flat at one depth, so a pair is covered
    exactly when a scope already taken is an ancestor-or-self (recursive) or
    the same flat folder."""
    ordered = sorted(set(items), key=lambda item: (_depth(item[0]), not item[1], item[0]))
    trees: set[bytes] = set()
    flats: set[bytes] = set()
    scopes: list[Scope] = []
    for path, recursive in ordered:
        if any(a in trees for a in ancestors(path)):
            continue
        if recursive:
            trees.add(path)
        elif path in flats:
            continue
        else:
            flats.add(path)
        scopes.append(Scope(path, recursive))
    return scopes


class ScopeSet:
    """Answers "does any of these scopes cover this path?" in the depth of the path."""

    def __init__(self, scopes: Iterable[Scope]) -> None:
        self.trees: set[bytes] = set()
        self.flats: set[bytes] = set()
        for scope in scopes:
            (self.trees if scope.recursive else self.flats).add(scope.path)

    def covers(self, path: bytes, recursive: bool) -> bool:
        if any(a in self.trees for a in ancestors(path)):
            return True
        return not recursive and path in self.flats

    def settles(self, path: bytes, recursive: bool) -> bool:
        """Whether reconciling these scopes settles a mark at ``path``: it is
        covered, or it is a subfolder of a folder reconciled alone, found gone
        or new by that folder's listing."""
        return self.covers(path, recursive) or (bool(path) and path.rpartition(b"/")[0] in self.flats)


def touched(folders: Iterable[bytes]) -> tuple[set[bytes], set[bytes]]:
    """For folders of the link tree: (every folder at or above one of them, the folders themselves).

    A recursive mark touches one of ``folders`` when its path is in the first
    set, a flat mark when its path is in the second."""
    above: set[bytes] = set()
    exact: set[bytes] = set()
    for folder in folders:
        exact.add(folder)
        for a in ancestors(folder):
            if a in above:
                break  # everything above is in already
            above.add(a)
    return above, exact
