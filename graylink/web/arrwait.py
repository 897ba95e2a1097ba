"""Files a Sonarr / Radarr webhook named, waited for until they reach the mount.

The *arr imports, then its upload takes minutes to reach the Drive and the
mount: each file a webhook names is kept (table ``arr_wait_file``, one row per
folder and file) and its folder re-marked at each look until the index has
the file or ``[web] arr_wait`` after its latest announcement has passed.

A row per file, so webhooks merge and never replace each other: in a storm
of a thousand episode imports for one show, each file waits on its own, and
a look that finds some of them removes only those (the key and, for an
expired wait, its deadline make a concurrent announcement survive the look).

A wait announced while the clock was in the future (:mod:`graylink.store.clock`)
would re-mark its folder until that future came: a look brings it back to at
most ``[web] arr_wait`` from now, with one WARNING, and it then ends as any
other wait does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from graylink.store.clock import in_future, tell_jump
from graylink.store.db import Mark, Store, shown_rel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Waiting:
    folder: bytes
    file: bytes
    origin: str
    since: float
    until: float


def mark_event(
    store: Store, folder: bytes, files: Sequence[bytes], origin: str, wait_s: float, now: float | None = None
) -> None:
    """Mark the folder now; keep waiting for each of ``files`` until it is indexed or ``wait_s`` ends."""
    at = time.time() if now is None else now
    with store.atomic():
        store.add_marks([Mark(folder, origin)])
        store.executemany(
            "INSERT INTO arr_wait_file (folder, file, origin, since, until) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(folder, file) DO UPDATE SET origin = excluded.origin, "
            "until = max(arr_wait_file.until, excluded.until)",
            [(folder, f, origin, at, at + wait_s) for f in dict.fromkeys(files)],
        )


def waiting(store: Store) -> list[Waiting]:
    rows = store.execute("SELECT folder, file, origin, since, until FROM arr_wait_file ORDER BY since").fetchall()
    return [Waiting(bytes(d), bytes(f), str(o), float(s), float(u)) for d, f, o, s, u in rows]


def _indexed(store: Store, rel: bytes) -> bool:
    parent, _, name = rel.rpartition(b"/")
    row = store.execute(
        "SELECT 1 FROM file JOIN directory ON directory.id = file.dir_id WHERE directory.path = ? AND file.name = ?",
        (parent, name),
    ).fetchone()
    return row is not None


def _announced_at(entry: Waiting, wait_s: float) -> float:
    """When the wait's latest announcement was made, by the clock that made it."""
    return max(entry.since, entry.until - wait_s)


def _bring_back(store: Store, entries: list[Waiting], at: float, wait_s: float) -> list[Waiting]:
    """Waits announced in the future (the clock was wrong then) end at most ``wait_s`` from now."""
    jumped = [e for e in entries if in_future(_announced_at(e, wait_s), at)]
    if not jumped:
        return entries
    latest = max(jumped, key=lambda e: _announced_at(e, wait_s))
    tell_jump(
        f"the wait for {len(jumped)} file(s) a webhook named (e.g. {shown_rel(latest.file)})",
        _announced_at(latest, wait_s),
        "waiting at most [web] arr_wait from now",
    )
    with store.atomic():
        # min(): a concurrent announcement (with the right clock) keeps its own, nearer deadline.
        store.executemany(
            "UPDATE arr_wait_file SET since = min(since, ?), until = min(until, ?) WHERE folder = ? AND file = ?",
            [(at, at + wait_s, e.folder, e.file) for e in jumped],
        )
    return waiting(store)


def recheck(store: Store, wait_s: float, now: float | None = None) -> int:
    """Re-mark every folder still waiting for a file; drop what arrived or timed out. Returns marks made.

    ``wait_s`` is ``[web] arr_wait``: no wait announced with the right clock ends later than that from now.
    """
    at = time.time() if now is None else now
    by_folder: dict[bytes, list[Waiting]] = {}
    for entry in _bring_back(store, waiting(store), at, wait_s):
        by_folder.setdefault(entry.folder, []).append(entry)
    marks: list[Mark] = []
    arrived: list[tuple[bytes, bytes]] = []
    expired: list[tuple[bytes, bytes, float]] = []
    for folder, entries in by_folder.items():
        found = {e.file for e in entries if _indexed(store, e.file)}
        here = [e for e in entries if e.file in found]
        late = [e for e in entries if e.file not in found and at >= e.until]
        still = len(entries) - len(here) - len(late)
        arrived += [(folder, e.file) for e in here]
        expired += [(folder, e.file, at) for e in late]
        if here and not still:
            log.info("webhook (%s): %s arrived on the mount", entries[-1].origin, shown_rel(folder))
        if late:
            log.warning(
                "webhook (%s): %d file(s) in %s did not reach the mount within [web] arr_wait (e.g. %s); "
                "the daily full verification will find them if they come later",
                late[-1].origin,
                len(late),
                shown_rel(folder),
                shown_rel(late[0].file),
            )
        if still:
            marks.append(Mark(folder, entries[-1].origin))
    with store.atomic():
        store.add_marks(marks)
        store.executemany("DELETE FROM arr_wait_file WHERE folder = ? AND file = ?", arrived)
        # A file announced again since this look began waits on: its deadline moved.
        store.executemany("DELETE FROM arr_wait_file WHERE folder = ? AND file = ? AND until <= ?", expired)
    return len(marks)
