"""How the service walks while a Drive feed runs: only what the feed marked, or every folder.

On a filesystem whose folder mtimes cannot be trusted (an rclone mount), the
walk re-lists every folder of the library: a Drive API call each whenever
rclone's directory cache has expired. While the feed is healthy (its last
poll succeeded within twice its interval) it names what changed, so the
service's walk reconciles only the marked folders, and the daily full
verification stays the safety net. When the feed fails, the walk lists every
folder again at ``[scan] interval`` until the feed recovers. On a trusted
filesystem the mtime-gated walk is cheap and runs as always.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from graylink.config import Config
from graylink.drive.feed import META_CADENCE, META_LAST_RESULT, feed_healthy
from graylink.store.db import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cadence:
    list_all: bool  # the walk lists every folder (False: only what is marked)
    reason: str


def cadence(config: Config, store: Store, trusted: bool) -> Cadence:
    if trusted:
        return Cadence(True, "folder mtimes are trusted: the walk skips unchanged folders by itself")
    if not config.drive.enabled:
        return Cadence(True, "no Drive feed: the walk lists every folder")
    if feed_healthy(config, store):
        return Cadence(False, "the Drive feed is healthy: the walk lists only the folders it marked")
    result = store.get_meta(META_LAST_RESULT)
    why = "has not answered yet" if result is None else f"is failing ({result})" if result != "ok" else "is late"
    return Cadence(True, f"the Drive feed {why}: the walk lists every folder")


def record_cadence(store: Store, now: Cadence) -> None:
    """Keep it for status; say so once when the service falls back to listing, and when it is back."""
    before = store.get_meta(META_CADENCE)
    text = ("all:" if now.list_all else "marked:") + now.reason
    if before == text:
        return
    was_marked = before is not None and before.startswith("marked:")
    if was_marked and now.list_all:
        log.warning("drive feed: %s", now.reason)
    elif not now.list_all:
        log.info("drive feed: %s", now.reason)
    with store.atomic():
        store.set_meta(META_CADENCE, text)
