"""What the web face ignored: a count of webhook requests it answered without acting, and the last reason.

Sonarr and Radarr switch a webhook off for minutes after any answer of 400 or
more, so graylink answers 2xx to every request that passed auth, even one it
cannot use; the count and the reason make those visible (``status``, the page,
``graylink_webhooks_ignored_total``). Each counts with one statement, so
concurrent requests never lose a count.
"""

from __future__ import annotations

import json
import time
from typing import Any

from graylink.store.db import Store

META_IGNORED = "webhooks_ignored"
META_LAST_IGNORED = "webhook_last_ignored"


def record_ignored(store: Store, origin: str, event: str, reason: str, now: float | None = None) -> None:
    last = {"at": time.time() if now is None else now, "origin": origin, "event": event, "reason": reason}
    with store.atomic():
        store.execute(
            "INSERT INTO meta_value (key, value) VALUES (?, '1') "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
            (META_IGNORED,),
        )
        store.set_meta(META_LAST_IGNORED, json.dumps(last))


def webhook_status(store: Store) -> dict[str, Any]:
    raw = store.get_meta(META_LAST_IGNORED)
    try:
        last = json.loads(raw) if raw else None
    except ValueError:
        last = None
    waiting = 0
    if store.db.table_exists("arr_wait_file"):
        waiting = int(store.execute("SELECT count(*) FROM arr_wait_file").fetchone()[0])
    return {"ignored": int(store.get_meta(META_IGNORED) or 0), "last_ignored": last, "waiting_files": waiting}
