"""Each change a media server was told, until it is in that server's library: the durable states.

A link change is tracked per server (keyed by the server's place in the
queue: ``emby``, ``plex``) from the transaction that queues it:

``queued`` (waiting for delivery) → ``sent`` (the server answered 2xx) →
``confirmed`` (the path is an item of its library, or no longer one) — or,
when ``confirm_wait`` passes without that, its folder is sent once more
(``resent``) and after a second wait the change is ``stuck``, with the reason
graylink can name. A stuck change is retried when its folder changes again, when
``reconcile --path`` names it, or when the path itself changes; it is never
dropped silently. A deletion is tracked only when graylink knows the server's
item for the path (it saw it confirmed): no cheap query finds an item by path.

DB work only, on the caller's connection; :mod:`graylink.notify.confirm`
does the asking. Deciding what a lookup means is pure (:func:`decide`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from graylink.links.planner import Op
from graylink.source.sidecars import is_sidecar
from graylink.store.db import Store

PRESENT, ABSENT = "present", "absent"
QUEUED, SENT, RESENT, CONFIRMED, STUCK = "queued", "sent", "resent", "confirmed", "stuck"
PENDING_STATES = (QUEUED, SENT, RESENT)
SCAN_GRACE = 3  # while the server's scan still runs, a change may wait this many confirm_waits
SHOWN_STUCK = 50  # stuck paths listed in status (the counts are complete)
KEEP_GONE = 7 * 86400  # confirmed deletions are forgotten after this long
# Seconds from the link's creation to its confirmation (Prometheus histogram buckets).
BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)


@dataclass(frozen=True, slots=True)
class Tracked:
    path: bytes  # the link's absolute path in the link tree
    expect: str  # present | absent
    state: str
    linked_at: float
    sent_at: float | None
    item: str | None  # the server's item ID, once seen


@dataclass
class Lookup:
    """What one cycle's questions to a server found (link paths, not the server's view)."""

    seen: dict[bytes, str] = field(default_factory=dict)  # path -> item ID: an item of the library
    gone: set[bytes] = field(default_factory=set)  # deletions the server no longer lists
    outside: dict[bytes, str] = field(default_factory=dict)  # path -> server path under no library
    error: str = ""  # the questions failed: why
    scanning: bool = False  # a library scan still runs on the server
    requests: int = 0  # requests this lookup cost

    def due(self, row: Tracked, now: float, wait: float) -> bool:
        """Found neither way and sent ``wait`` seconds ago or more: worth the slower questions."""
        return row.path not in self.seen and row.path not in self.gone and now - (row.sent_at or now) >= wait


def asked_of(rows: Sequence[Tracked]) -> list[Tracked]:
    """The rows a server is asked about: sent, not merely queued."""
    return [row for row in rows if row.state != "queued" and row.sent_at is not None]


@contextmanager
def answers_into(found: Lookup, secret: str, credential: str) -> Iterator[None]:
    """Questions to a server: a refusal or a failure ends them as ``found.error`` (the secret scrubbed)."""
    # Here, not at the top: the queue imports this module, and status, the
    # walk and every cycle import the queue; requests costs them 70 ms.
    from graylink.notify.http import FailedError, GaveUpError, RefusedError, scrub

    try:
        yield
    except RefusedError as exc:
        found.error = f"refused the {credential} ({exc})"
    except (FailedError, GaveUpError) as exc:
        found.error = scrub(str(exc), secret)


@dataclass
class Decision:
    confirmed: list[tuple[bytes, str | None, float]] = field(default_factory=list)  # path, item, seconds
    resend: list[bytes] = field(default_factory=list)
    stuck: list[tuple[bytes, str]] = field(default_factory=list)  # path, reason


def _expect(op: Op) -> str:
    return ABSENT if op is Op.PRUNE else PRESENT


def _parent(path: bytes) -> bytes:
    return os.path.dirname(path.rstrip(b"/")) or b"/"


def track(store: Store, changes: Sequence[tuple[Op, bytes]], servers: Sequence[str], now: float) -> None:
    """Start tracking ``changes`` for each server (in the caller's transaction, beside the queue rows).

    A deletion of a path whose item graylink never saw is not tracked (it
    could not be checked). Stuck changes in the folders of these changes are
    given another chance: queued again with them. A sidecar (a subtitle, an
    .nfo, artwork) is never an item of the server's library: it is sent as
    its folder (graylink.notify.batch.fold_sidecars) and not tracked.
    """
    folders = {_parent(path) for _op, path in changes}
    changes = [(op, path) for op, path in changes if not is_sidecar(path.rpartition(b"/")[2])]
    for server in servers:
        items = _items(store, server, [path for op, path in changes if op is Op.PRUNE])
        rows: list[tuple[object, ...]] = []
        untrack: list[tuple[object, ...]] = []
        for op, path in changes:
            if op is Op.PRUNE and not items.get(path):
                untrack.append((server, path))
                continue
            rows.append((server, path, _expect(op), QUEUED, now))
        store.executemany("DELETE FROM server_change WHERE server = ? AND path = ?", untrack)
        store.executemany(
            "INSERT INTO server_change (server, path, expect, state, linked_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (server, path) DO UPDATE SET expect = excluded.expect, state = excluded.state, "
            "linked_at = excluded.linked_at, sent_at = NULL, confirmed_at = NULL, reason = ''",
            rows,
        )
        retry_stuck(store, server, folders, now, exclude={path for _op, path in changes})


def _items(store: Store, server: str, paths: Sequence[bytes]) -> dict[bytes, str]:
    found: dict[bytes, str] = {}
    for path in paths:
        row = store.execute("SELECT item FROM server_change WHERE server = ? AND path = ?", (server, path)).fetchone()
        if row and row[0]:
            found[path] = str(row[0])
    return found


def retry_stuck(
    store: Store, server: str, folders: Iterable[bytes], now: float, exclude: set[bytes] | None = None
) -> int:
    """Queue again the stuck changes right in ``folders`` (a folder that changed again). Returns how many."""
    count = 0
    for folder in set(folders):
        rows = store.execute(
            "SELECT path, expect FROM server_change WHERE server = ? AND state = ? AND path > ? AND path < ?",
            (server, STUCK, folder.rstrip(b"/") + b"/", folder.rstrip(b"/") + b"0"),
        ).fetchall()
        for raw, expect in rows:
            path = bytes(raw)
            if _parent(path) != folder or (exclude and path in exclude):
                continue
            _requeue(store, server, path, Op.PRUNE if expect == ABSENT else Op.REPAIR, now)
            count += 1
    return count


def retry_under(store: Store, server: str, roots: Iterable[bytes], now: float) -> int:
    """Queue again the stuck changes at or under ``roots`` (``reconcile --path``). Returns how many."""
    count = 0
    for root in roots:
        root = root.rstrip(b"/") or b"/"
        rows = store.execute(
            "SELECT path, expect FROM server_change WHERE server = ? AND state = ? "
            "AND (path = ? OR (path > ? AND path < ?))",
            (server, STUCK, root, root + b"/", root + b"0"),
        ).fetchall()
        for raw, expect in rows:
            _requeue(store, server, bytes(raw), Op.PRUNE if expect == ABSENT else Op.REPAIR, now)
            count += 1
    return count


def _requeue(store: Store, server: str, path: bytes, op: Op, now: float) -> None:
    store.execute(
        "UPDATE server_change SET state = ?, sent_at = NULL, reason = '' WHERE server = ? AND path = ?",
        (QUEUED, server, path),
    )
    store.execute(
        "INSERT INTO emby_queue (path, op, queued_at, server) VALUES (?, ?, ?, ?)", (path, op.value, now, server)
    )


def sent(store: Store, server: str, paths: Iterable[bytes], now: float) -> None:
    """The server answered 2xx for ``paths``: their wait for confirmation starts now.

    A path may be a folder sent once more for the changes in it: their second wait starts now too.
    """
    paths = list(paths)
    store.executemany(
        "UPDATE server_change SET state = ?, sent_at = ? WHERE server = ? AND path = ? AND state IN (?, ?)",
        ((SENT, now, server, path, QUEUED, STUCK) for path in paths),
    )
    folders = set(paths)
    resent = store.execute(
        "SELECT path FROM server_change WHERE server = ? AND state = ? AND sent_at IS NULL", (server, RESENT)
    ).fetchall()
    store.executemany(
        "UPDATE server_change SET sent_at = ? WHERE server = ? AND path = ?",
        ((now, server, bytes(r[0])) for r in resent if _parent(bytes(r[0])) in folders),
    )


def untrack(store: Store, paths: Iterable[bytes]) -> None:
    """Forget changes that were queued but not made (the run failed or stopped before them)."""
    store.executemany("DELETE FROM server_change WHERE path = ? AND state = ?", ((p, QUEUED) for p in paths))


def drop_unconfigured(store: Store, servers: Sequence[str]) -> None:
    marks = ",".join("?" * len(servers)) or "''"
    store.execute(f"DELETE FROM server_change WHERE server NOT IN ({marks})", tuple(servers))


def awaiting(store: Store, server: str) -> list[Tracked]:
    """This server's changes that are not confirmed yet, oldest first."""
    cursor = store.execute(
        "SELECT path, expect, state, linked_at, sent_at, item FROM server_change "
        "WHERE server = ? AND state IN (?, ?, ?) ORDER BY linked_at",
        (server, *PENDING_STATES),
    )
    return [Tracked(bytes(r[0]), r[1], r[2], float(r[3]), r[4], r[5]) for r in cursor]


# ----------------------------------------------------------------- deciding (pure)


def _span(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds} s" if seconds < 120 else f"{round(seconds / 60)} min"


def decide(rows: Iterable[Tracked], lookup: Lookup, now: float, wait: float, down: str = "") -> Decision:
    """What ``lookup`` means for each awaited change. ``down``: why this cycle's delivery failed ("" if not)."""
    decision = Decision()
    for row in rows:
        if row.state == QUEUED or row.sent_at is None:  # not (re)sent yet
            if down and now - row.linked_at >= 2 * wait:
                decision.stuck.append((row.path, f"the server is down: {down}"))
            continue
        done = row.path in lookup.seen if row.expect == PRESENT else row.path in lookup.gone
        if done:
            decision.confirmed.append((row.path, lookup.seen.get(row.path, row.item), max(0.0, now - row.linked_at)))
            continue
        if row.path in lookup.outside:
            decision.stuck.append((row.path, f"no library of the server holds {lookup.outside[row.path]}"))
            continue
        waited = now - (row.sent_at if row.sent_at is not None else now)
        if waited < wait or (lookup.scanning and not lookup.error and waited < SCAN_GRACE * wait):
            continue
        if row.state == SENT:
            decision.resend.append(row.path)
        elif lookup.error:
            decision.stuck.append((row.path, f"the server did not answer: {lookup.error}"))
        elif row.expect == PRESENT:
            decision.stuck.append(
                (row.path, f"the server took the update, but no item for it came within {_span(wait)} of a re-send")
            )
        else:
            decision.stuck.append((row.path, f"the server still lists the item {_span(wait)} after a re-send"))
    return decision


# ----------------------------------------------------------------- recording


def record(store: Store, server: str, decision: Decision, now: float) -> list[bytes]:
    """Write ``decision`` in one transaction; returns the paths that became stuck now."""
    with store.atomic():
        for path, item, seconds in decision.confirmed:
            store.execute(
                "UPDATE server_change SET state = ?, confirmed_at = ?, item = coalesce(?, item), reason = '' "
                "WHERE server = ? AND path = ?",
                (CONFIRMED, now, item, server, path),
            )
            _observe(store, server, seconds)
        for path in decision.resend:
            # The second wait starts when the server takes the re-send (``sent``).
            store.execute(
                "UPDATE server_change SET state = ?, sent_at = NULL WHERE server = ? AND path = ?",
                (RESENT, server, path),
            )
            # The folder, once: a server that missed the file may take its folder (Emby), or the folder
            # above it (Plex scans the folder holding each queued path).
            store.execute(
                "INSERT INTO emby_queue (path, op, queued_at, server) VALUES (?, ?, ?, ?)",
                (_parent(path), Op.REPAIR.value, now, server),
            )
        for path, reason in decision.stuck:
            store.execute(
                "UPDATE server_change SET state = ?, reason = ?, sent_at = coalesce(sent_at, ?) "
                "WHERE server = ? AND path = ?",
                (STUCK, reason, now, server, path),
            )
        store.execute(
            "DELETE FROM server_change WHERE server = ? AND state = ? AND expect = ? AND confirmed_at < ?",
            (server, CONFIRMED, ABSENT, now - KEEP_GONE),
        )
    return [path for path, _reason in decision.stuck]


def _hist_key(server: str) -> str:
    return f"{server}.confirm_seconds"


def _observe(store: Store, server: str, seconds: float) -> None:
    hist = histogram(store, server)
    for index, bound in enumerate(BUCKETS):
        if seconds <= bound:
            hist["buckets"][index] += 1
    hist["count"] += 1
    hist["sum"] += seconds
    store.set_meta(_hist_key(server), json.dumps(hist))


def histogram(store: Store, server: str) -> dict[str, Any]:
    """Cumulative counts per bucket of seconds from a link's creation to its confirmation (survives restarts)."""
    empty: dict[str, Any] = {"bounds": list(BUCKETS), "buckets": [0] * len(BUCKETS), "count": 0, "sum": 0.0}
    raw = store.get_meta(_hist_key(server))
    try:
        hist = json.loads(raw) if raw else empty
    except ValueError:
        hist = empty
    if hist.get("bounds") != list(BUCKETS):
        hist = empty
    return dict(hist)


def counts(store: Store, server: str) -> dict[str, Any]:
    """For ``status``: ``pending``, ``confirmed``, ``stuck`` and the stuck paths with their reasons."""
    found = dict(
        store.execute("SELECT state, count(*) FROM server_change WHERE server = ? GROUP BY state", (server,)).fetchall()
    )
    stuck_rows = store.execute(
        "SELECT path, reason, sent_at FROM server_change WHERE server = ? AND state = ? ORDER BY sent_at LIMIT ?",
        (server, STUCK, SHOWN_STUCK),
    ).fetchall()
    return {
        "pending": sum(int(found.get(state, 0)) for state in PENDING_STATES),
        "confirmed": int(found.get(CONFIRMED, 0)),
        "stuck": int(found.get(STUCK, 0)),
        "stuck_paths": [{"path": os.fsdecode(bytes(r[0])), "reason": r[1], "since": r[2]} for r in stuck_rows],
        "confirm_seconds": histogram(store, server),
    }


def now() -> float:
    return time.time()
