"""The management pages and actions: the library browser, the configuration, the log, and the POST actions.

Pages read the database (each request its own read-only connection) and the
config; actions write a request or marks and wake the loop (:mod:`graylink.web.actions`),
answering 202 with what was queued. Every route sits behind the app's guard
(Host, origin, JSON-only for POST, token: :mod:`graylink.web.guard`), which
runs before any of them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from flask import Flask, Response, g, jsonify, render_template, request

from graylink.config import Config
from graylink.store.db import Store, normalize_rel
from graylink.web import actions
from graylink.web.library import folder_view

log = logging.getLogger(__name__)

StoreOpener = Callable[..., AbstractContextManager[Store]]


def path_param(raw_query: bytes) -> bytes:
    """``?path=`` as raw bytes (a name that is not UTF-8 stays itself), normalised; ValueError if it leaves the root."""
    for pair in raw_query.split(b"&"):
        key, _, value = pair.partition(b"=")
        if unquote_to_bytes(key.replace(b"+", b" ")) == b"path":
            return normalize_rel(unquote_to_bytes(value.replace(b"+", b" ")))
    return b""


def folder_link(rel: bytes) -> str:
    return "library?path=" + quote(rel, safe="/") if rel else "library"


def _answer(status: int, doc: dict[str, Any]) -> Response:
    response = jsonify(doc)
    response.status_code = status
    return response


def register(app: Flask, config: Callable[[], Config], wake: Callable[[], None], store: StoreOpener) -> None:
    from graylink.notify.queue import configured
    from graylink.reconcile.planning import rules_of

    @app.get("/library")
    def library() -> Response | str:
        try:
            rel = path_param(request.query_string)
        except ValueError:
            return _answer(400, {"error": "the path leaves the source"})
        current = config()
        with store() as opened:
            view = folder_view(current, opened, rules_of(current), configured(current), rel)
        return render_template("library.html.j2", view=view, link=folder_link, words=g.words)

    @app.get("/config")
    def config_page() -> str:
        from graylink.web.configview import config_rows

        rows, note = config_rows(config())
        return render_template("config.html.j2", rows=rows, note=note, file=config().file, words=g.words)

    @app.get("/log")
    def log_page() -> str:
        from graylink.web.logview import recent_lines

        origin, lines = recent_lines(config())
        return render_template("log.html.j2", origin=origin, lines=lines, words=g.words)

    # ---------------------------------------------------------------- actions

    def body() -> dict[str, Any]:
        found = request.get_json(silent=True)
        return found if isinstance(found, dict) else {}

    @app.post("/api/brake/release")
    def release_brake() -> Response:
        shown = body().get("prunes")
        if not isinstance(shown, int) or isinstance(shown, bool) or shown <= 0:
            return _answer(400, {"error": 'send JSON {"prunes": N}: the number of withheld prunes you were shown'})
        with store() as opened:
            brake = actions.brake_state(opened)
        if brake.prunes != shown:
            log.info("web action release-brake: refused, %d prunes shown but the brake holds %d", shown, brake.prunes)
            why = f"the brake now holds {brake.prunes} prunes, not {shown}: look again before releasing it"
            return _answer(409, {"error": why, "prunes": brake.prunes})
        with store(readonly=False) as opened:
            actions.ask(opened, actions.RELEASE, prunes=shown)
        wake()
        log.info("web action release-brake: queued one run that may prune up to %d links", shown)
        return _answer(202, {"queued": "release-brake", "prunes": shown})

    @app.post("/api/deliver")
    def deliver() -> Response:
        servers = configured(config())
        if not servers:
            return _answer(409, {"error": "no media server is configured ([emby] url, [plex] url)"})
        with store(readonly=False) as opened:
            actions.ask(opened, actions.DELIVER)
        wake()
        log.info("web action deliver: queued a delivery to %s", ", ".join(servers))
        return _answer(202, {"queued": "deliver", "servers": list(servers)})

    @app.post("/api/resend")
    def resend() -> Response:
        from graylink.notify.resend import resend_folder

        given, server = body().get("path"), body().get("server")
        servers = configured(config())
        if server not in servers:
            why = f"server must be one of: {', '.join(servers)}" if servers else "no media server is configured"
            return _answer(400, {"error": why})
        if not isinstance(given, str):
            return _answer(400, {"error": 'send JSON {"path": "TV/Show", "server": "emby"}'})
        try:
            rel = normalize_rel(os.fsencode(given))
        except ValueError:
            return _answer(400, {"error": f"{given} leaves the link tree"})
        folder = os.fsencode(config().paths.target).rstrip(b"/") + (b"/" + rel if rel else b"")
        with store(readonly=False) as opened:
            with opened.atomic():
                again = resend_folder(opened, str(server), folder)
            actions.ask(opened, actions.DELIVER)
        wake()
        shown = rel.decode("utf-8", "backslashreplace") or "/"
        log.info("web action resend: %s queued for %s (%d stuck changes under it again)", shown, server, again)
        return _answer(202, {"queued": "resend", "path": shown, "server": server, "stuck_requeued": again})
