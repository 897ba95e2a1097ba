"""One Activity query per Drive for the libraries of one service, routed by the item record.

The Activity feed asks ``activity:query`` for everything under a library's
folder (``ancestorName``). Two libraries on the same Drive (:func:`drive_key`)
would each send that query every interval. In a service of several libraries
the first library to poll in an interval asks once for the libraries' common
ancestor folder (the deepest folder above every library's folder that polls
on that Drive), and the others, asking within the same interval, take that
answer instead of calling Google again.

Routing. Each library hands every activity of the shared answer to its own
item record and resolver, as its own query's: an item the record knows, or
whose folder (``files.get`` of it and its ancestors, shared by the libraries
for the interval) lies under the library's folder, marks that library; an
item placed outside it marks nothing there. A move names its removed parents
(Drive Activity v2 ``Move.removedParents``), so an item that left a library
is found by the folder it left. What no record and no ancestor can place is
an item deleted for good (``Delete.type = PERMANENT_DELETE``: ``files.get``
answers 404 and the activity names no parent, ``DriveItem`` has none). Alone,
a library's own query proves such an item lay under its folder, and it marks
the whole source. From the shared query it proves nothing, so the library
asks its own query for just those activities' time span (one more query, only
when such a deletion came) and keeps those its own query returns: a deletion
under library B prunes in B only, and no library is marked whole for another's.

Coverage. The ancestor is found from each library folder's parents, once per
process. A move of a folder between the ancestor and a library's folder
(seen in the shared answer: the folder lay under the ancestor) may take the
library out of it: that library then queries its own folder for this poll,
and its chain is found again for the next.

Positions. Each library keeps its own cursor (``drive.cursor_ms``) and handled
keys in its own database, as alone. A shared query starts from the oldest
position that any library of the group asked from within the last intervals,
and each library takes only the activities after its own position: a restart
resumes each from its own cursor, the oldest serving all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from graylink.drive.activity import Activity, Source, fetch_activities
from graylink.drive.google import DriveClients, runtime_error
from graylink.drive.items import MAX_DEPTH, Fetch, ItemInfo, fetcher

log = logging.getLogger(__name__)

DriveKey = tuple[str, ...]
Chain = tuple[str, ...]  # a folder's ID, then its parent's, up to the top of its Drive


@dataclass
class _Fetched:
    ancestor: str
    since_ms: int
    at: float
    activities: list[Activity]


@dataclass
class _Group:
    # Re-entrant: a library's chain is found (files.get, through lookup) while it holds the lock.
    lock: threading.RLock = field(default_factory=threading.RLock)
    chains: dict[str, Chain] = field(default_factory=dict)  # library folder -> its chain
    positions: dict[str, tuple[int, float]] = field(default_factory=dict)  # folder -> (since_ms, when asked)
    fetched: _Fetched | None = None
    infos: dict[str, tuple[ItemInfo | None, float]] = field(default_factory=dict)  # files.get answers
    refused: set[str] = field(default_factory=set)  # common folders Google would not query
    settled: dict[str, int] = field(default_factory=dict)  # folder -> its chain's newest move already in it
    fetches: int = 0  # activity queries sent for the group (the others were shared)


class ActivityPages:
    """The Activity answers shared by the libraries of one process, per Drive."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._groups: dict[DriveKey, _Group] = {}

    def view(self, key: DriveKey, ttl: float) -> SharedActivity:
        with self._lock:
            group = self._groups.setdefault(key, _Group())
        return SharedActivity(group, ttl, self._clock)

    def fetches(self, key: DriveKey) -> int:
        with self._lock:
            group = self._groups.get(key)
        return group.fetches if group is not None else 0


def common_ancestor(mine: Chain, others: list[Chain]) -> str:
    """The deepest folder of ``mine`` that lies above every chain of ``others`` on the same Drive."""
    peers = [set(chain) for chain in others if chain and chain[-1] == mine[-1]]
    return next(folder for folder in mine if all(folder in peer for peer in peers))


class SharedActivity:
    """One library's poll as it shares the Activity answer with the other libraries on its Drive."""

    def __init__(self, group: _Group, ttl: float, clock: Callable[[], float]) -> None:
        self._group = group
        self._ttl = ttl
        self._clock = clock
        self.shared = 0  # answers this library took from another library's query

    def activities(
        self,
        root_id: str,
        since_ms: int,
        chain: Callable[[], Chain],
        query: Callable[[str, int], list[Activity]],
        overlap_ms: int = 0,
    ) -> list[Activity] | None:
        """The activities after ``since_ms`` from a query that covers ``root_id``: another library's
        within this interval, else one sent now for the common ancestor. None: query the folder itself.
        ``overlap_ms``: how far before its cursor the library asks (its next position, foreseen)."""
        group = self._group
        with group.lock:  # a second library asking meanwhile waits for this query
            now = self._clock()
            group.positions[root_id] = (since_ms, now)
            if root_id not in group.chains:
                group.chains[root_id] = chain()
            mine = group.chains[root_id]
            fetched = group.fetched
            if (
                fetched is None
                or now - fetched.at > self._ttl
                or fetched.ancestor not in mine
                or fetched.since_ms > since_ms
            ):
                active = [r for r, (_, at) in group.positions.items() if now - at <= 3 * self._ttl]
                ancestor = common_ancestor(mine, [group.chains[r] for r in active if r in group.chains])
                ancestor = root_id if ancestor in group.refused else ancestor
                covered = [r for r in active if ancestor in group.chains.get(r, ())]
                since = min(group.positions[r][0] for r in covered)
                try:
                    answer = query(ancestor, since)
                except Exception as exc:
                    if ancestor == root_id or not _refused(exc):
                        raise
                    log.warning(
                        "drive feed: Google refused the activities of folder %s, the common folder of the libraries "
                        "on this Drive (%s); each library queries its own folder",
                        ancestor,
                        exc,
                    )
                    group.refused.add(ancestor)
                    return None
                fetched = _Fetched(ancestor, since, now, answer)
                group.fetched = fetched
                group.fetches += 1
            else:
                self.shared += 1
            below = set(mine[: mine.index(fetched.ancestor)])
            moved = [
                a.time_ms
                for a in fetched.activities
                if a.time_ms > group.settled.get(root_id, -1)
                for c in a.changes
                if c.kind == "move" and c.item_id in below
            ]
            if moved:
                # The library's folder may have left the ancestor: its own query this time, its chain
                # anew (found after these moves, so they are in it: the overlap's repeats are not news).
                group.settled[root_id] = max(moved)
                del group.chains[root_id]
                return None
            taken = [a for a in fetched.activities if a.time_ms > since_ms]
            # Where it will ask from next (its cursor moves to the newest activity): the next interval's
            # first query need not go back further for it. Asking from older, it is not covered and asks anew.
            group.positions[root_id] = (max([since_ms, *(a.time_ms - overlap_ms for a in taken)]), now)
            return taken

    def lookup(self, fetch: Fetch) -> Fetch:
        """``files.get`` answered once per interval for every library of the group."""
        group = self._group

        def cached(item_id: str) -> ItemInfo | None:
            with group.lock:
                hit = group.infos.get(item_id)
                now = self._clock()
                if hit is not None and now - hit[1] <= self._ttl:
                    return hit[0]
            info = fetch(item_id)
            with group.lock:
                group.infos = {k: v for k, v in group.infos.items() if now - v[1] <= self._ttl}
                group.infos[item_id] = (info, now)
            return info

        return cached


def _refused(exc: Exception) -> bool:
    """Google refuses that folder (403/404), not the token's scope nor the rate: its own folder may do."""
    from googleapiclient.errors import HttpError

    from graylink.drive.google import retry_wait

    if not isinstance(exc, HttpError) or exc.resp.status not in (403, 404) or retry_wait(exc, 1) is not None:
        return False
    return not runtime_error(exc)[1]


def chain_of(fetch: Fetch, root_id: str) -> Chain:
    """The library folder and its ancestors, by ``files.get``; a folder Google does not show ends it."""
    chain = [root_id]
    for _ in range(MAX_DEPTH):
        info = fetch(chain[-1])
        if info is None or not info.parents or info.parents[0] in chain:
            break
        chain.append(info.parents[0])
    return tuple(chain)


def shared_source(view: SharedActivity, clients: DriveClients, root_id: str, overlap_ms: int) -> Source:
    """A library's activities from the query it shares with the other libraries on its Drive."""
    lookup = view.lookup(fetcher(clients))

    def activities(since_ms: int) -> list[Activity]:
        got = view.activities(
            root_id,
            since_ms,
            lambda: chain_of(lookup, root_id),
            lambda ancestor, since: list(fetch_activities(clients, ancestor, since)),
            overlap_ms,
        )
        return got if got is not None else list(fetch_activities(clients, root_id, since_ms))

    return Source(activities, lookup, confirm=lambda lo, hi: list(fetch_activities(clients, root_id, lo, hi)))
