"""What a webhook request does: mark, wait, or ignore, and the answer that says which.

Sonarr and Radarr record every answer of 400 or more as a failure and, after
five minutes of failures, switch the webhook off for 5, 15, 30, then 60
minutes (their ``NotificationStatusService`` and ``EscalationBackOff``);
events in that time are dropped. So a request that passed auth is answered
2xx whatever graylink makes of it: ``202`` with what it marked, ``200`` with
``ignored`` and the reason when it marked nothing (one WARNING in the log and
one more on the count of ignored webhooks). Only a wrong token is ``401``.
The generic ``/api/webhook`` (MoviePilot, scripts) follows the same rule, as
every webhook route does. ``POST /api/reconcile`` is no webhook: what it
cannot use is a ``400`` with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from graylink.config import Config
from graylink.errors import GraylinkError
from graylink.store.db import Mark, Store, shown_rel
from graylink.store.webhooks import record_ignored
from graylink.web import arr, arrwait
from graylink.web.arrpaths import PathError, request_path, to_source

log = logging.getLogger(__name__)

OpenStore = Callable[[], AbstractContextManager[Store]]
# The origin of the generic route's marks and ignored requests (status, log).
GENERIC_ORIGIN = "webhook"


@dataclass
class Answer:
    status: int
    body: dict[str, Any] = field(default_factory=dict)
    marked: bool = False


def _shown(rel: bytes) -> str:
    return shown_rel(rel) or "/"


def ignore(open_store: OpenStore, origin: str, event: str, reason: str) -> Answer:
    """Answered 200, marked nothing: one WARNING, one more on the count (when the database takes it)."""
    label = f"{origin} {event}".strip()
    log.warning("webhook (%s) ignored: %s", label, reason)
    try:
        with open_store() as opened:
            record_ignored(opened, origin, event, reason)
    except GraylinkError as exc:
        log.error("webhook (%s): could not count it as ignored: %s", label, exc)
    body = {"event": event, "marked": [], "ignored": reason} if event else {"marked": [], "ignored": reason}
    return Answer(200, body)


def arr_webhook(config: Config, app_name: str, body: bytes, open_store: OpenStore) -> Answer:
    """A Sonarr / Radarr webhook: mark its folder and wait for its files, or say why not."""
    try:
        event = arr.parse(app_name, body)
    except arr.PayloadError as exc:
        return ignore(open_store, app_name, "", str(exc))
    if event.test or not event.folder:
        # Test (the *arr's "Test" button) and events that change no file: nothing to do, nothing wrong.
        return Answer(200, {"event": event.event, "marked": []})
    try:
        folder = to_source(event.folder, config.web.arr_path_map, config.paths.source)
        files = [to_source(f, config.web.arr_path_map, config.paths.source) for f in event.files]
    except PathError as exc:
        return ignore(open_store, app_name, event.event, str(exc))
    try:
        with open_store() as opened:
            arrwait.mark_event(opened, folder, files, app_name, config.web.arr_wait)
    except GraylinkError as exc:
        log.error("webhook (%s %s): %s", app_name, event.event, exc)
        return ignore(open_store, app_name, event.event, f"graylink could not record it: {exc}")
    log.info("webhook (%s %s): marked %s", app_name, event.event, _shown(folder))
    return Answer(202, {"event": event.event, "marked": [_shown(folder)], "waiting_for": len(files)}, marked=True)


def requested_paths(config: Config, doc: Any) -> list[bytes]:
    """The subtrees of ``{"paths": [...]}``; :class:`PathError` naming the first that cannot be one."""
    paths = doc.get("paths") if isinstance(doc, dict) else None
    if not isinstance(paths, list) or not paths:
        raise PathError('send JSON {"paths": ["TV/Show", ...]}: paths relative to the source or inside it')
    return [request_path(p, config.paths.source) for p in paths]


def mark_paths(open_store: OpenStore, subtrees: list[bytes], origin: str) -> Answer:
    with open_store() as opened, opened.atomic():
        opened.add_marks(Mark(rel, origin) for rel in subtrees)
    shown_paths = [_shown(rel) for rel in subtrees]
    log.info("%s: marked %s", origin, ", ".join(shown_paths))
    return Answer(202, {"marked": shown_paths}, marked=True)


def paths_request(config: Config, doc: Any, open_store: OpenStore, origin: str) -> Answer:
    """``POST /api/reconcile``: a request it cannot use is a 400 with the reason (and one
    WARNING), nothing of it marked."""
    try:
        subtrees = requested_paths(config, doc)
    except PathError as exc:
        log.warning("%s: refused a request: %s", origin, exc)
        return Answer(400, {"error": str(exc)})
    return mark_paths(open_store, subtrees, origin)


def generic_webhook(config: Config, doc: Any, open_store: OpenStore) -> Answer:
    """``/api/webhook`` (MoviePilot, scripts): the paths of ``POST /api/reconcile``, answered as a
    webhook -- a request it cannot use is 200 with ``ignored`` and the reason, nothing of it marked."""
    try:
        subtrees = requested_paths(config, doc)
    except PathError as exc:
        return ignore(open_store, GENERIC_ORIGIN, "", str(exc))
    return mark_paths(open_store, subtrees, GENERIC_ORIGIN)
