"""Two libraries in one service share media servers (issue 30): what one server does
for one library must not be undone by another library.

``graylink reconcile --loop`` runs as a real process over two plain folders (their
mount health told by ``[mount] anchor``) and loopback Emby/Jellyfin servers
(tests/emby_server.py names the upstream files it follows).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from emby_server import DAILY, FakeMediaServer
from service_support import WAIT_S, wait_for

from conftest import REPO

KEY = "emby-key-made-up-4a1f0c9e"


class TwoLibraries:
    """Libraries ``a`` and ``b`` under ``root``, each with its anchor file present."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ini = root / "graylink.ini"
        self.log = root / "loop.log"
        for name in ("a", "b"):
            self.source(name).mkdir(parents=True)
            (self.source(name) / "Movies/A (2001)").mkdir(parents=True)
            (self.source(name) / "Movies/A (2001)/A.mkv").write_bytes(b"x")
            (self.source(name) / ".anchor").write_bytes(b"")

    def source(self, name: str) -> Path:
        return self.root / f"src-{name}"

    def target(self, name: str) -> Path:
        return self.root / f"links-{name}"

    def write(self, servers: str) -> None:
        text = (
            f"[paths]\ndatabase = {self.root / 'state' / 'graylink.db'}\n"
            "[scan]\ninterval = 1h\nsettle = 0s\nworkers = 2\n"
            "[mount]\ncheck_interval = 1s\n"
        )
        for name in ("a", "b"):
            text += f"[library {name}]\nsource = {self.source(name)}\ntarget = {self.target(name)}\nanchor = .anchor\n"
        self.ini.write_text(text + servers)

    def start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "graylink", "-c", str(self.ini), "reconcile", "--loop"],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def test_a_shared_servers_hold_stays_while_any_library_it_sees_is_down(tmp_path: Path) -> None:
    libs = TwoLibraries(tmp_path)
    with FakeMediaServer("jellyfin", KEY) as emby:
        libs.write(f"[emby]\nurl = {emby.url}\napi_key = {KEY}\nserver = jellyfin\nprotect = yes\n")
        proc = libs.start()
        try:
            wait_for("both libraries walked", lambda: libs.text().count("reconcile (walk)") >= 2, proc)
            (libs.source("a") / ".anchor").unlink()  # a's mount drops: the server's scans are held
            wait_for("the triggers held", lambda: emby.triggers == [], proc)
            (libs.source("b") / ".anchor").unlink()  # b's drops too
            wait_for("b seen down", lambda: "[library b] mount check anchor" in libs.text(), proc)
            time.sleep(1.5)  # b's checks engage their part while a still holds
            (libs.source("a") / ".anchor").write_bytes(b"")  # a is back, b is still down
            wait_for("a seen back", lambda: "[library a] the source is back" in libs.text(), proc)
            time.sleep(3.0)  # three of a's healthy checks
            assert emby.triggers == [], "a's recovery undid the hold that b's outage still needs"
            (libs.source("b") / ".anchor").write_bytes(b"")  # every library back: the user's triggers return
            wait_for("the triggers put back", lambda: emby.triggers == DAILY, proc)
            time.sleep(2.0)
            assert emby.triggers == DAILY
            # Held once and put back once: never released while b was still down (not even
            # until b's next check, when the server's own scan could remove b's items).
            sets = [r.body for r in emby.requests if r.method == "POST" and r.path.lower().endswith("/triggers")]
            assert sets == [[], DAILY], sets
        finally:
            proc.terminate()
            code = proc.wait(timeout=WAIT_S)
        text = libs.text()
        assert code == 0, text
        assert KEY not in text
