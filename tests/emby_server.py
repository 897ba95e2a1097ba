"""A small Emby / Jellyfin server on 127.0.0.1 for tests.

It speaks the few endpoints graylink uses, records every request, and accepts
the API key only in the header its kind of server accepts: Emby the
``X-Emby-Token`` header, Jellyfin (as 12.x with legacy authorization off) only
``Authorization: MediaBrowser Token="…"``. Answers to the POST endpoints can
be scripted: a status, extra headers, and a delay before answering.
"""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    answered: bool = False  # the answer went to a client still waiting for it


@dataclass
class Answer:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drip: float = 0.0  # > 0: the answer goes out one byte every this many seconds


def drip(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], every: float) -> bool:
    """Answer one byte at a time, ``every`` seconds apart: a read timeout never trips.

    Returns whether the whole answer went out (False: the client hung up).
    """
    head = f"HTTP/1.1 {status} Dripping\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    raw = (head + "Content-Length: 0\r\n\r\n").encode()
    handler.close_connection = True
    for byte in raw:
        try:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
        except OSError:
            return False
        time.sleep(every)
    return True


class FakeMediaServer:
    def __init__(self, kind: str = "emby", api_key: str = "test-key-1234", locations: list[str] | None = None):
        self.kind = kind
        self.api_key = api_key
        self.locations = locations if locations is not None else ["/media/Movies", "/media/TV"]
        self.requests: list[Recorded] = []
        self.script: deque[Answer] = deque()
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        # A client that gave up on a slow answer closes its socket; that is the test's point, not an error.
        self.httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeMediaServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, *answers: Answer) -> None:
        """Queue answers for the next POSTs; once used up, POSTs get 204."""
        with self.lock:
            self.script.extend(answers)

    def posts(self, path: str | None = None) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.method == "POST" and (path is None or r.path == path)]

    def authorized(self, headers: dict[str, str]) -> bool:
        if self.kind == "jellyfin":
            match = re.fullmatch(r'MediaBrowser\s+Token="([^"]*)"', headers.get("Authorization", ""))
            return bool(match) and match.group(1) == self.api_key  # type: ignore[union-attr]
        return headers.get("X-Emby-Token") == self.api_key

    def public_info(self) -> dict[str, Any]:
        if self.kind == "jellyfin":
            return {
                "LocalAddress": self.url,
                "ServerName": "test-jellyfin",
                "Version": "12.0.0",
                "ProductName": "Jellyfin Server",
                "Id": "0123456789abcdef",
                "StartupWizardCompleted": True,
            }
        return {"LocalAddress": self.url, "ServerName": "test-emby", "Version": "4.8.10.0", "Id": "fedcba9876543210"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _path(self) -> str:
                path = self.path.split("?", 1)[0]
                if server.kind == "emby" and path.lower().startswith("/emby/"):
                    path = path[len("/emby") :]
                return path

            def _record(self, body: Any) -> Recorded:
                record = Recorded(self.command, self.path, dict(self.headers.items()), body)
                with server.lock:
                    server.requests.append(record)
                return record

            def _client_gone(self) -> bool:
                # A client killed while waiting has closed its socket: its end reads as EOF.
                readable, _, _ = select.select([self.connection], [], [], 0)
                if not readable:
                    return False
                try:
                    return self.connection.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    return True

            def _send(self, status: int, payload: Any = None, headers: dict[str, str] | None = None) -> None:
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                if payload is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._record(None)
                path = self._path()
                if path == "/System/Info/Public":
                    self._send(200, server.public_info())
                elif path == "/Library/VirtualFolders":
                    if not server.authorized(dict(self.headers.items())):
                        self._send(401)
                        return
                    folders = [
                        {"Name": loc.rsplit("/", 1)[-1], "Locations": [loc], "CollectionType": "movies"}
                        for loc in server.locations
                    ]
                    self._send(200, folders)
                else:
                    self._send(404)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                record = self._record(body)
                path = self._path()
                if path not in ("/Library/Media/Updated", "/Library/Refresh"):
                    self._send(404)
                    return
                if not server.authorized(dict(self.headers.items())):
                    self._send(401)
                    return
                with server.lock:
                    answer = server.script.popleft() if server.script else Answer()
                if answer.delay:
                    time.sleep(answer.delay)
                    if self._client_gone():
                        self.close_connection = True
                        return
                if answer.drip:
                    record.answered = drip(self, answer.status, answer.headers, answer.drip)
                    return
                self._send(answer.status, headers=answer.headers)
                record.answered = True

        return Handler
