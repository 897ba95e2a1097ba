"""One media server seen by several libraries of one service: its hold is shared.

:mod:`graylink.notify.protect` holds a server's own library scans while a
library's mount is down, and puts its settings back when the mount is back.
Each library keeps its hold rows in its own database. With two libraries on
one server, the naive per-library rule undoes a hold too early: library ``a``
back would put the triggers back while ``b``'s mount is still down (and ``b``
would hold them again only at its next check, after a window in which the
server's scan may run and remove ``b``'s items).

So, in a service of several libraries, this registry (one per process, shared
by the libraries' threads) decides:

- a server is released only when every library that sees it has been checked
  and found healthy (a library not checked yet counts as down);
- the server's settings are saved (and later restored) by ONE library, the
  ``holder``: another library that goes down while the server is held only
  stops running scans and records that it is engaged, so no library ever
  saves a value that another library's hold wrote (which would, put back
  last, replace the user's triggers with an empty list).

The holder is found at start from the databases (a hold that survived a crash
keeps its holder), so the rule holds across restarts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping


class SharedHolds:
    def __init__(self, seers: Mapping[str, Iterable[str]], holders: Mapping[str, str] | None = None) -> None:
        """``seers``: server key -> the libraries that see it; ``holders``: server -> the library whose
        database already holds its saved settings (from a previous run)."""
        self._lock = threading.Lock()
        self._seers = {server: frozenset(libraries) for server, libraries in seers.items()}
        self._healthy: dict[str, bool] = {}
        self._holder = dict(holders or {})

    def report(self, library: str, healthy: bool, servers: Iterable[str] | None = None) -> None:
        """A library's mount check: its health now, and (after a SIGHUP, maybe other) the servers that see it."""
        with self._lock:
            self._healthy[library] = healthy
            if servers is None:
                return
            sees = set(servers)
            for server in sees | set(self._seers):
                seers = set(self._seers.get(server, ()))
                seers = seers | {library} if server in sees else seers - {library}
                self._seers[server] = frozenset(seers)

    def claim(self, server: str, library: str) -> bool:
        """Whether ``library`` saves (and will restore) ``server``'s settings: the first one down does."""
        with self._lock:
            holder = self._holder.setdefault(server, library)
            return holder == library

    def may_release(self, server: str) -> bool:
        """Every library that sees ``server`` was checked and is healthy."""
        with self._lock:
            return all(self._healthy.get(library, False) for library in self._seers.get(server, ()))

    def released(self, server: str, library: str) -> None:
        """``library`` put ``server``'s settings back: the next outage may be held by anyone."""
        with self._lock:
            if self._holder.get(server) == library:
                del self._holder[server]

    def down(self, server: str) -> list[str]:
        """The libraries seeing ``server`` not known healthy (for the log)."""
        with self._lock:
            return sorted(lib for lib in self._seers.get(server, ()) if not self._healthy.get(lib, False))
