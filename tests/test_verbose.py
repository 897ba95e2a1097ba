"""``-v`` tells graylink's own story, with paths; raw SQL and library chatter only at ``-vv``."""

from __future__ import annotations

from emby_server import FakeMediaServer

from conftest import Library

KEY = "emby-key-made-up-5b1e77c2"


def test_v_tells_what_graylink_did_with_paths(lib: Library) -> None:
    lib.add("Movies/A/A.mkv")
    lib.add("Movies/Gone/Gone.mkv")
    assert lib.run("reconcile").returncode == 0
    lib.add("Movies/B/B.mkv")
    (lib.source / "Movies/Gone/Gone.mkv").unlink()
    proc = lib.run("-v", "reconcile")
    assert proc.returncode == 0, proc.stderr
    story = proc.stderr
    for needle in (
        "listed Movies/B: 1 files, 0 folders",  # folders listed
        "marked Movies",  # marks added (the walk's)
        "plan: create Movies/B/B.mkv -> ",  # actions planned
        "plan: prune Movies/Gone/Gone.mkv",
        "created Movies/B/B.mkv",  # and applied
        "pruned Movies/Gone/Gone.mkv",
    ):
        assert needle in story, (needle, story)
    assert "SELECT" not in story and "INSERT" not in story, "raw SQL only at -vv"


def test_vv_adds_the_raw_sql(lib: Library) -> None:
    lib.add("Movies/A/A.mkv")
    proc = lib.run("-vv", "reconcile")
    assert proc.returncode == 0, proc.stderr
    assert "SELECT" in proc.stderr and "created Movies/A/A.mkv" in proc.stderr


def test_v_names_the_requests_sent_never_the_key(lib: Library) -> None:
    lib.add("Movies/A (2001)/A.mkv")
    with FakeMediaServer("emby", KEY) as emby:
        lib.write_ini(emby={"url": emby.url, "api_key": KEY, "path_map": f"{lib.target}=/media", "server": "emby"})
        proc = lib.run("-v", "reconcile")
    assert proc.returncode == 0, proc.stderr
    assert f"POST {emby.url}/Library/Media/Updated: 1 updates (/media/Movies/A (2001)/A.mkv)" in proc.stderr, (
        proc.stderr
    )
    assert KEY not in proc.stderr
