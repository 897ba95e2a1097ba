"""waitress with bounds an unauthenticated client cannot stretch (issue 26, item 5).

waitress reads a whole request (headers and body) before the application sees
it, and by default keeps a connection that trickles bytes for ever. So, at the
HTTP layer, before any route runs:

- a ``Content-Length`` over ``MAX_BODY`` is answered 413 before one byte of
  the body is read, and a chunked body is cut at ``MAX_BODY`` while it is read
  (``max_request_body_size``); headers are capped at ``MAX_HEADER``;
- with a token, the token is checked as soon as the headers are in: a request
  without it reads no body (it is answered 401 by the app, and the
  connection closed);
- a body up to ``MAX_BODY`` stays in memory (``inbuf_overflow``): nothing is
  spooled to ``TMPDIR``;
- one request must arrive whole within ``REQUEST_DEADLINE_S`` of its first
  byte, and an idle connection is closed after ``IDLE_S``: half-open or
  trickling connections (slowloris) are dropped within seconds;
- ``CONNECTIONS`` connections at once (waitress's default, 100, was what a
  flood of 110 half-open connections exhausted): a bounded flood leaves room
  for the authorised probe, ``/metrics`` and the page.

The numbers come from measurements with these knobs (docs/web.md, Limits).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer

from graylink.web.guard import authorized

MAX_BODY = 1 << 20  # a webhook payload is a few kB
MAX_HEADER = 64 << 10
CONNECTIONS = 500  # under the 1024 open files a service gets by default
REQUEST_DEADLINE_S = 10.0
IDLE_S = 10  # keep-alive and silent connections: as long as a request may take
CLEANUP_S = 1

ADJUSTMENTS: dict[str, Any] = {
    "max_request_body_size": MAX_BODY,
    "max_request_header_size": MAX_HEADER,
    "inbuf_overflow": MAX_BODY + MAX_HEADER,
    "connection_limit": CONNECTIONS,
    "channel_timeout": IDLE_S,
    "cleanup_interval": CLEANUP_S,
}


class _HeaderView:
    """waitress's parsed headers (``X_API_KEY``) read by HTTP name (``X-Api-Key``)."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = headers

    def get(self, key: str, default: str) -> str:
        return self._headers.get(key.upper().replace("-", "_"), default)


def bounded_server(server: Any, token: Callable[[], str]) -> None:
    """Turn the servers ``create_server`` made (one per listening socket) into bounded ones."""

    class Parser(HTTPRequestParser):
        def __init__(self, adj: Any) -> None:
            super().__init__(adj)
            self.started = time.monotonic()  # made at the request's first byte
            self.refused = False

        def received(self, data: bytes) -> int:
            if self.refused:
                return len(data)
            had_headers = self.headers_finished
            consumed = int(super().received(data))
            if had_headers or not self.headers_finished or self.completed or self.body_rcv is None:
                return consumed
            secret = token()
            if secret and not authorized(_HeaderView(self.headers), secret):
                # The body is never read: the app answers 401 and the connection closes.
                self.body_rcv = None
                headers: dict[str, str] = self.headers  # type: ignore[assignment]  # a dict at run time
                headers["CONTENT_LENGTH"] = "0"
                headers["CONNECTION"] = "close"
                self.completed = self.refused = True
                return len(data)  # what came with the headers is dropped too
            return consumed

    class Channel(HTTPChannel):
        parser_class = Parser

    class Server(TcpWSGIServer):
        channel_class = Channel

        def maintenance(self, now: int) -> None:
            super().maintenance(now)  # closes connections idle for IDLE_S
            late = time.monotonic() - REQUEST_DEADLINE_S
            channels: dict[int, Any] = self.active_channels  # type: ignore[assignment]  # a dict at run time
            for channel in list(channels.values()):
                request = getattr(channel, "request", None)
                if isinstance(request, Parser) and not request.completed and request.started < late:
                    channel.will_close = True  # headers or body not in after the deadline

    found = [server] if isinstance(server, TcpWSGIServer) else list(server.map.values())
    for each in found:
        if isinstance(each, TcpWSGIServer):
            each.__class__ = Server
