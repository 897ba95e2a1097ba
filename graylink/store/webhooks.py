"""What the web face ignored: a count of webhook requests it answered without acting, and the last reason.

Sonarr and Radarr switch a webhook off for minutes after any answer of 400 or
more, so graylink answers 2xx to every request that passed auth, even one it
cannot use; the count and the reason make those visible (``status``, the page,
``graylink_webhooks_ignored_total``). Each counts with one statement, so
concurrent requests never lose a count.

A service of several libraries has no database of its own: a request that no
library holds (a path in no source, a relative path without ``library``, a
body graylink cannot read) is the service's, counted apart under keys of its
own in the first library's database, and shown once for the service, never
as that library's.
"""

from __future__ import annotations

import json
import time
from typing import Any

from graylink.store.db import Store

META_IGNORED = "webhooks_ignored"
META_LAST_IGNORED = "webhook_last_ignored"
META_SERVICE_IGNORED = "service_webhooks_ignored"  # a service of several libraries: in no library
META_SERVICE_LAST_IGNORED = "service_webhook_last_ignored"


def record_ignored(
    store: Store, origin: str, event: str, reason: str, now: float | None = None, *, service: bool = False
) -> None:
    """One more ignored request: the library's (``store``'s), or the service's when ``service``."""
    last = {"at": time.time() if now is None else now, "origin": origin, "event": event, "reason": reason}
    count, latest = (META_SERVICE_IGNORED, META_SERVICE_LAST_IGNORED) if service else (META_IGNORED, META_LAST_IGNORED)
    with store.atomic():
        store.execute(
            "INSERT INTO meta_value (key, value) VALUES (?, '1') "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
            (count,),
        )
        store.set_meta(latest, json.dumps(last))


def _last(store: Store, key: str) -> Any:
    raw = store.get_meta(key)
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def service_webhook_status(store: Store) -> dict[str, Any]:
    """The requests of a service of several libraries that no library held (``store``: the first library's)."""
    return {
        "ignored": int(store.get_meta(META_SERVICE_IGNORED) or 0),
        "last_ignored": _last(store, META_SERVICE_LAST_IGNORED),
    }


def webhook_status(store: Store) -> dict[str, Any]:
    last = _last(store, META_LAST_IGNORED)
    waiting = 0
    if store.db.table_exists("arr_wait_file"):
        waiting = int(store.execute("SELECT count(*) FROM arr_wait_file").fetchone()[0])
    return {"ignored": int(store.get_meta(META_IGNORED) or 0), "last_ignored": last, "waiting_files": waiting}
