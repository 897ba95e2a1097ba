"""Runs the web app on waitress, in a daemon thread of the service.

waitress parses HTTP (no hand-written parsing here), with the bounds of
:mod:`graylink.web.bounded`; the thread is a daemon
so a stuck request can never keep the process from exiting, and ``close``
stops accepting at once when the loop ends.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import threading

from graylink.config.values import listen_address
from graylink.errors import ConfigError
from graylink.web.app import WebContext, create_app
from graylink.web.bounded import ADJUSTMENTS, bounded_server

log = logging.getLogger(__name__)


class WebServer:
    def __init__(self, listen: str, ctx: WebContext, threads: int = 4) -> None:
        from waitress.server import create_server

        host, port = listen_address(listen)
        try:
            self._server = create_server(
                create_app(ctx),
                host=host,
                port=port,
                threads=threads,
                ident="graylink",
                clear_untrusted_proxy_headers=True,
                **ADJUSTMENTS,
            )
            bounded_server(self._server, lambda: ctx.config().web.token)
        except OSError as exc:
            reason = "the port is in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise ConfigError(f"[web] listen = {listen}: cannot listen there ({reason})") from None
        except socket.gaierror as exc:
            raise ConfigError(f"[web] listen = {listen}: unknown host ({exc.strerror})") from None
        self.listen = listen
        self._thread = threading.Thread(target=self._serve, name="graylink-web", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.effective_port)  # type: ignore[union-attr]

    def _serve(self) -> None:
        try:
            self._server.run()
        except Exception as exc:  # the page going down must not take the service with it
            log.error("web: the server stopped: %s: %s", exc.__class__.__name__, exc)

    def start(self) -> None:
        self._thread.start()
        log.info("web: status page, API and metrics on http://%s/", self.listen)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._server.close()
        if self._thread.is_alive():  # never started when the service was refused after the bind
            self._thread.join(2.0)
