"""One Changes poll per Drive for the libraries of one service, routed by folder.

Two libraries on the same Drive (the same rclone remote, shared drive and
API endpoint: :func:`drive_key`) would each list the same ``changes.list``
pages every interval: the Changes feed covers the whole Drive, not a folder.
In a service of several libraries, the service layer hands every library's
poll one :class:`ChangePages` (per process); the first library to ask for
the pages from a token fetches them, and the others, asking within the same
interval, take the same pages instead of calling Google again. Each library
then routes the changes through its own item record: a change under its
root marks its database, anything else is dropped there (as for one).

Where the page token lives, and why it stays right when a library is added
or removed: each library's database keeps the token it has consumed
(``drive.page_token``, as for one library), written in the same transaction
as its marks. Nothing is stored per remote. A poll starts from the oldest
token that any library of the remote started from in this interval, when it
is not newer than the library's own (Drive's page tokens are change numbers,
compared as integers; a token that is not a number is never compared, it is
only fetched for its own library). Reading from an older token re-reads
changes the library already had: a change carries the item as it is now, so
that costs at most a folder marked again, never a change missed. A library
added later starts from a fresh token of its own, reads the others' chain
from then on, and after one poll all hold the same token again; a library
removed takes its token with it, the others never needed it; after a
restart each resumes from its own token, the oldest serving all.

The Activity feed's query is shared the same way, routed by the item record
as well (graylink.drive.shared_activity); this registry carries it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from graylink.drive.shared_activity import ActivityPages

log = logging.getLogger(__name__)

DriveKey = tuple[str, ...]


@dataclass
class _Fetched:
    page: object  # a graylink.drive.changes.Page (typed at the caller: no import circle)
    at: float


@dataclass
class _Group:
    lock: threading.Lock = field(default_factory=threading.Lock)
    pages: dict[str, _Fetched] = field(default_factory=dict)  # token -> the page listed from it
    starts: dict[str, float] = field(default_factory=dict)  # tokens a poll started from -> when
    fetches: int = 0  # pages fetched from Google (the others were shared)


class ChangePages:
    """The pages of ``changes.list`` shared by the libraries of one process, per Drive."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._groups: dict[DriveKey, _Group] = {}
        self.activity = ActivityPages(clock)  # the Activity feed's answers, shared the same way

    def view(self, key: DriveKey, ttl: float) -> SharedFeed:
        with self._lock:
            group = self._groups.setdefault(key, _Group())
        return SharedFeed(group, ttl, self._clock)


class SharedFeed:
    """One library's poll as it shares pages with the other libraries on its Drive."""

    def __init__(self, group: _Group, ttl: float, clock: Callable[[], float]) -> None:
        self._group = group
        self._ttl = ttl
        self._clock = clock
        self.shared = 0  # pages this poll took from another library's fetch

    def _forget_old(self, now: float) -> None:
        group = self._group
        for token in [t for t, fetched in group.pages.items() if now - fetched.at > self._ttl]:
            del group.pages[token]
        for token in [t for t, at in group.starts.items() if now - at > self._ttl]:
            del group.starts[token]

    def start(self, own: str) -> str:
        """The token to read from: the oldest that another library started from in this interval,
        when it is not newer than ``own`` (never skips a change ``own`` has not had), else ``own``."""
        with self._group.lock:
            now = self._clock()
            self._forget_old(now)
            older = [t for t in self._group.starts if t.isdigit() and own.isdigit() and int(t) <= int(own)]
            token = min(older, key=int) if older else own
            self._group.starts.setdefault(token, now)
            return token

    def page(self, token: str, fetch: Callable[[str], object]) -> object:
        """The page listed from ``token``: fetched in this interval by any library, else now."""
        with self._group.lock:  # a second library asking meanwhile waits for this fetch
            now = self._clock()
            self._forget_old(now)
            fetched = self._group.pages.get(token)
            if fetched is not None:
                self.shared += 1
                return fetched.page
            page = fetch(token)
            self._group.pages[token] = _Fetched(page, self._clock())
            self._group.fetches += 1
            return page


def drive_key(conf_path: str, remote: str, team_drive: str, endpoint: str, source: str) -> DriveKey:
    """Libraries whose changes come from one Drive as one account sees it: the same rclone
    remote (after aliases, in the same rclone.conf), shared drive, API endpoint and credentials."""
    return (conf_path, remote, team_drive, endpoint, source)
