"""What the user docs say about upstream behaviour agrees with upstream and with graylink's own code.

Each fact is pinned to its source: Jellyfin's handling of dangling symlinks (10.8), Drive page tokens
(drive.v3.json: "The page token doesn't expire"), Plex's partial-scan URL as python-plexapi encodes it
(``plexapi/library.py`` ``LibrarySection.update``: ``quote_plus(path)``), and the webhook's rename wait
(``graylink/web/arr.py``, after Sonarr's ``WebhookRenamePayload``: ``renamedEpisodeFiles``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from graylink.notify.plex import deliver
from graylink.notify.queue import Op, enqueue
from graylink.store.db import Store
from graylink.web.arr import parse
from tests.plex_server import FakePlex
from tests.test_plex import TOKEN, Sleeps, plex_config

DOCS = Path(__file__).resolve().parent.parent / "docs"


def text(name: str) -> str:
    return re.sub(r"\s+", " ", (DOCS / name).read_text())


def test_jellyfin_counts_dangling_symlinks_missing_since_10_8() -> None:
    for name in ("emby.md", "media-servers.md"):
        assert "since 10.11" not in text(name)
        assert "Jellyfin (since 10.8)" in text(name)


def test_drive_page_tokens_are_not_said_to_expire() -> None:
    page = text("google-drive.md")
    assert "(expired or invalid)" not in page
    assert "Page tokens do not expire" in page


def test_the_plex_scan_example_is_what_graylink_sends(tmp_path: Path) -> None:
    shown = re.search(r"refresh\?path=(\S+?)`", text("media-servers.md"))
    assert shown is not None
    links = tmp_path / "links"
    (links / "TV/Show/Season 01").mkdir(parents=True)
    with FakePlex(TOKEN) as plex, Store(str(tmp_path / "g.db")) as store:
        with store.atomic():
            enqueue(store, [(Op.CREATE, os.fsencode(links / "TV/Show/Season 01/E01.mkv"))], ("plex",))
        deliver(plex_config(plex.url, links), store, tree_root=str(links), sleep=Sleeps())
        assert [s.path for s in plex.scans] == ["/data/TV/Show/Season 01"]
        assert plex.scans[0].url.endswith("refresh?path=" + shown.group(1))


def test_web_docs_say_what_a_rename_webhook_does() -> None:
    body = {
        "eventType": "Rename",
        "series": {"path": "/tv/Show"},
        "renamedEpisodeFiles": [{"relativePath": "Season 01/Show - S01E01.mkv", "previousPath": "/tv/Show/x.mkv"}],
    }
    event = parse("sonarr", json.dumps(body).encode())
    assert event.files  # graylink waits for the renamed files ...
    page = text("web.md")
    assert "Deletes and renames are marked once" not in page  # ... so the docs may not say it does not
    assert "A rename is waited for" in page
