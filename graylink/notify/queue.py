"""The durable queue of link changes, with a place per media server.

Link changes are queued in the transaction that records them, once for each
configured server (``emby`` is the ``[emby]`` section, Emby or Jellyfin;
``plex`` is ``[plex]``). Each server's rows leave the queue only after THAT
server answered 2xx for them, so a server that is down, refusing its key or
slow never holds back, loses or duplicates another's updates. DB work only:
the protocols (:mod:`graylink.notify.emby`, :mod:`graylink.notify.plex`)
do the talking.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from graylink.config import Config
from graylink.links.planner import Op
from graylink.notify import changes as tracking
from graylink.notify.batch import QUEUED_OPS
from graylink.store.db import Store

log = logging.getLogger(__name__)

SERVERS = ("emby", "plex")  # the kinds of media server, in delivery order


def configured(config: Config) -> tuple[str, ...]:
    """The servers this config (or this library's view of it) tells, by their
    place in the queue: ``emby``, ``plex`` for the unnamed sections (as always),
    ``emby NAME``, ``plex NAME`` for named ones."""
    return tuple(server.key for server in config.servers)


def _meta_key(server: str) -> str:
    return f"{server}.last_delivery"  # "emby.last_delivery" predates Plex: kept as it was


@dataclass(frozen=True, slots=True)
class Queued:
    id: int
    path: bytes
    op: Op


@dataclass
class DeliveryResult:
    """What one server's delivery did in one cycle."""

    sent: int = 0  # queued changes delivered and removed from the queue
    entries: int = 0  # entries (Emby) or partial scans (Plex) in the requests sent
    pending: int = 0  # this server's changes still queued afterwards
    mode: str = "none"  # targeted | library | section | none (nothing was sent)
    server: str = ""  # emby | jellyfin | plex, when known
    error: str = ""  # why updates were kept ("" when all is well)
    refused: bool = False  # the server refused the credentials
    skipped: int = 0  # changes under no library or section: reported once, dropped
    stopped: bool = False  # a stop request (SIGTERM) ended the delivery: not a failure of the server
    outside: dict[int, str] = field(default_factory=dict, repr=False)  # skipped row id -> the server's path
    confirmed: int = 0  # changes this cycle found in the server's library
    stuck: list[str] = field(default_factory=list)  # link paths that became stuck this cycle
    plugin: str = ""  # Emby/Jellyfin Targeted Scans plugin: used | absent | "" (not tried)
    scanned: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)  # its answer: path -> status, item

    @property
    def ok(self) -> bool:
        return not self.error

    def as_json(self) -> dict[str, Any]:
        doc = {**asdict(self), "ok": self.ok}
        doc.pop("outside")
        doc.pop("scanned")
        return doc


def enqueue(store: Store, changes: Iterable[tuple[Op, bytes]], servers: Sequence[str] = ("emby",)) -> int:
    """Queue link changes for each of ``servers``; DB writes only.

    ``changes`` holds ``(op, absolute link path)``; op is create, repair or
    prune. The caller holds the transaction that records the links, so the
    queue and the link table never disagree. Returns the number of changes queued.
    """
    now = time.time()
    rows: list[tuple[object, ...]] = []
    count = 0
    changes = list(changes)
    for op, path in changes:
        if op not in QUEUED_OPS:
            raise ValueError(f"{op.value} is not a change the media server is told about")
        if not path.startswith(b"/"):
            raise ValueError(f"link path must be absolute: {path!r}")
        count += 1
        rows.extend((bytes(path), op.value, now, server) for server in servers)
    if rows:
        store.executemany("INSERT INTO emby_queue (path, op, queued_at, server) VALUES (?, ?, ?, ?)", rows)
        tracking.track(store, changes, servers, now)
    return count


def queued(store: Store, server: str) -> list[Queued]:
    cursor = store.execute("SELECT id, path, op FROM emby_queue WHERE server = ? ORDER BY id", (server,))
    return [Queued(row[0], bytes(row[1]), Op(row[2])) for row in cursor]


def pending(store: Store, server: str) -> int:
    return int(store.execute("SELECT count(*) FROM emby_queue WHERE server = ?", (server,)).fetchone()[0])


def drop_unconfigured(store: Store, servers: Sequence[str]) -> None:
    """Forget the queued updates of a server no longer configured, saying so (they would wait forever)."""
    marks = ",".join("?" * len(servers)) or "''"
    rows = store.execute(
        f"SELECT server, count(*) FROM emby_queue WHERE server NOT IN ({marks}) GROUP BY server", tuple(servers)
    ).fetchall()
    if not rows:
        return
    with store.atomic():
        for server, count in rows:
            log.warning("[%s] is no longer configured: dropping its %d queued updates", server, count)
            store.execute("DELETE FROM emby_queue WHERE server = ?", (server,))
        tracking.drop_unconfigured(store, servers)


def finish(store: Store, name: str, done: Iterable[int], result: DeliveryResult, rows: Sequence[Queued] = ()) -> None:
    """Remove the rows ``name`` acknowledged, and record how its delivery went, in one transaction.

    The acknowledged changes start their wait for confirmation; those the
    server could not take (under none of its libraries) are stuck at once.
    """
    done = list(done)
    with store.atomic():
        now = time.time()
        paths = {row.id: row.path for row in rows}
        result.outside = {i: where for i, where in result.outside.items() if i in paths}
        taken = set(done) - set(result.outside)
        tracking.sent(store, name, (paths[i] for i in taken if i in paths), now)
        outside = [(paths[i], f"no library of the server holds {where}") for i, where in result.outside.items()]
        store.executemany(
            "UPDATE server_change SET state = ?, reason = ?, sent_at = ? WHERE server = ? AND path = ? AND state = ?",
            ((tracking.STUCK, reason, now, name, path, tracking.QUEUED) for path, reason in outside),
        )
        result.stuck.extend(os.fsdecode(path) for path, _reason in outside)
        store.executemany("DELETE FROM emby_queue WHERE id = ? AND server = ?", ((i, name) for i in done))
        result.pending = pending(store, name)
        record = {
            "time": time.time(),
            "ok": result.ok,
            "sent": result.sent,
            "entries": result.entries,
            "mode": result.mode,
            "server": result.server,
            "error": result.error,
            "skipped": result.skipped,
        }
        store.set_meta(_meta_key(name), json.dumps(record))


def queue_status(store: Store, server: str = "emby") -> dict[str, Any]:
    """For ``graylink status``: what waits for ``server`` and how its last delivery went.

    ``queued``: updates not delivered yet; ``pending``, ``confirmed``,
    ``stuck``: the changes by their state in the server's library.
    """
    row = store.execute(
        "SELECT count(*), count(DISTINCT path), min(queued_at) FROM emby_queue WHERE server = ?", (server,)
    ).fetchone()
    last_raw = store.get_meta(_meta_key(server))
    last: dict[str, Any] | None = None
    if last_raw:
        try:
            last = json.loads(last_raw)
        except ValueError:
            last = None
    seen = store.get_meta(f"{server}.server_mount")  # graylink.notify.server_mount's last verdict
    return {
        **({"server_mount": json.loads(seen)} if seen else {}),
        **tracking.counts(store, server),
        "queued": int(row[0]),
        "queued_paths": int(row[1]),
        "oldest_queued_at": row[2],
        "last_delivery": last,
    }
