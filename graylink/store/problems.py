"""Open problems: conflicts and failed actions, kept until a cycle finds them resolved.

A conflict (something not graylink's where a link belongs) or an action that
failed (EACCES, ENOSPC, a folder in the way) is recorded here by the cycle
that met it, in the transaction that clears its marks. Every later cycle
plans the folders of the open problems again -- without re-listing the
source -- so a conflict is reported by every run until it is gone, and the
first run after the blocker is removed makes the link. A problem leaves the
book only when a finished cycle planned its folder and did not meet it again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from graylink.store.db import Store, parent_of
from graylink.store.scopes import ScopeSet

CONFLICT = "conflict"
FAILED = "failed"
# A source folder that could not be listed: it is retried by a mark of its own
# each run, and stays open here for as long as that mark is on the books.
UNLISTABLE = "unlistable"


@dataclass(frozen=True, slots=True)
class Problem:
    link: bytes  # the link path, relative to the target root
    kind: str  # CONFLICT | FAILED | UNLISTABLE (then ``link`` is the folder, relative to the source)
    op: str  # the action met: create | repair | prune | conflict
    detail: str  # what is in the way, or why the action failed
    first_seen: float = 0.0
    last_seen: float = 0.0


def open_problems(store: Store, limit: int | None = None) -> list[Problem]:
    """The open problems, conflicts first, each kind by link path."""
    sql = "SELECT link, kind, op, detail, first_seen, last_seen FROM problem ORDER BY kind, link"
    params: tuple[object, ...] = ()
    if limit is not None:
        sql += " LIMIT ?"
        params = (limit,)
    return [Problem(bytes(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in store.execute(sql, params)]


def problem_counts(store: Store) -> dict[str, int]:
    counts = {CONFLICT: 0, FAILED: 0, UNLISTABLE: 0}
    for kind, n in store.execute("SELECT kind, count(*) FROM problem GROUP BY kind"):
        counts[kind] = int(n)
    return counts


def problem_folders(store: Store) -> list[bytes]:
    """The link-tree folders that hold an open problem (each is planned again next cycle)."""
    rows = store.execute("SELECT link FROM problem WHERE kind != ?", (UNLISTABLE,))
    return sorted({parent_of(bytes(row[0])) for row in rows})


def update_problems(store: Store, planned: ScopeSet | None, found: Iterable[Problem]) -> None:
    """Record this cycle's problems; with ``planned``, first drop the old ones it planned over.

    ``planned`` is None when the cycle did not finish (stopped, mount down):
    what it did not reach is not known to be resolved, so nothing is dropped.
    Runs inside the cycle's closing transaction."""
    found = list(found)
    if planned is not None:
        # Problems found again stay as they are (their first_seen kept); the others planned over are resolved.
        again = {p.link for p in found}
        gone = [(link,) for (link,) in _links(store) if link not in again and planned.covers(parent_of(link), False)]
        # Unlistable folders are settled by their marks (update_unlistable), not by planning.
        store.executemany("DELETE FROM problem WHERE link = ?", gone)
    now = time.time()
    store.executemany(
        "INSERT INTO problem (link, kind, op, detail, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (link) DO UPDATE SET kind = excluded.kind, op = excluded.op, detail = excluded.detail, "
        "last_seen = excluded.last_seen",
        ((p.link, p.kind, p.op, p.detail, now, now) for p in found),
    )


def update_unlistable(store: Store, found: dict[bytes, str], mark_reason: str) -> None:
    """Record the folders this cycle could not list, and close those that no
    longer have a retry mark (``mark_reason``): a folder stays open until a run
    lists it again. Runs inside the cycle's closing transaction, after its marks."""
    now = time.time()
    store.executemany(
        "INSERT INTO problem (link, kind, op, detail, first_seen, last_seen) VALUES (?, ?, 'list', ?, ?, ?) "
        "ON CONFLICT (link) DO UPDATE SET kind = excluded.kind, op = excluded.op, detail = excluded.detail, "
        "last_seen = excluded.last_seen",
        ((path, UNLISTABLE, detail, now, now) for path, detail in sorted(found.items())),
    )
    store.execute(
        "DELETE FROM problem WHERE kind = ? AND link NOT IN (SELECT path FROM dirty WHERE reason = ?)",
        (UNLISTABLE, mark_reason),
    )


def _links(store: Store) -> list[tuple[bytes]]:
    rows = store.execute("SELECT link FROM problem WHERE kind != ?", (UNLISTABLE,))
    return [(bytes(row[0]),) for row in rows]
