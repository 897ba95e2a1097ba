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
from graylink.web.libraries import Served
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


def folder_link(rel: bytes, library: str = "") -> str:
    """The library page of a folder (of the named library, when the service has several)."""
    query = [f"library={quote(library)}"] if library else []
    query += ["path=" + quote(rel, safe="/")] if rel else []
    return "library" + ("?" + "&".join(query) if query else "")


def _answer(status: int, doc: dict[str, Any]) -> Response:
    response = jsonify(doc)
    response.status_code = status
    return response


def register(app: Flask, ctx: Served, store: StoreOpener) -> None:
    from graylink.notify.queue import configured
    from graylink.reconcile.planning import rules_of

    def page_view() -> Config:
        """The library a page of one library shows: ``?library=``, else the first (the switcher offers the rest)."""
        views = ctx.libraries()
        return views.page(request.args.get("library") or None) or views.all[0]

    @app.get("/library")
    def library() -> Response | str:
        try:
            rel = path_param(request.query_string)
        except ValueError:
            return _answer(400, {"error": "the path leaves the source"})
        current = page_view()
        with store(view=current) as opened:
            view = folder_view(current, opened, rules_of(current), configured(current), rel)
        several = ctx.libraries().several

        def link(rel: bytes = b"") -> str:
            return folder_link(rel, current.name if several else "")

        body = {"library": current.name} if several else {}
        return render_template("library.html.j2", view=view, link=link, words=g.words, body=body)

    @app.get("/config")
    def config_page() -> str:
        from graylink.web.configview import config_rows

        whole = ctx.whole_config()
        rows, note = config_rows(whole)
        return render_template("config.html.j2", rows=rows, note=note, file=whole.file, words=g.words)

    @app.get("/log")
    def log_page() -> str:
        from graylink.web.logview import recent_lines

        origin, lines = recent_lines(ctx.config())
        chosen = request.args.get("library") or ""
        if chosen and ctx.libraries().several:
            ctx.libraries().named(chosen)  # an unknown name: 404 naming the libraries
            # A library's thread prefixes its lines (graylink.service.many); the rest are the service's own.
            tag = f"[library {chosen}]"
            lines = [line for line in lines if tag in line or "[library " not in line]
        return render_template("log.html.j2", origin=origin, lines=lines, words=g.words)

    # ---------------------------------------------------------------- actions

    def body() -> dict[str, Any]:
        found = request.get_json(silent=True)
        return found if isinstance(found, dict) else {}

    def acted_on() -> Config:
        """The library an action names (``library`` in the body); the only one; else LibraryError (400)."""
        return ctx.libraries().chosen(body().get("library"))

    def woken(view: Config) -> None:
        ctx.wake_for((view.name,))

    def where(view: Config) -> str:
        return f" in library {view.name}" if ctx.libraries().several else ""

    @app.post("/api/brake/release")
    def release_brake() -> Response:
        view = acted_on()
        shown = body().get("prunes")
        if not isinstance(shown, int) or isinstance(shown, bool) or shown <= 0:
            return _answer(400, {"error": 'send JSON {"prunes": N}: the number of withheld prunes you were shown'})
        with store(view=view) as opened:
            brake = actions.brake_state(opened)
        if brake.prunes != shown:
            log.info(
                "web action release-brake%s: refused, %d prunes shown but the brake holds %d",
                where(view),
                shown,
                brake.prunes,
            )
            why = f"the brake now holds {brake.prunes} prunes, not {shown}: look again before releasing it"
            return _answer(409, {"error": why, "prunes": brake.prunes})
        with store(readonly=False, view=view) as opened:
            actions.ask(opened, actions.RELEASE, prunes=shown)
        woken(view)
        log.info("web action release-brake%s: queued one run that may prune up to %d links", where(view), shown)
        return _answer(202, {"queued": "release-brake", "prunes": shown, **_named(view, ctx)})

    @app.post("/api/deliver")
    def deliver() -> Response:
        view = acted_on()
        servers = configured(view)
        if not servers:
            return _answer(409, {"error": "no media server is configured ([emby] url, [plex] url)"})
        with store(readonly=False, view=view) as opened:
            actions.ask(opened, actions.DELIVER)
        woken(view)
        log.info("web action deliver%s: queued a delivery to %s", where(view), ", ".join(servers))
        return _answer(202, {"queued": "deliver", "servers": list(servers), **_named(view, ctx)})

    @app.post("/api/resend")
    def resend() -> Response:
        from graylink.notify.resend import resend_folder

        view = acted_on()
        given, server = body().get("path"), body().get("server")
        servers = configured(view)
        if server not in servers:
            why = f"server must be one of: {', '.join(servers)}" if servers else "no media server is configured"
            return _answer(400, {"error": why})
        if not isinstance(given, str):
            return _answer(400, {"error": 'send JSON {"path": "TV/Show", "server": "emby"}'})
        try:
            rel = normalize_rel(os.fsencode(given))
        except ValueError:
            return _answer(400, {"error": f"{given} leaves the link tree"})
        folder = os.fsencode(view.paths.target).rstrip(b"/") + (b"/" + rel if rel else b"")
        with store(readonly=False, view=view) as opened:
            with opened.atomic():
                again = resend_folder(opened, str(server), folder)
            actions.ask(opened, actions.DELIVER)
        woken(view)
        shown = rel.decode("utf-8", "backslashreplace") or "/"
        log.info(
            "web action resend%s: %s queued for %s (%d stuck changes under it again)", where(view), shown, server, again
        )
        doc = {"queued": "resend", "path": shown, "server": server, "stuck_requeued": again}
        return _answer(202, {**doc, **_named(view, ctx)})


def _named(view: Config, ctx: Served) -> dict[str, str]:
    """An action's answer names its library when there are several (one library: the answer of old)."""
    return {"library": view.name} if ctx.libraries().several else {}
