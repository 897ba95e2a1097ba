"""A config of today (no named sections) runs unchanged on a database of the
previous release (issue 30).

tests/data/graylink-0.1.0-8dfe560.db was written by graylink at commit 8dfe560
(schema up to migration 0009), from this config::

    [paths]
    source = /tmp/old30/source          # Movies/A (2001)/A.mkv, TV/Show/S01/e01.mkv
    target = /tmp/old30/links
    database = /tmp/old30/graylink.db
    [emby]
    url = http://127.0.0.1:9            # down: its 2 updates stayed queued
    api_key = old-key-1234

The test puts the same library at its own folder: the database's record of its
source and target is moved there (what ``reconcile --rebase`` would do), nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3

from emby_server import FakeMediaServer

from conftest import REPO, Library, links_in

OLD = REPO / "tests" / "data" / "graylink-0.1.0-8dfe560.db"
FILES = ("Movies/A (2001)/A.mkv", "TV/Show/S01/e01.mkv")
OLD_MTIME_NS = 1796662207079122833  # what the old database's file rows hold for both


def test_a_config_of_today_runs_on_the_previous_release_database(lib: Library) -> None:
    for rel in FILES:
        lib.add(rel, b"v\n")
        # the file as the old run indexed it (size and mtime): unchanged, so nothing is announced as Modified
        os.utime(lib.source / rel, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
        link = lib.target / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(lib.source / rel, link)  # the tree as the old run left it
    lib.database.parent.mkdir(parents=True)
    shutil.copy(OLD, lib.database)
    with sqlite3.connect(lib.database) as db:
        for key, old, new in (
            ("library_source", "/tmp/old30/source", str(lib.source)),
            ("library_target", "/tmp/old30/links", str(lib.target)),
            ("plan_settings", "/tmp/old30/source", str(lib.source)),
        ):
            db.execute("UPDATE meta_value SET value = replace(value, ?, ?) WHERE key = ?", (old, new, key))
    before = sorted(p.name for p in lib.database.parent.iterdir())
    with FakeMediaServer("emby", "old-key-1234") as emby:
        lib.write_ini(emby={"url": emby.url, "api_key": "old-key-1234"})
        first = lib.run("reconcile", "--json")
        assert first.returncode == 0, first.stderr
        doc = json.loads(first.stdout)
        assert doc["counts"]["create"] == 0 and doc["counts"]["prune"] == 0
        # The old queue's place ("emby") is this server's: its 2 waiting updates go out, once.
        assert doc["emby"]["sent"] == 2 and list(doc["servers"]) == ["emby"]
        sent = sorted(u["Path"] for p in emby.posts("/Library/Media/Updated") for u in p.body["Updates"])
        assert [path.removeprefix("/tmp/old30/links/") for path in sent] == sorted(FILES)
        second = lib.run("reconcile", "--json")
        assert second.returncode == 0 and json.loads(second.stdout)["counts"]["create"] == 0
        assert len(emby.posts("/Library/Media/Updated")) == 1
    assert set(links_in(lib.target)) == {os.fsencode(rel) for rel in FILES}
    status = json.loads(lib.run("status", "--json").stdout)
    assert status["library"] == "default" and status["emby"]["queued"] == 0
    assert status["index"]["files"] == 2 and status["index"]["links"] == 2
    # The same database file: no other one beside it (a named library's would be NAME.db).
    after = sorted(p.name for p in lib.database.parent.iterdir())
    assert [name for name in after if name.endswith(".db")] == [name for name in before if name.endswith(".db")]
