"""A running loop with its web face, and a loopback that receives Apprise's ``json://`` alerts."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests
from service_support import Loop, wait_for

from conftest import Library

TOKEN = "made-up-web-token-1234"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WebLoop:
    """``reconcile --loop`` with ``[web] listen`` on a free loopback port."""

    def __init__(self, lib: Library, loop: Loop, port: int, token: str) -> None:
        self.lib, self.loop, self.port, self.token = lib, loop, port, token
        self.url = f"http://127.0.0.1:{port}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self.url + path, headers=kw.pop("headers", self.headers()), timeout=30, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> requests.Response:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        headers = {"Content-Type": "application/json", **kw.pop("headers", self.headers())}
        return requests.post(self.url + path, data=data, headers=headers, timeout=30, **kw)

    def wait_up(self) -> None:
        def answers() -> bool:
            try:
                return self.get("/api/status").status_code == 200
            except requests.ConnectionError:
                return False

        wait_for("the web server", answers, self.loop.proc)


class AppriseReceiver:
    """What Apprise's ``json://HOST:PORT`` posts: ``{"version", "title", "message", "type", ...}``.

    Follows Apprise's ``apprise/plugins/custom_json.py`` (NotifyJSON): one POST
    of a JSON object per notification to the URL's host and path; any 2xx is
    success. The real apprise library is the client, so the fields checked are
    the ones it really sends.
    """

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with outer.lock:
                    outer.messages.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/alerts"

    def titles(self) -> list[str]:
        with self.lock:
            return [str(m.get("title", "")) for m in self.messages]


@contextmanager
def apprise_receiver() -> Iterator[AppriseReceiver]:
    receiver = AppriseReceiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
