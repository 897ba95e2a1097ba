"""One service, many libraries (issue 30): the two-library, three-server example of
docs/configuration.md, run as it is written, on two real rclone mounts of local
folders, against two loopback Emby/Jellyfin servers and one loopback Plex.

Each change reaches the right link tree and exactly the servers that see it,
once; a dropped mount holds its own library alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from emby_server import FakeMediaServer
from plex_server import FakePlex, PlexSection

from graylink.system import fsinfo

from conftest import REPO, links_in

DOCS = REPO / "docs" / "configuration.md"
MISSING = [what for what in ("rclone", "fusermount3") if shutil.which(what) is None]
pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(bool(MISSING) or not os.path.exists("/dev/fuse"), reason=f"FUSE TESTS SKIPPED: {MISSING}"),
]


def wait_until(condition: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    """Poll for something the service does in its own time; the limit only stops a hung test."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def docs_example() -> str:
    """The ```ini block of configuration.md that declares [library films]."""
    blocks = re.findall(r"^```ini\n(.*?)^```", DOCS.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    [block] = [b for b in blocks if "[library films]" in b and "[plex friend]" in b]
    return str(block)


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[dict[str, tuple[Path, Path]]]:
    """Two rclone mounts of local folders: name -> (the folder, its mount)."""
    started: list[tuple[Path, subprocess.Popen[bytes]]] = []
    out: dict[str, tuple[Path, Path]] = {}
    for name in ("films", "series"):
        src, mnt = tmp_path / f"{name}-src", tmp_path / f"{name}-mnt"
        src.mkdir()
        mnt.mkdir()
        argv = ["rclone", "mount", str(src), str(mnt), "--config", "/dev/null", "--dir-cache-time", "1s"]
        argv += ["--attr-timeout", "0s", "--log-file", str(tmp_path / f"rclone-{name}.log")]
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
        started.append((mnt, process))
        RCLONE[name] = process
        wait_until(lambda mnt=mnt: fsinfo.is_mountpoint(str(mnt)), f"the {name} mount")  # type: ignore[misc]
        out[name] = (src, mnt)
    yield out
    for mnt, process in started:
        subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True, check=False)
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


RCLONE: dict[str, subprocess.Popen[bytes]] = {}  # the mounts' rclone processes, by library name


def add(src: Path, rel: str) -> None:
    (src / rel).parent.mkdir(parents=True, exist_ok=True)
    (src / rel).write_bytes(b"video")


def updates(server: FakeMediaServer) -> list[str]:
    return sorted(u["Path"] for post in server.posts("/Library/Media/Updated") for u in post.body["Updates"])


def test_docs_example_two_libraries_three_servers(tmp_path: Path, mounts: dict[str, tuple[Path, Path]]) -> None:
    (films_src, films_mnt), (series_src, series_mnt) = mounts["films"], mounts["series"]
    links = {name: tmp_path / "links" / name for name in ("films", "series")}
    state = tmp_path / "state"
    add(films_src, "A (2001)/A.mkv")
    add(series_src, "Show/S01/e01.mkv")
    family = FakeMediaServer("emby", "0123456789abcdef", locations=["/media/films", "/media/series"])
    trial = FakeMediaServer("jellyfin", "fedcba9876543210", locations=["/films"])
    plex = FakePlex("abcdefghij", sections=[PlexSection("2", "TV", "show", (str(links["series"]),))])
    with family, trial, plex:
        text = docs_example()
        for old, new in (
            ("/mnt/series", str(series_mnt)),
            ("/mnt/films", str(films_mnt)),
            ("/srv/graylink/series", str(links["series"])),
            ("/srv/graylink/films", str(links["films"])),
            ("/var/lib/graylink", str(state)),
            ("http://127.0.0.1:8096", family.url),
            ("http://127.0.0.1:8097", trial.url),
            ("http://127.0.0.1:32400", plex.url),
        ):
            assert old in text, old
            text = text.replace(old, new)
        ini = tmp_path / "graylink.ini"
        # Quick cadences for the test (files announced as soon as they are seen: [scan] settle);
        # everything else as the docs write it.
        ini.write_text(text + "\n[scan]\ninterval = 1s\nsettle = 0s\n[mount]\ncheck_interval = 1s\n")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        log = tmp_path / "loop.log"
        loop = subprocess.Popen(
            [sys.executable, "-m", "graylink", "-c", str(ini), "reconcile", "--loop"],
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
            env=env,
        )
        try:
            wait_until(lambda: b"A (2001)/A.mkv" in links_in(links["films"]), "the film's link")
            wait_until(lambda: b"Show/S01/e01.mkv" in links_in(links["series"]), "the episode's link")
            assert (state / "graylink.db").exists() and (state / "films.db").exists()  # a database each
            wait_until(lambda: len(updates(family)) == 2 and updates(trial) and plex.scanned(), "every server told")
            assert updates(family) == ["/media/films/A (2001)/A.mkv", "/media/series/Show/S01/e01.mkv"]
            assert updates(trial) == ["/films/A (2001)/A.mkv"]  # the trial Jellyfin sees only the films
            assert plex.scanned() == [("2", str(links["series"] / "Show/S01"))]  # the friend's Plex: the series

            # The films' mount drops: that library is held, nothing pruned; the series go on.
            subprocess.run(["fusermount3", "-uz", str(films_mnt)], check=True)
            add(series_src, "Show/S01/e02.mkv")
            wait_until(lambda: b"Show/S01/e02.mkv" in links_in(links["series"]), "the new episode's link")
            wait_until(lambda: len(updates(family)) == 3 and len(plex.scanned()) == 2, "the new episode told")
            time.sleep(2.5)  # a few of the films' cycles on the dropped mount
            assert links_in(links["films"]) == {b"A (2001)/A.mkv": str(films_mnt / "A (2001)/A.mkv").encode()}
            assert updates(trial) == ["/films/A (2001)/A.mkv"]  # nothing pruned, so nothing to tell
            assert updates(family) == [
                "/media/films/A (2001)/A.mkv",
                "/media/series/Show/S01/e01.mkv",
                "/media/series/Show/S01/e02.mkv",
            ]

            status = subprocess.run(
                [sys.executable, "-m", "graylink", "-c", str(ini), "status", "--json"],
                capture_output=True, text=True, env=env, timeout=60, check=False,
            )  # fmt: skip
            doc = json.loads(status.stdout)
            assert status.returncode == 1  # a mount is down
            assert set(doc["libraries"]) == {"default", "films"}
            assert doc["libraries"]["films"]["mount"]["healthy"] is False
            assert doc["libraries"]["default"]["mount"]["healthy"] is True
            assert set(doc["libraries"]["films"]["servers"]) == {"emby", "emby trial"}
            assert set(doc["libraries"]["default"]["servers"]) == {"emby", "plex friend"}
            one = subprocess.run(
                [sys.executable, "-m", "graylink", "-c", str(ini), "status", "--json", "--library", "default"],
                capture_output=True, text=True, env=env, timeout=60, check=False,
            )  # fmt: skip
            assert one.returncode == 0 and json.loads(one.stdout)["library"] == "default"
        finally:
            loop.send_signal(signal.SIGTERM)
            code = loop.wait(timeout=60)
        text = log.read_text(errors="replace")
        assert code == 0, text
        assert "2 libraries" in text
        assert "[library films] mount check source-mountpoint failed" in text  # the held library, named
        for secret in ("0123456789abcdef", "fedcba9876543210", "abcdefghij"):
            assert secret not in text


def test_a_killed_mount_holds_its_library_alone_and_sighup_touches_one_library(
    tmp_path: Path, mounts: dict[str, tuple[Path, Path]]
) -> None:
    """Two real rclone mounts and a third plain folder: rclone killed under one (its mount
    answers ENOTCONN) holds that library (nothing pruned, an alert naming it) while the
    other two keep linking and telling the server; a SIGHUP changing one library's rules
    re-plans that one and leaves the others as they run (a moved source refused, for its library alone)."""
    from web_support import apprise_receiver

    plain = tmp_path / "home-src"
    sources = {"films": mounts["films"][0], "series": mounts["series"][0], "home": plain}
    where = {"films": mounts["films"][1], "series": mounts["series"][1], "home": plain}
    links = {name: tmp_path / "links" / name for name in sources}
    add(sources["films"], "A (2001)/A.mkv")
    add(sources["series"], "Show/S01/e01.mkv")
    add(plain, "Clips/c1.mkv")
    add(plain, "Extras/x1.mkv")
    key = "emby-key-made-up-6f0b3d"
    with FakeMediaServer("emby", key) as emby, apprise_receiver() as receiver:

        def config(home_rules: str = "", films_source: Path = where["films"]) -> str:
            text = (
                f"[paths]\ndatabase = {tmp_path / 'state' / 'graylink.db'}\n"
                "[scan]\ninterval = 1s\nsettle = 0s\nworkers = 2\n[mount]\ncheck_interval = 1s\n"
                f"[emby]\nurl = {emby.url}\napi_key = {key}\n[alerts]\nurls = {receiver.url}\n"
            )
            for name in sources:
                source = films_source if name == "films" else where[name]
                text += f"[library {name}]\nsource = {source}\ntarget = {links[name]}\n"
            return text + home_rules

        ini = tmp_path / "graylink.ini"
        ini.write_text(config())
        log = tmp_path / "loop.log"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        loop = subprocess.Popen(
            [sys.executable, "-m", "graylink", "-c", str(ini), "reconcile", "--loop"],
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
            env=env,
        )
        try:
            for name, rel in (("films", b"A (2001)/A.mkv"), ("series", b"Show/S01/e01.mkv"), ("home", b"Clips/c1.mkv")):
                wait_until(lambda n=name, r=rel: r in links_in(links[n]), f"{name}'s link")  # type: ignore[misc]
            wait_until(lambda: len(updates(emby)) == 4, "the server told of all four")

            RCLONE["films"].kill()  # rclone dies: the films' mount answers ENOTCONN
            RCLONE["films"].wait(timeout=10)
            add(sources["series"], "Show/S01/e02.mkv")
            add(plain, "Clips/c2.mkv")
            wait_until(lambda: b"Show/S01/e02.mkv" in links_in(links["series"]), "series go on linking")
            wait_until(lambda: b"Clips/c2.mkv" in links_in(links["home"]), "the plain folder goes on linking")
            wait_until(lambda: len(updates(emby)) == 6, "the server told of both")
            wait_until(lambda: any("films" in t and "down" in t for t in receiver.titles()), "the films' alert")
            time.sleep(2.5)  # a few of the films' cycles on the dead mount
            assert links_in(links["films"]).keys() == {b"A (2001)/A.mkv"}  # held: nothing pruned
            told = [u for u in updates(emby) if u.startswith(str(links["films"]))]
            assert told == [str(links["films"] / "A (2001)/A.mkv")]  # nothing told of it since
            down = [t for t in receiver.titles() if "down" in t]
            assert down and all("library films" in t for t in down), receiver.titles()  # the alert names it

            # SIGHUP: the plain folder's rules change (Extras excluded), the films' source "moves".
            (tmp_path / "elsewhere").mkdir()
            ini.write_text(config("exclude_dirs = BDMV, Extras\n", films_source=tmp_path / "elsewhere"))
            loop.send_signal(signal.SIGHUP)
            wait_until(lambda: b"Extras/x1.mkv" not in links_in(links["home"]), "home re-planned under its rules")
            wait_until(lambda: "[library series] SIGHUP: this library's config is unchanged" in log.read_text(), "x")
            wait_until(lambda: "[library films] SIGHUP:" in log.read_text(), "the films' refusal")
        finally:
            loop.send_signal(signal.SIGTERM)
            code = loop.wait(timeout=60)
        text = log.read_text(errors="replace")
        assert code in (0, 1), text
        assert "[library home] SIGHUP: the link rules changed" in text
        assert "[library series] SIGHUP: the link rules changed" not in text
        assert "[library series] SIGHUP: config reloaded" not in text
        assert "[library films] SIGHUP: config reloaded" not in text  # a moved source is refused
        assert links_in(links["series"]).keys() == {b"Show/S01/e01.mkv", b"Show/S01/e02.mkv"}
        assert links_in(links["home"]).keys() == {b"Clips/c1.mkv", b"Clips/c2.mkv"}
        assert key not in text
