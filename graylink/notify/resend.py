"""Send a folder to one media server again, on a person's request (the web face's "re-send").

DB work only, in the caller's transaction: the folder goes into that server's
queue once (Emby / Jellyfin re-read it, Plex scans it), and the changes under
it that the server never took (stuck) are queued again. The next delivery
sends them; nothing is sent from here.
"""

from __future__ import annotations

import time

from graylink.links.planner import Op
from graylink.notify.changes import retry_under
from graylink.store.db import Store


def resend_folder(store: Store, server: str, folder: bytes, now: float | None = None) -> int:
    """Queue ``folder`` (an absolute path in the link tree) for ``server``; returns the stuck changes re-queued."""
    when = time.time() if now is None else now
    store.execute(
        "INSERT INTO emby_queue (path, op, queued_at, server) VALUES (?, ?, ?, ?)",
        (folder, Op.REPAIR.value, when, server),
    )
    return retry_under(store, server, [folder], when)
