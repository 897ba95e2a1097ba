"""Every network call ends within a deadline for the WHOLE request (issue 20 item 3).

The servers here answer one byte at a time, each byte well inside any read
timeout: requests' own timeout never trips on them, only a whole-request
deadline does.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from emby_server import Answer, FakeMediaServer
from service_support import Loop, wait_for

from graylink.config import parse_raw
from graylink.links.planner import Op
from graylink.notify.emby import deliver, enqueue
from graylink.rclone.rc import RcError, rc_call, vfs_refresh
from graylink.store.db import Store
from graylink.system.http_deadline import DeadlineExceeded, DeadlineSession, RequestStopped

from conftest import Library

KEY = "made-up-key-0d1e2a"
REPO = Path(__file__).resolve().parent.parent


class DripServer:
    """A raw HTTP server that answers every request one byte every ``every`` seconds."""

    def __init__(self, every: float, body: bytes = b'{"ok": true}', head_first: bool = False) -> None:
        self.every = every
        self.body = body
        self.head_first = head_first  # send the headers at once and drip only the body
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def __enter__(self) -> DripServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(self.body)}\r\n\r\n"
            data = head.encode() + self.body
            if self.head_first:
                conn.sendall(head.encode())
                data = self.body
            for byte in data:
                if self._stop.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return  # the client hung up: what a deadline does
                time.sleep(self.every)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(str(tmp_path / "g.db")) as opened:
        yield opened


def _config(tmp_path: Path, **sections: dict[str, str]) -> object:
    (tmp_path / "src").mkdir(exist_ok=True)
    raw = {"paths": {"source": str(tmp_path / "src"), "target": str(tmp_path / "links")}, **sections}
    return parse_raw(raw)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


# ------------------------------------------------------------ the session


@pytest.mark.parametrize("head_first", [False, True], ids=["dripped headers", "dripped body"])
def test_a_dripping_answer_ends_at_the_deadline(head_first: bool) -> None:
    with DripServer(0.2, body=b"x" * 200, head_first=head_first) as server, DeadlineSession(1.0) as session:
        began = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="within 1s"):
            session.get(server.url, timeout=1.0)
        assert time.monotonic() - began < 10.0  # the whole answer would take 40 s
        assert isinstance(DeadlineExceeded(), requests.Timeout)  # callers classify it as a timeout


def test_a_quick_answer_is_read_whole() -> None:
    with DripServer(0.0, body=b'{"ok": true}') as server, DeadlineSession(5.0) as session:
        assert session.get(server.url, timeout=5.0).json() == {"ok": True}
        assert session.get(server.url, timeout=5.0).json() == {"ok": True}


def test_a_stop_request_ends_a_request_at_once() -> None:
    stop = threading.Event()
    with DripServer(0.2, body=b"x" * 500) as server, DeadlineSession(90.0, should_stop=stop.is_set) as session:
        threading.Timer(0.5, stop.set).start()
        began = time.monotonic()
        with pytest.raises(RequestStopped):
            session.get(server.url, timeout=90.0)
        assert time.monotonic() - began < 10.0  # the answer would take 100 s, the deadline is 90 s


# ----------------------------------------------------------- media server


def _queued(store: Store) -> None:
    with store.atomic():
        enqueue(store, [(Op.CREATE, os.fsencode("/links/Movies/a.mkv"))])


def _emby(url: str) -> object:
    from test_emby import emby_config

    return emby_config(url, api_key=KEY, server="emby")


def test_a_dripping_media_server_cannot_hold_a_delivery(store: Store) -> None:
    """Failed before the fix: each try waited for the whole drip (one byte every 0.3 s, ~80 bytes: 24 s)."""
    with FakeMediaServer("emby", KEY) as server:
        server.answer(*[Answer(204, drip=0.3)] * 3)
        _queued(store)
        began = time.monotonic()
        result = deliver(_emby(server.url), store, sleep=Sleeps(), deadline=1.0)  # type: ignore[arg-type]
        took = time.monotonic() - began
    assert not result.ok and result.pending == 1
    assert "no complete answer within 1s" in result.error
    assert len(server.posts()) == 3 and took < 15.0  # three whole drips: 72 s


def test_a_delivery_stops_when_its_budget_is_spent(store: Store) -> None:
    with FakeMediaServer("emby", KEY) as server:
        server.answer(*[Answer(204, drip=0.3)] * 3)
        _queued(store)
        sleeps = Sleeps()
        began = time.monotonic()
        result = deliver(_emby(server.url), store, sleep=sleeps, deadline=1.0, budget=3.5)  # type: ignore[arg-type]
        took = time.monotonic() - began
    # 1 s try, 1 s pause, 1 s try: the 2 s pause before a third would overrun 3.5 s.
    assert len(server.posts()) == 2 and sleeps == [1.0]
    assert not result.ok and "the 3.5 s this run gives a delivery are spent" in result.error
    assert took < 3.5 + 3.0  # the budget, and a margin for a loaded machine (one drip: 24 s)


def test_a_stop_request_ends_a_dripping_delivery_and_keeps_the_queue(store: Store) -> None:
    stop = threading.Event()
    with FakeMediaServer("emby", KEY) as server:
        server.answer(Answer(204, drip=0.3))
        _queued(store)
        threading.Timer(0.5, stop.set).start()
        began = time.monotonic()
        result = deliver(_emby(server.url), store, should_stop=stop.is_set)  # type: ignore[arg-type]
        took = time.monotonic() - began
    assert took < 10.0  # the drip alone takes 24 s, three tries 72 s
    assert not result.ok and "stopped on request" in result.error and result.pending == 1


def test_a_stop_request_ends_the_pause_between_tries(store: Store) -> None:
    stop = threading.Event()
    with FakeMediaServer("emby", KEY) as server:
        server.answer(Answer(503, {"Retry-After": "30"}))
        _queued(store)
        threading.Timer(0.5, stop.set).start()
        began = time.monotonic()
        result = deliver(_emby(server.url), store, should_stop=stop.is_set)  # type: ignore[arg-type]
        assert time.monotonic() - began < 10.0  # the server asked for 30 s
    assert "stopped on request" in result.error and result.pending == 1


# ------------------------------------------------------------- rclone rc


def test_a_dripping_rclone_rc_ends_at_the_deadline(tmp_path: Path) -> None:
    """Failed before the fix: the rc call read the drip to its end (120 s per read allowed)."""
    with DripServer(0.2, body=b'{"result": {}}' + b" " * 100) as server:
        config = _config(tmp_path, mount={"rclone_rc": server.url})
        began = time.monotonic()
        with pytest.raises(RcError, match="did not answer vfs/refresh in time"):
            rc_call(config, "vfs/refresh", {}, deadline=1.0)  # type: ignore[arg-type]
        assert time.monotonic() - began < 10.0  # the whole answer takes 24 s


class SlowRc:
    """rclone's rc answering every vfs/refresh after ``delay`` s that the folder does not exist (yet)."""

    def __init__(self, delay: float) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self
        self.calls = 0

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                params = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                outer.calls += 1
                time.sleep(delay)
                body = json.dumps(
                    {"result": {v: "file does not exist" for k, v in params.items() if k.startswith("dir")}}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_vfs_refresh_rounds_share_one_budget(tmp_path: Path) -> None:
    """Each round (a missing folder climbs to its parent) is a call; all of them end within the budget."""
    rc = SlowRc(1.0)
    try:
        config = _config(tmp_path, mount={"rclone_rc": rc.url})
        began = time.monotonic()
        assert not vfs_refresh(config, [b"a/b/c/d/e/f"], budget=3.0)  # type: ignore[arg-type]
        assert 2 <= rc.calls <= 4  # unbounded: 7 calls, one per level
        assert time.monotonic() - began < 6.5  # unbounded: 7 s
    finally:
        rc.close()


# ---------------------------------------------------------- source guard

# ``graylink drive auth`` trades a consent code for a token once, interactively;
# the Drive feed itself uses httplib2 with its own timeouts.
_EXEMPT = {"drive_auth.py", "http_deadline.py"}
_BARE = {"get", "post", "put", "patch", "delete", "head", "request", "Session", "session"}


def test_requests_are_made_only_through_the_deadline_session() -> None:
    """A bare ``requests.get`` / ``requests.Session()`` would bring back per-read timeouts."""
    found = []
    for path in sorted((REPO / "graylink").rglob("*.py")):
        if path.name in _EXEMPT:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                func = ast.unparse(node.func)
                if func.startswith("requests.") and func.split(".")[1] in _BARE:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: {func}()")
    assert found == []


# ------------------------------------------------------------- the loop


def test_sigterm_during_a_dripping_delivery_stops_the_loop_at_once(lib: Library, loop_of: Callable[[], Loop]) -> None:
    """Before: the loop waited for the whole delivery (3 tries of the drip) before it stopped."""
    with FakeMediaServer("emby", KEY) as server:
        server.answer(*[Answer(204, drip=0.5)] * 3)
        lib.write_ini(scan={"interval": "1h", "workers": "2"}, emby={"url": server.url, "api_key": KEY})
        lib.add("Movies/A (2001)/A.mkv")
        loop = loop_of()
        wait_for("a delivery in flight", lambda: bool(server.posts()), loop.proc)
        began = time.monotonic()
        assert loop.stop(signal.SIGTERM) == 0
        took = time.monotonic() - began
        assert took < 15.0, f"the loop took {took:.1f}s to stop"  # the delivery alone: 3 drips of ~40 s
        assert "stopped on request" in loop.text() and KEY not in loop.text()
    status = json.loads(lib.run("status", "--json").stdout)
    assert status["emby"]["pending"] == 1  # kept for the next run
