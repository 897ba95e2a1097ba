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

With several libraries a path goes to the library whose source holds it
(after ``[web] arr_path_map``); its marks land in that library's database and
wake that library alone. A path in no library's source is answered as an
unmapped path always was (2xx, ``ignored``), and counted for the service,
not for a library (:mod:`graylink.store.webhooks`). A relative path of the generic routes names no source:
with several libraries it needs the request's ``library`` field.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from graylink.config import Config
from graylink.errors import GraylinkError
from graylink.store.db import Mark, Store, shown_rel
from graylink.store.webhooks import record_ignored
from graylink.web import arr, arrwait
from graylink.web.arrpaths import PathError, request_path, shown, to_source
from graylink.web.libraries import LibraryError, Views, library_field

log = logging.getLogger(__name__)

# A writable store of one library's database.
OpenStore = Callable[[Config], AbstractContextManager[Store]]
# The origin of the generic route's marks and ignored requests (status, log).
GENERIC_ORIGIN = "webhook"


@dataclass
class Answer:
    status: int
    body: dict[str, Any] = field(default_factory=dict)
    marked: bool = False
    libraries: tuple[str, ...] = ()  # the libraries it marked something in: each is woken


def _shown(rel: bytes) -> str:
    return shown_rel(rel) or "/"


def ignore(
    open_store: OpenStore, origin: str, event: str, reason: str, view: Config, *, service: bool = False
) -> Answer:
    """Answered 200, marked nothing: one WARNING, one more on the count (in ``view``'s database, when it
    takes it): ``view``'s own, or the service's (``service``: no library holds the request)."""
    label = f"{origin} {event}".strip()
    log.warning("webhook (%s) ignored: %s", label, reason)
    try:
        with open_store(view) as opened:
            record_ignored(opened, origin, event, reason, service=service)
    except GraylinkError as exc:
        log.error("webhook (%s): could not count it as ignored: %s", label, exc)
    body = {"event": event, "marked": [], "ignored": reason} if event else {"marked": [], "ignored": reason}
    return Answer(200, body)


def _outside_every(views: Views, given: object, hint: str) -> PathError:
    sources = ", ".join(f"{view.name}: {view.paths.source}" for view in views.all)
    return PathError(f"{shown(str(given))} is not inside any library's source ({sources}); {hint}")


def _arr_route(views: Views, event: arr.ArrEvent) -> tuple[Config, bytes, list[bytes]]:
    """The library whose source holds the *arr's folder, the folder and its files there; PathError if none."""

    def locate(view: Config) -> bytes:
        return to_source(event.folder, view.web.arr_path_map, view.paths.source)

    if not views.several:
        view = views.all[0]
        folder = locate(view)
    else:
        found = views.holding(locate)
        if found is None:
            raise _outside_every(views, event.folder, "check [web] arr_path_map (the *arr's folders onto a source)")
        view, folder = found
    files = [to_source(f, view.web.arr_path_map, view.paths.source) for f in event.files]
    return view, folder, files


def arr_webhook(views: Views, app_name: str, body: bytes, open_store: OpenStore) -> Answer:
    """A Sonarr / Radarr webhook: mark its folder (in the library holding it) and wait for its files, or say why not."""
    first = views.all[0]
    try:
        event = arr.parse(app_name, body)
    except arr.PayloadError as exc:
        return ignore(open_store, app_name, "", str(exc), first, service=views.several)
    if event.test or not event.folder:
        # Test (the *arr's "Test" button) and events that change no file: nothing to do, nothing wrong.
        return Answer(200, {"event": event.event, "marked": []})
    try:
        view, folder, files = _arr_route(views, event)
    except PathError as exc:
        return ignore(open_store, app_name, event.event, str(exc), first, service=views.several)
    try:
        with open_store(view) as opened:
            arrwait.mark_event(opened, folder, files, app_name, view.web.arr_wait)
    except GraylinkError as exc:
        log.error("webhook (%s %s): %s", app_name, event.event, exc)
        return ignore(open_store, app_name, event.event, f"graylink could not record it: {exc}", view)
    where = f" in library {view.name}" if views.several else ""
    log.info("webhook (%s %s): marked %s%s", app_name, event.event, _shown(folder), where)
    doc: dict[str, Any] = {"event": event.event, "marked": [_shown(folder)], "waiting_for": len(files)}
    if views.several:
        doc["library"] = view.name
    return Answer(202, doc, marked=True, libraries=(view.name,))


def requested_paths(views: Views, doc: Any) -> dict[str, list[bytes]]:
    """The subtrees of ``{"paths": [...], "library": NAME}`` by library; :class:`PathError` naming the first
    path that cannot be one (or :class:`LibraryError` for a library that is not there)."""
    paths = doc.get("paths") if isinstance(doc, dict) else None
    if not isinstance(paths, list) or not paths:
        raise PathError('send JSON {"paths": ["TV/Show", ...]}: paths relative to the source or inside it')
    named = library_field(doc)
    if named is not None or not views.several:
        view = views.chosen(named)
        return {view.name: [request_path(p, view.paths.source) for p in paths]}
    out: dict[str, list[bytes]] = {}
    for given in paths:
        if isinstance(given, str) and not given.strip().startswith("/"):
            raise LibraryError(
                f'{shown(given)} is relative: with several libraries send "library" (one of: {", ".join(views.names)})'
                " or an absolute path"
            )
        found = views.holding(partial(_inside_source, given))
        if found is None:
            raise _outside_every(views, given, 'send "library" with a path relative to its source')
        out.setdefault(found[0].name, []).append(found[1])
    return out


def _inside_source(given: object, view: Config) -> bytes:
    return request_path(given, view.paths.source)


def mark_paths(views: Views, open_store: OpenStore, subtrees: dict[str, list[bytes]], origin: str) -> Answer:
    shown_paths: list[str] = []
    for name, rels in subtrees.items():
        with open_store(views.named(name)) as opened, opened.atomic():
            opened.add_marks(Mark(rel, origin) for rel in rels)
        shown_here = [_shown(rel) for rel in rels]
        shown_paths += shown_here
        where = f" in library {name}" if views.several else ""
        log.info("%s: marked %s%s", origin, ", ".join(shown_here), where)
    doc: dict[str, Any] = {"marked": shown_paths}
    if views.several:
        doc["libraries"] = {name: [_shown(rel) for rel in rels] for name, rels in subtrees.items()}
    return Answer(202, doc, marked=True, libraries=tuple(subtrees))


def paths_request(views: Views, doc: Any, open_store: OpenStore, origin: str) -> Answer:
    """``POST /api/reconcile``: a request it cannot use is a 400 with the reason (and one
    WARNING), nothing of it marked."""
    try:
        subtrees = requested_paths(views, doc)
    except (PathError, LibraryError) as exc:
        log.warning("%s: refused a request: %s", origin, exc)
        return Answer(400, {"error": str(exc)})
    return mark_paths(views, open_store, subtrees, origin)


def generic_webhook(views: Views, doc: Any, open_store: OpenStore) -> Answer:
    """``/api/webhook`` (MoviePilot, scripts): the paths of ``POST /api/reconcile``, answered as a
    webhook -- a request it cannot use is 200 with ``ignored`` and the reason, nothing of it marked."""
    try:
        subtrees = requested_paths(views, doc)
    except (PathError, LibraryError) as exc:
        return ignore(open_store, GENERIC_ORIGIN, "", str(exc), views.all[0], service=views.several)
    return mark_paths(views, open_store, subtrees, GENERIC_ORIGIN)
