"""SIGTERM stops the loop within seconds, even in the middle of a delivery that hangs.

systemd gives a service 90 s to stop (``TimeoutStopSec``) before it kills it;
a media server that answers one byte at a time used to hold the loop for
92 s. The media server is ``tests/emby_server.py`` (it follows Emby's
``/Library/Media/Updated`` as documented in Emby's REST API reference).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

from emby_server import Answer, FakeMediaServer
from service_support import wait_for

from conftest import Library

KEY = "made-up-key-5f0c11"


def test_sigterm_during_a_hanging_delivery_stops_the_loop_within_seconds(
    lib: Library, loop_of: Callable[[], Any]
) -> None:
    lib.add("Movies/A (2001)/A.mkv")
    with FakeMediaServer("emby", KEY) as server:
        server.answer(*[Answer(204, drip=2.0)] * 5)  # ~80 bytes: minutes per answer
        lib.write_ini(emby={"url": server.url, "api_key": KEY, "server": "emby"}, scan={"interval": "1h"})
        loop = loop_of()
        wait_for("the first delivery", lambda: len(server.posts("/Library/Media/Updated")) >= 1, loop.proc)
        time.sleep(0.5)  # well inside the hanging answer
        began = time.monotonic()
        assert loop.stop() == 0, loop.text()
        took = time.monotonic() - began
    assert took < 10, f"SIGTERM took {took:.1f}s to stop the loop"
    assert "service stopped" in loop.text()
    with sqlite3.connect(lib.database) as db:
        queued = db.execute("SELECT count(*) FROM emby_queue").fetchone()[0]
    assert queued == 1, "the update that was not answered stays queued"
