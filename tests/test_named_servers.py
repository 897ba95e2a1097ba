"""Several servers of each kind (issue 30 item 3): every server hears about what it can
see, once, from its own place in the queue; one down holds back no other.

graylink runs as a real process against two loopback Emby/Jellyfin servers and one loopback Plex.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

from emby_server import FakeMediaServer
from plex_server import FakePlex

from graylink.config import load_config
from graylink.report.status import collect_status
from graylink.store.db import Store
from graylink.web.metrics import render_metrics

from conftest import Library

KEYS = ("family-key-made-up-5be1", "trial-key-made-up-77c0")
TOKEN = "plex-token-made-up-0d3a"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def emby_paths(server: FakeMediaServer) -> list[str]:
    return sorted(u["Path"] for post in server.posts("/Library/Media/Updated") for u in post.body["Updates"])


def write(lib: Library, family: str, trial: str, plex: str) -> None:
    lib.ini.write_text(
        f"[paths]\nsource = {lib.source}\ntarget = {lib.target}\ndatabase = {lib.database}\n"
        "[scan]\nsettle = 0s\n"  # announced as soon as seen (tests/test_settle.py shows the default)
        f"[emby]\nurl = {family}\napi_key = {KEYS[0]}\nserver = jellyfin\npath_map = {lib.target}=/media\n"
        # sees only the films: a link outside its map is never sent to it
        f"[emby trial]\nurl = {trial}\napi_key = {KEYS[1]}\npath_map = {lib.target}/Movies=/media/Movies\n"
        f"[plex friend]\nurl = {plex}\ntoken = {TOKEN}\npath_map = {lib.target}=/data\n"
    )


def test_each_server_hears_what_it_sees_once_and_one_down_holds_back_none(lib: Library) -> None:
    trial_port = free_port()
    outputs: list[str] = []
    with FakeMediaServer("jellyfin", KEYS[0]) as family, FakePlex(TOKEN) as plex:
        write(lib, family.url, f"http://127.0.0.1:{trial_port}", plex.url)
        with FakeMediaServer("emby", KEYS[1], port=trial_port) as trial:
            lib.add("Movies/A (2001)/A.mkv")
            lib.add("TV/S/S01E01.mkv")
            done = lib.run("reconcile", "--json")
            outputs.append(done.stdout + done.stderr)
            assert done.returncode == 0, done.stderr
            doc = json.loads(done.stdout)
            assert set(doc["servers"]) == {"emby", "emby trial", "plex friend"}
            assert all(doc["servers"][name]["ok"] for name in doc["servers"])
            assert emby_paths(family) == ["/media/Movies/A (2001)/A.mkv", "/media/TV/S/S01E01.mkv"]
            assert emby_paths(trial) == ["/media/Movies/A (2001)/A.mkv"]  # not the series: outside its map
            assert sorted(plex.scanned()) == [("1", "/data/Movies/A (2001)"), ("2", "/data/TV/S")]
        # The trial server is down for three runs: the others are told at once, each change once.
        for name in ("B (2002)", "C (2003)", "D (2004)"):
            lib.add(f"Movies/{name}/x.mkv")
            down = lib.run("reconcile")
            outputs.append(down.stdout + down.stderr)
            assert down.returncode == 1 and "[emby trial]" in down.stderr, down.stderr
        assert emby_paths(family) == sorted(
            ["/media/Movies/A (2001)/A.mkv", "/media/TV/S/S01E01.mkv"]
            + [f"/media/Movies/{n}/x.mkv" for n in ("B (2002)", "C (2003)", "D (2004)")]
        )
        assert len(plex.scanned()) == 5
        status = json.loads(lib.run("status", "--json").stdout)
        assert status["servers"]["emby trial"]["queued"] == 3
        assert status["servers"]["plex friend"]["queued"] == 0 and status["emby"]["queued"] == 0
        text = lib.run("status").stdout
        assert "emby trial queue: 3 updates waiting" in text, text
        config = load_config(str(lib.ini), environ={})
        with Store(str(lib.database), readonly=True) as store:
            metrics = render_metrics(collect_status(config, store), {})[0].decode()
        assert 'graylink_queue_depth{server="emby trial"} 3.0' in metrics
        assert 'graylink_queue_depth{server="plex friend"} 0.0' in metrics
        # Back: it hears its three changes once; nobody else hears anything again.
        with FakeMediaServer("emby", KEYS[1], port=trial_port) as trial:
            back = lib.run("reconcile")
            again = lib.run("reconcile")
            outputs += [back.stdout + back.stderr, again.stdout + again.stderr]
            assert back.returncode == 0 and again.returncode == 0, back.stderr
            assert emby_paths(trial) == [f"/media/Movies/{n}/x.mkv" for n in ("B (2002)", "C (2003)", "D (2004)")]
        assert len(family.posts("/Library/Media/Updated")) == 4 and len(plex.scanned()) == 5
    for text in outputs:
        assert not any(secret in text for secret in (*KEYS, TOKEN))


def test_doctor_checks_every_named_server(lib: Library, tmp_path: Path) -> None:
    (lib.target / "Movies").mkdir(parents=True)
    with (
        FakeMediaServer("jellyfin", KEYS[0]) as family,
        FakeMediaServer("emby", KEYS[1]) as trial,
        FakePlex(TOKEN) as plex,
    ):
        write(lib, family.url, trial.url, plex.url)
        done = lib.run("doctor")
    out = done.stdout + done.stderr
    for name in ("emby.reachable", "emby trial: emby.reachable", "plex friend: plex.reachable"):
        assert name in out, out
