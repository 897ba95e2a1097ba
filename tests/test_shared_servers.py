"""Two libraries in one service share media servers (issue 30): what one server does
for one library must not be undone by another library.

``graylink reconcile --loop`` runs as a real process over two plain folders (their
mount health told by ``[mount] anchor``) and loopback Emby/Jellyfin servers
(tests/emby_server.py names the upstream files it follows).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from emby_server import DAILY, FakeMediaServer
from service_support import WAIT_S, Loop, wait_for
from web_support import apprise_receiver

from conftest import REPO, Library

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

    def start(self, *more: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "graylink", "-c", str(self.ini), "reconcile", "--loop", *more],
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


def test_every_named_emby_server_is_asked_for_its_view_of_the_mount(lib: Library, loop_of: Callable[[], Loop]) -> None:
    """Not only [emby]: each [emby NAME] that sees the library lists its source; one stale is told alone."""
    lib.add("Movies/A (2001)/A.mkv")
    keys = ("family-key-made-up-90d1", "trial-key-made-up-3e77")
    with (
        FakeMediaServer("jellyfin", keys[0]) as family,
        FakeMediaServer("emby", keys[1]) as trial,
        apprise_receiver() as receiver,
    ):
        for server in (family, trial):
            server.library.fs_map = {str(lib.source): str(lib.source), "/media": str(lib.target)}
        lib.write_ini(
            scan={"interval": "1h", "workers": "2"},
            mount={"check_interval": "1s"},
            **{
                "emby family": {"url": family.url, "api_key": keys[0], "path_map": f"{lib.target}=/media"},
                "emby trial": {"url": trial.url, "api_key": keys[1], "path_map": f"{lib.target}=/media"},
            },
            alerts={"urls": receiver.url},
        )
        loop = loop_of()
        for server in (family, trial):
            wait_for("a listing asked", lambda s=server: s.gets("/Environment/DirectoryContents"), loop.proc)
        trial.stale_mount = True
        wait_for("the stale-mount alert", lambda: len(receiver.titles()) >= 1, loop.proc)
        asked = len(trial.gets("/Environment/DirectoryContents"))
        wait_for("more checks", lambda: len(trial.gets("/Environment/DirectoryContents")) >= asked + 3, loop.proc)
        titles = receiver.titles()
        assert len(titles) == 1 and "emby trial cannot read" in titles[0], titles  # one alert, naming it
        loop.wait_log("[emby trial]: media server's view of the mount: the server cannot list")
        assert "[emby family]: media server's view" not in loop.text()
        status = json.loads(lib.run("status", "--json").stdout)
        assert status["servers"]["emby trial"]["server_mount"]["ok"] is False
        assert status["servers"]["emby family"]["server_mount"]["ok"] is True
        trial.stale_mount = False
        wait_for("the recovery alert", lambda: len(receiver.titles()) == 2, loop.proc)
        assert "emby trial reads" in receiver.titles()[1]
        assert loop.stop() == 0
    assert not any(key in loop.text() for key in keys)


def test_one_snapshot_path_makes_a_page_per_library(tmp_path: Path) -> None:
    """[snapshot] path is one key: the loop writes each library's page to its own file, as
    'graylink snapshot' does ({library} in the path, else -NAME before the extension)."""
    libs = TwoLibraries(tmp_path)
    for name in ("a", "b"):
        (libs.source(name) / f"Only{name.upper()} (2002)").mkdir()
        (libs.source(name) / f"Only{name.upper()} (2002)/x.mkv").write_bytes(b"x")
    www = tmp_path / "www"
    for folder in (www / "a", www / "b"):
        folder.mkdir(parents=True)
    libs.write(f"[snapshot]\npath = {www / 'index.html'}\n")
    proc = libs.start("--full")  # the first walk is a full verification: the pages are written after it
    try:
        for name in ("a", "b"):
            wait_for(f"{name}'s page", lambda n=name: (www / f"index-{n}.html").exists(), proc)  # type: ignore[misc]
    finally:
        proc.terminate()
        code = proc.wait(timeout=WAIT_S)
    assert code == 0, libs.text()
    assert not (www / "index.html").exists()  # no library overwrote another's page
    pages = {name: (www / f"index-{name}.html").read_text() for name in ("a", "b")}
    assert "OnlyA (2002)" in pages["a"] and "OnlyB (2002)" not in pages["a"]
    assert "OnlyB (2002)" in pages["b"] and "OnlyA (2002)" not in pages["b"]
    # {library} puts the name where the user wants it; the command writes where the loop does.
    libs.write(f"[snapshot]\npath = {www / '{library}' / 'index.html'}\n")
    done = subprocess.run(
        [sys.executable, "-m", "graylink", "-c", str(libs.ini), "snapshot"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for name in ("a", "b"):
        page = (www / name / "index.html").read_text()
        assert f"Only{name.upper()} (2002)" in page


def test_shared_holds_follow_which_libraries_see_a_server() -> None:
    """The rule itself: released only when every library that sees the server is known healthy;
    one library saves the settings; a reload that narrows who sees a server is followed."""
    from graylink.notify.shared_holds import SharedHolds

    holds = SharedHolds({"emby": {"a", "b"}, "plex": {"b"}})
    assert not holds.may_release("emby")  # nobody checked yet: not known healthy
    holds.report("a", False)
    holds.report("b", True)
    assert holds.claim("emby", "a") and not holds.claim("emby", "b")  # a saves, b only stops scans
    assert not holds.may_release("emby") and holds.may_release("plex")
    holds.report("a", True)
    assert holds.may_release("emby")
    holds.released("emby", "a")
    assert holds.claim("emby", "b")  # the next outage may be held by anyone
    holds.report("b", False, servers=["plex"])  # SIGHUP: b no longer sees emby
    holds.report("a", True, servers=["emby"])
    assert holds.may_release("emby") and holds.down("emby") == [] and holds.down("plex") == ["b"]
