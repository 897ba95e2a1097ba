"""HTTP requests with a deadline for the WHOLE request, not per read.

requests' ``timeout`` bounds the connect and each socket read: a server that
answers one byte every few seconds never trips it, and a request (then a
cycle, then the loop's stop) waits as long as the server likes. A
:class:`DeadlineSession` is a ``requests.Session`` whose every request ends
by ``total`` seconds: a watchdog shuts the request's socket down at the
deadline, which wakes the blocked read, and the request raises
:class:`DeadlineExceeded` (a ``requests.Timeout``, so callers that classify
timeouts need no change). A ``should_stop`` callable, asked a few times a
second, ends a request the same way (:class:`RequestStopped`): a stop
request (SIGTERM) never waits for a server.

Use it for every network call graylink makes with requests (media servers,
rclone's rc, google-auth's token refresh through
``google.auth.transport.requests.Request(session=...)``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager

CONNECT_TIMEOUT = 5.0
STOP_POLL = 0.2  # how often a running request asks should_stop


class DeadlineExceeded(requests.Timeout):
    """The whole request took longer than its deadline."""


class RequestStopped(requests.RequestException):
    """The request was ended because a stop was requested."""


class _Watch:
    """One request's watchdog: shuts down the sockets of the connections it used."""

    def __init__(self, total: float, should_stop: Callable[[], bool] | None) -> None:
        self.deadline = time.monotonic() + total
        self.should_stop = should_stop
        self.connections: list[HTTPConnection] = []
        self.fired = ""  # "deadline" | "stop" once it ended the request
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="http-deadline", daemon=True)

    def __enter__(self) -> _Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def add(self, connection: HTTPConnection) -> None:
        with self._lock:
            self.connections.append(connection)
            fired = bool(self.fired)
        if fired:  # the deadline passed while this connection was being set up
            _shut(connection)

    def _run(self) -> None:
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self._fire("deadline")
                return
            if self._done.wait(min(left, STOP_POLL) if self.should_stop else left):
                return
            if self.should_stop is not None and self.should_stop():
                self._fire("stop")
                return

    def _fire(self, why: str) -> None:
        with self._lock:
            self.fired = why
            connections = list(self.connections)
        for connection in connections:
            _shut(connection)


def _shut(connection: HTTPConnection) -> None:
    sock = getattr(connection, "sock", None)
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked in another thread


_current = threading.local()  # the running request's _Watch, in the thread that runs it


def _watch_connection(connection: HTTPConnection) -> None:
    watch: _Watch | None = getattr(_current, "watch", None)
    if watch is not None:
        watch.add(connection)


class _Connection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch_connection(self)
        super().request(*args, **kwargs)


class _TLSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch_connection(self)
        super().request(*args, **kwargs)


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


_POOLS = {"http": _Pool, "https": _TLSPool}


class _Adapter(HTTPAdapter):
    """An adapter whose connections report to the running request's watchdog."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _POOLS
        return manager


class DeadlineSession(requests.Session):
    """A ``requests.Session`` whose every request (each hop of a redirect) ends within ``total`` seconds."""

    def __init__(
        self,
        total: float,
        *,
        connect: float = CONNECT_TIMEOUT,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__()
        self.total = total
        self.connect = connect
        self.should_stop = should_stop
        self.mount("http://", _Adapter())
        self.mount("https://", _Adapter())

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        total = self.total
        if self.should_stop is not None and self.should_stop():
            raise RequestStopped("stop requested before the request was sent")
        # The socket's own timeouts still apply (and never exceed the deadline):
        # a connect that hangs fails at its usual time.
        kwargs["timeout"] = (min(self.connect, total), total)
        watch = _Watch(total, self.should_stop)
        _current.watch = watch
        try:
            with watch:
                try:
                    response = super().send(request, **kwargs)
                    if not kwargs.get("stream"):
                        _ = response.content  # the body is read under the watch too
                    return response
                except requests.RequestException:
                    if watch.fired:
                        raise self._ended(watch, request) from None
                    raise
                except OSError:  # a read woken by the shutdown can surface as a bare socket error
                    if watch.fired:
                        raise self._ended(watch, request) from None
                    raise
        finally:
            _current.watch = None

    def _ended(self, watch: _Watch, request: requests.PreparedRequest) -> requests.RequestException:
        if watch.fired == "stop":
            return RequestStopped("stopped on request", request=request)
        return DeadlineExceeded(f"no complete answer within {self.total:g}s", request=request)
