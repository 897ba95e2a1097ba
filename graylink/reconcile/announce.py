"""The media-server side of a cycle: queue its changes before applying, withdraw what was not done.

A run killed after a link was made but before it was recorded finds the link
correct next time and only adopts it: queued afterwards, its update would be
lost. Queued ahead, it survives the kill; what turns out not to be done is
withdrawn when the results are recorded.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Set
from typing import TYPE_CHECKING

from graylink.config import Config, Server
from graylink.links.apply import ApplyResult
from graylink.links.planner import TEMP_RE, Action, Op
from graylink.source.index import SETTLE_NEW
from graylink.source.sidecars import is_sidecar
from graylink.store.db import Store

if TYPE_CHECKING:  # the notifiers (requests) load only when configured
    from graylink.notify.queue import DeliveryResult

log = logging.getLogger(__name__)


def media_changes(config: Config, actions: list[Action], waiting: Set[bytes] = frozenset()) -> list[tuple[Op, bytes]]:
    """The changes the media server must hear about: not conflicts, not leftovers of a killed run,
    not the creates of files still settling (``waiting``: graylink.reconcile.settle announces them)."""
    root = os.fsencode(config.paths.target).rstrip(b"/")
    # A sidecar is announced as its folder: not while a video there still
    # settles (the server would look at a file still being written); that
    # video's Created, once it holds still, shows the server the folder.
    held = {path.rpartition(b"/")[0] for path in waiting}
    return [
        (a.op, root + b"/" + a.link)
        for a in actions
        if a.op in (Op.CREATE, Op.REPAIR, Op.PRUNE)
        and not TEMP_RE.match(a.link.rpartition(b"/")[2])
        and not (a.op is Op.CREATE and a.link in waiting)
        and not (a.op is not Op.PRUNE and held and _held_sidecar(a.link, held))
    ]


def _held_sidecar(link: bytes, held: Set[bytes]) -> bool:
    folder, _, name = link.rpartition(b"/")
    return folder in held and is_sidecar(name)


def waiting(store: Store) -> set[bytes]:
    """New files whose Created waits until they hold still (graylink.reconcile.settle)."""
    rows = store.execute("SELECT path FROM settling WHERE kind = ?", (SETTLE_NEW,))
    return {bytes(row[0]) for row in rows}


def queue_changes(config: Config, store: Store, changes: list[tuple[Op, bytes]]) -> None:
    """Queue ``changes`` for every configured server that can see them (inside the caller's transaction)."""
    from graylink.notify.queue import enqueue

    for server in config.servers:
        enqueue(store, _seen_by(config, server, changes), (server.key,))


def announce(config: Config, store: Store, actions: list[Action]) -> int:
    """Queue the media server updates of a plan BEFORE applying it; returns the last queue id before them."""
    if not config.servers:
        return 0  # no server: the notifiers are not even loaded
    with store.atomic():
        changes = media_changes(config, actions, waiting(store))
        before = int(store.execute("SELECT coalesce(max(id), 0) FROM emby_queue").fetchone()[0])
        queue_changes(config, store, changes)
    return before


def _seen_by(config: Config, server: Server, changes: list[tuple[Op, bytes]]) -> list[tuple[Op, bytes]]:
    """The changes ``server`` is told: in a config with named sections, a server
    with a ``path_map`` hears only the links its map covers (it cannot see the
    others); a config of today sends every change, as it always did."""
    if not (config.named and server.path_map):
        return changes
    from graylink.notify.pathmap import is_under

    prefixes = [prefix for prefix, _ in server.path_map]
    return [(op, path) for op, path in changes if any(is_under(os.fsdecode(path), p) for p in prefixes)]


def withdraw(config: Config, store: Store, announced: int, applied: ApplyResult) -> None:
    """Drop this run's queued updates for links it did not change (failed, or not reached)."""
    if not config.servers:
        return
    root = os.fsencode(config.paths.target).rstrip(b"/")
    done = {root + b"/" + a.link for a in applied.done}
    rows = store.execute("SELECT id, path FROM emby_queue WHERE id > ?", (announced,)).fetchall()
    undone = [row for row in rows if bytes(row[1]) not in done]
    store.executemany("DELETE FROM emby_queue WHERE id = ?", ((row[0],) for row in undone))
    from graylink.notify.changes import untrack

    untrack(store, (bytes(row[1]) for row in undone))


def retry_stuck(config: Config, store: Store, rels: list[bytes]) -> None:
    """``reconcile --path``: the stuck changes at or under the paths are sent again (the CLI's "send again")."""
    from graylink.notify.changes import retry_under
    from graylink.notify.queue import configured

    if not rels:
        return
    root = os.fsencode(config.paths.target).rstrip(b"/")
    links = [root + b"/" + rel if rel else root for rel in rels]
    with store.atomic():
        count = sum(retry_under(store, server, links, time.time()) for server in configured(config))
    if count:
        log.info("%d stuck changes under the given paths are sent again", count)


def notify(config: Config, store: Store, should_stop: Callable[[], bool] | None = None) -> dict[str, DeliveryResult]:
    """Tell each media server what changed: this run's changes and any still queued for it.

    ``should_stop`` (the loop's stop request) ends a delivery at once; its updates stay queued.
    """
    from graylink.notify.deliver import deliver_all

    deliveries = deliver_all(config, store, should_stop=should_stop)
    for name, delivery in deliveries.items():
        if not delivery.ok:
            log.warning(
                "the links themselves are done; %d updates for [%s] stay queued for the next run",
                delivery.pending,
                name,
            )
    return deliveries
