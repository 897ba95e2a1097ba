"""Planning a scope: the index, the link table and the link tree in, actions out.

The pure per-folder decisions live in :mod:`graylink.links.planner`; this module
feeds them, streaming the three sorted inputs of a scope side by side so that
a folder costs one merge step, not a query.
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections.abc import Iterator
from operator import itemgetter
from typing import Any

from graylink.config import Config
from graylink.links.planner import Action, Desired, LinkSpace, Op, plan_dir
from graylink.links.tree import read_dir, reserved, walk_dirs
from graylink.source import sidecars
from graylink.source.index import Index
from graylink.source.rules import Rules
from graylink.store.db import Store, subtree_bounds
from graylink.store.scopes import Scope


def link_space(config: Config) -> LinkSpace:
    # The target root is resolved once: a root that is itself a symlink (a
    # common way to put the tree on another disk) is read, walked and written
    # by its real path, so link paths always compare equal, and relative link
    # contents are computed from where the links really are.
    return LinkSpace(
        source=os.fsencode(config.paths.source),
        target=os.fsencode(os.path.realpath(config.paths.target)),
        link_root=os.fsencode(config.link_root),
        relative=config.paths.relative_links,
    )


def rules_of(config: Config) -> Rules:
    return Rules.of(config.rules)


def settings_fingerprint(config: Config) -> str:
    return f"{rules_of(config).fingerprint()}|{config.link_root}|{config.paths.relative_links}"


def _grouped(rows: Iterator[tuple[Any, ...]], tag: int) -> Iterator[tuple[bytes, int, list[tuple[Any, ...]]]]:
    """Rows sorted by their first column, as (that column, tag, rows) per value."""
    for key, group in itertools.groupby(rows, key=itemgetter(0)):
        yield key, tag, list(group)


def owned_rows(store: Store, scope: Scope) -> Iterator[tuple[bytes, bytes, bytes]]:
    if scope.recursive:
        lo, hi = subtree_bounds(scope.path)
        cursor = store.execute(
            "SELECT dir, name, target FROM link WHERE dir = ? OR (dir >= ? AND dir < ?) ORDER BY dir",
            (scope.path, lo, hi),
        )
    else:
        cursor = store.execute("SELECT dir, name, target FROM link WHERE dir = ?", (scope.path,))
    for d, name, target in cursor:
        yield bytes(d), bytes(name), bytes(target)


def _sizes(store: Store, rel_dir: bytes, names: list[bytes]) -> dict[bytes, int]:
    marks = ",".join("?" * len(names))
    cursor = store.execute(
        "SELECT f.name, f.size FROM file f JOIN directory d ON f.dir_id = d.id "
        f"WHERE d.path = ? AND f.name IN ({marks})",
        (rel_dir, *names),
    )
    return {bytes(name): int(size) for name, size in cursor}


def _linked_below(store: Store, rules: Rules, rel_dir: bytes) -> bool:
    """Whether a video would be linked in a folder below ``rel_dir`` (asked only of a
    folder with no video of its own and a show's artwork or .nfo: show folders)."""
    lo, hi = subtree_bounds(rel_dir)
    cursor = store.execute(
        "SELECT d.path, f.name FROM directory d JOIN file f ON f.dir_id = d.id WHERE d.path >= ? AND d.path < ?",
        (lo, hi),
    )
    for path, name in cursor:
        if rules.wanted([bytes(name)]) and rules.wants_dir(bytes(path)) and not reserved(bytes(path)):
            return True
    return False


def chosen(store: Store, rules: Rules, rel_dir: bytes, names: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """Of a folder's file names, the videos to link and the sidecars to link beside them."""
    videos = rules.wanted(names)
    suspects = rules.named_samples(rel_dir, videos)
    if suspects:  # few: a query each folder that has one is cheap
        sizes = _sizes(store, rel_dir, suspects)
        samples = {name for name in suspects if rules.is_sample(sizes.get(name, -1))}
        if samples:
            videos = [name for name in videos if name not in samples]
    if not rules.sidecars:
        return videos, []
    return videos, sidecars.belonging(names, videos, lambda: _linked_below(store, rules, rel_dir))


def plan_scope(
    store: Store, space: LinkSpace, rules: Rules, scope: Scope, videos: dict[bytes, int] | None = None
) -> list[Action]:
    """Plan one scope, directory by directory, streaming the index and the link table.

    ``videos`` (when given) receives the number of wanted files of each folder
    that has any: planning counts them anyway, and the index keeps the counts
    so that ``status`` need not apply the rules to every file."""
    index = Index(store)
    target_dirs = walk_dirs(space.target, scope.path) if scope.recursive else [scope.path]
    listed = ((d, 0, names) for d, names in index.names_by_dir(scope.path, scope.recursive))
    streams: list[Iterator[tuple[bytes, int, list[Any]]]] = [
        listed,
        _grouped(owned_rows(store, scope), 1),
        ((d, 2, []) for d in target_dirs),
    ]
    actions: list[Action] = []
    # Absolute link contents are the link root plus the path: one concatenation
    # per file (a first run plans every video of the library).
    absolute = None if space.relative else space.link_root.rstrip(b"/") + b"/"
    create = Op.CREATE
    merged = heapq.merge(*streams, key=itemgetter(0))
    for rel_dir, items in itertools.groupby(merged, key=itemgetter(0)):
        names: list[bytes] = []
        extra: list[bytes] = []
        owned: dict[bytes, bytes] = {}
        on_disk = False
        for _, tag, rows in items:
            if tag == 0:
                if rows and rules.wants_dir(rel_dir) and not reserved(rel_dir):
                    names, extra = chosen(store, rules, rel_dir, rows)
            elif tag == 1:
                owned.update((row[1], row[2]) for row in rows)
            else:
                on_disk = True
        if videos is not None and names:
            videos[rel_dir] = len(names)  # videos only: sidecars are not counted as videos
        if extra:
            names = names + extra
        prefix = rel_dir + b"/" if rel_dir else b""
        if not on_disk and not owned and scope.recursive:
            # Nothing on disk and nothing recorded: every wanted link is a create.
            for name in names:
                rel = prefix + name
                actions.append(Action(create, rel, absolute + rel if absolute else space.link_target(rel)))
            continue
        desired: dict[bytes, Desired] = {}
        for name in names:
            rel = prefix + name
            desired[name] = Desired(absolute + rel if absolute else space.link_target(rel))
        actual = read_dir(space.target, rel_dir) if on_disk or not scope.recursive else {}
        actions.extend(plan_dir(space, rel_dir, desired, actual, owned))
    return actions
