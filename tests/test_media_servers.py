"""Emby and Plex told from one link tree, each at its own place in the queue (issue 18).

graylink runs as a real process against a loopback Emby and a loopback Plex.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from emby_server import Answer, FakeMediaServer
from plex_server import FakePlex

from graylink.config import parse_raw
from graylink.links.planner import Op
from graylink.notify.deliver import deliver_all
from graylink.notify.queue import enqueue
from graylink.store.db import Store

from conftest import Library

KEY = "emby-key-made-up-91c3e07d"
TOKEN = "plex-token-made-up-2d7a64e1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def configure(lib: Library, emby_url: str, plex_port: int) -> None:
    lib.write_ini(
        emby={"url": emby_url, "api_key": KEY, "path_map": f"{lib.target}=/media"},
        plex={"url": f"http://127.0.0.1:{plex_port}", "token": TOKEN, "path_map": f"{lib.target}=/data"},
    )


def emby_paths(server: FakeMediaServer) -> list[list[str]]:
    return [[u["Path"] for u in post.body["Updates"]] for post in server.posts("/Library/Media/Updated")]


def test_both_servers_are_told_after_one_reconcile(lib: Library) -> None:
    lib.add("Movies/A (2001)/A.mkv")
    with FakeMediaServer("emby", KEY) as emby, FakePlex(TOKEN) as plex:
        configure(lib, emby.url, plex.port)
        done = lib.run("reconcile", "--json")
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout)
        assert doc["emby"]["ok"] and doc["emby"]["sent"] == 1
        assert doc["plex"]["ok"] and doc["plex"]["sent"] == 1 and doc["plex"]["server"] == "plex"
        assert emby_paths(emby) == [["/media/Movies/A (2001)/A.mkv"]]
        assert plex.scanned() == [("1", "/data/Movies/A (2001)")]
    assert KEY not in done.stdout + done.stderr and TOKEN not in done.stdout + done.stderr


def test_plex_down_for_two_runs_never_holds_back_emby_and_loses_nothing(lib: Library) -> None:
    port = free_port()
    outputs: list[str] = []
    with FakeMediaServer("emby", KEY) as emby:
        configure(lib, emby.url, port)
        lib.add("Movies/A (2001)/A.mkv")
        first = lib.run("reconcile")
        lib.add("Movies/B (2002)/B.mkv")
        second = lib.run("reconcile")
        outputs += [first.stdout + first.stderr, second.stdout + second.stderr]
        assert first.returncode == 1 and second.returncode == 1  # Plex's delivery failed
        assert "connection refused" in first.stderr
        # Emby heard of each change once, as it happened.
        assert emby_paths(emby) == [["/media/Movies/A (2001)/A.mkv"], ["/media/Movies/B (2002)/B.mkv"]]
        status = json.loads(lib.run("status", "--json").stdout)
        assert status["emby"]["queued"] == 0 and status["emby"]["last_delivery"]["ok"] is True
        assert status["plex"]["queued"] == 2 and status["plex"]["last_delivery"]["ok"] is False
        human = lib.run("status")
        outputs.append(human.stdout + human.stderr)
        lines = {line.split(":", 1)[0]: line for line in human.stdout.splitlines()}
        assert "nothing waiting" in lines["emby queue"] and ": ok, 1 sent" in lines["emby queue"]
        assert "2 updates waiting" in lines["plex queue"] and "FAILED: Plex at" in lines["plex queue"]
        with FakePlex(TOKEN, port=port) as plex:
            third = lib.run("reconcile")
            fourth = lib.run("reconcile")
            outputs += [third.stdout + third.stderr, fourth.stdout + fourth.stderr]
            assert third.returncode == 0 and fourth.returncode == 0, third.stderr
            assert sorted(plex.scanned()) == [("1", "/data/Movies/A (2001)"), ("1", "/data/Movies/B (2002)")]
        assert len(emby.posts("/Library/Media/Updated")) == 2  # nothing sent to Emby twice
        after = json.loads(lib.run("status", "--json").stdout)
        assert after["plex"]["queued"] == 0 and after["plex"]["last_delivery"]["ok"] is True
    for text in outputs:
        assert KEY not in text and TOKEN not in text


def test_doctor_checks_each_server(lib: Library) -> None:
    (lib.target / "Movies").mkdir(parents=True)
    with FakeMediaServer("emby", KEY) as emby, FakePlex(TOKEN) as plex:
        configure(lib, emby.url, plex.port)
        done = lib.run("doctor")
    out = done.stdout + done.stderr
    for name in ("emby.reachable", "emby.api_key", "emby.paths", "plex.reachable", "plex.token", "plex.paths"):
        assert name in out, out
    assert KEY not in out and TOKEN not in out


def test_a_server_removed_from_the_config_drops_its_queue_with_a_warning(lib: Library) -> None:
    port = free_port()
    with FakeMediaServer("emby", KEY) as emby:
        configure(lib, emby.url, port)
        lib.add("Movies/A (2001)/A.mkv")
        assert lib.run("reconcile").returncode == 1  # Plex is down: its update stays queued
        lib.write_ini(emby={"url": emby.url, "api_key": KEY, "path_map": f"{lib.target}=/media"})
        done = lib.run("reconcile")
    assert done.returncode == 0, done.stderr
    assert "[plex] is no longer configured: dropping its 1 queued updates" in done.stderr


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_a_slow_server_does_not_hold_back_the_other(tmp_path: Path) -> None:
    """The servers are told at the same time: Plex is done while a dripping Emby still holds its delivery."""
    links = tmp_path / "links"
    (links / "Movies" / "A (2001)").mkdir(parents=True)
    (tmp_path / "src").mkdir()
    with FakeMediaServer("emby", KEY) as emby, FakePlex(TOKEN) as plex, Store(str(tmp_path / "g.db")) as store:
        emby.answer(*[Answer(204, drip=0.3)] * 3)
        config = parse_raw(
            {
                "paths": {"source": str(tmp_path / "src"), "target": str(links)},
                "emby": {"url": emby.url, "api_key": KEY, "server": "emby"},
                "plex": {"url": plex.url, "token": TOKEN, "path_map": f"{links}=/data"},
            }
        )
        with store.atomic():
            enqueue(store, [(Op.CREATE, os.fsencode(links / "Movies/A (2001)/A.mkv"))], ("emby", "plex"))
        began = time.monotonic()
        results = deliver_all(config, store, sleep=Sleeps(), deadline=1.0)
        took = time.monotonic() - began
        assert results["plex"].ok and not results["emby"].ok and took >= 3.0  # Emby: three 1 s tries
        assert plex.scans[0].at - began < 2.0  # Plex did not wait for Emby's three 1 s tries
        assert results["emby"].pending == 1 and results["plex"].pending == 0


def test_an_unforeseen_error_of_one_servers_delivery_fails_that_server_alone(
    lib: Library, caplog: pytest.LogCaptureFixture
) -> None:
    """A defect in one notifier (an exception nobody foresaw on its thread) is
    that server's failure: its updates stay queued, the other server's result
    is still recorded, and the key never reaches the log."""
    from concurrent.futures import Future

    from graylink.config import load_config
    from graylink.notify.deliver import _outcome

    lib.write_ini(plex={"url": "http://127.0.0.1:9", "token": "made-up-plex-token"})
    config = load_config(str(lib.ini), environ={})
    future: Future[Any] = Future()
    future.set_exception(KeyError("a path near made-up-plex-token"))
    with caplog.at_level(logging.ERROR):
        result, done, _found = _outcome(config, "plex", future, 7)
    assert done == [] and result.pending == 7 and not result.ok and result.server == "plex"
    assert "made-up-plex-token" not in result.error and "KeyError" in result.error
    assert "made-up-plex-token" not in caplog.text and "7 updates stay queued" in caplog.text


class LoginPage(BaseHTTPRequestHandler):
    """A reverse proxy's login page in front of the servers (200 text/html to every
    request, as an auth proxy answers before the request reaches Emby or Plex)."""

    def do_GET(self) -> None:
        body = b"<html><body>Sign in</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_doctor_lines_of_a_wrong_answer_name_its_http_status(lib: Library) -> None:
    (lib.target / "Movies").mkdir(parents=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), LoginPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        configure(lib, f"http://127.0.0.1:{port}", port)
        done = lib.run("doctor")
    finally:
        server.shutdown()
        server.server_close()
    lines = [line for line in done.stdout.splitlines() if ".reachable" in line]
    assert len(lines) == 2, done.stdout
    for line in lines:
        assert "HTTP 200, text/html" in line, line
    assert KEY not in done.stdout + done.stderr and TOKEN not in done.stdout + done.stderr
