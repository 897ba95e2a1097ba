"""The service's HTTP face: the status page, its JSON, metrics, and triggers.

A Flask application; :mod:`graylink.web.server` runs it on waitress in a
thread of the ``reconcile --loop`` process. Every request opens its own
database connection (read-only unless it marks something), so a request
never shares a connection with the loop. A trigger only marks subtrees (the
reconciler does the rest, in the loop) and wakes the loop.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, jsonify, render_template, request, send_file
from werkzeug.exceptions import HTTPException

from graylink.config import Config
from graylink.errors import GraylinkError
from graylink.report.snapshot import default_snapshot_path
from graylink.store.db import Mark, Store, normalize_rel
from graylink.web import arr, guard
from graylink.web.bounded import MAX_BODY
from graylink.web.page import page_model

log = logging.getLogger(__name__)

ARR_ENDPOINTS = ("sonarr", "radarr")
# A body nested past Python's recursion limit, or text that cannot be a path
# (a lone surrogate such as "\ud800" cannot be encoded): the sender's fault.
MALFORMED = (RecursionError, UnicodeError)
MALFORMED_WHY = {RecursionError: "nested too deeply", UnicodeEncodeError: "a string that is not text"}


@dataclass
class WebContext:
    """What the app needs from the service: the live config (SIGHUP swaps it) and a way to wake the loop."""

    config: Callable[[], Config]
    wake: Callable[[], None]


def _error(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response


def _relative(config: Config, given: str) -> bytes:
    """A path of a request as a subtree of the source: absolute inside it, or relative to it."""
    if not isinstance(given, str) or not given.strip():
        raise arr.PayloadError("a path must be a non-empty string")
    raw = os.fsencode(given.strip())
    if raw.startswith(b"/"):
        root = os.fsencode(config.paths.source).rstrip(b"/")
        path = os.path.normpath(raw)
        if path == root:
            return b""
        if not path.startswith(root + b"/"):
            raise arr.PayloadError(f"{given} is not inside the source {config.paths.source}")
        raw = path[len(root) + 1 :]
    try:
        return normalize_rel(raw)
    except ValueError:
        raise arr.PayloadError(f"{given} leaves the source") from None


def _shown(rel: bytes) -> str:
    return rel.decode("utf-8", "backslashreplace") or "/"


def create_app(ctx: WebContext) -> Flask:
    app = Flask("graylink.web", template_folder=os.path.join(os.path.dirname(__file__), "templates"))
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY

    @contextmanager
    def store(readonly: bool = True) -> Iterator[Store]:
        with Store(ctx.config().paths.database, readonly=readonly) as opened:
            yield opened

    @app.before_request
    def _guard() -> Response | None:
        # The Host, then the origin, then the token (graylink.web.guard): a
        # refusal is answered before any route reads the body.
        web = ctx.config().web
        host = request.environ.get("HTTP_HOST")
        refusal = guard.host_refusal(host, web.listen, web.token) or guard.cross_site_refusal(
            request.method, request.headers, host, request.mimetype
        )
        if refusal is not None:
            log.info("web: refused %s %s: %s", request.method, request.path, refusal.reason)
            return _error(refusal.status, refusal.reason)
        if guard.authorized(request.headers, web.token):
            return None
        response = _error(401, "a valid token is required ([web] token)")
        response.headers["WWW-Authenticate"] = 'Basic realm="graylink"'
        return response

    def status_doc() -> dict[str, Any]:
        from graylink.report.status import collect_status

        config = ctx.config()
        with store() as opened:
            return collect_status(config, opened)

    @app.get("/")
    def index() -> str:
        from graylink.store import history

        config = ctx.config()
        doc = status_doc()
        with store() as opened:
            cycles, changes = history.recent_cycles(opened), history.recent_changes(opened)
        snapshot = os.path.isfile(default_snapshot_path(config))
        return render_template("status.html.j2", page=page_model(doc, cycles, changes, snapshot))

    @app.get("/api/status")
    def api_status() -> Response:
        return jsonify(status_doc())

    @app.get("/metrics")
    def metrics() -> Response:
        from graylink.store import history
        from graylink.web.metrics import render_metrics

        doc = status_doc()
        with store() as opened:
            totals = history.totals(opened)
        body, content_type = render_metrics(doc, totals)
        return Response(body, content_type=content_type)

    @app.get("/snapshot")
    def snapshot() -> Response:
        path = default_snapshot_path(ctx.config())
        if not os.path.isfile(path):
            why = "no snapshot yet: run 'graylink snapshot', or set [snapshot] path (rewritten each full verify)"
            return _error(404, why)
        return send_file(path, mimetype="text/html", max_age=0)

    def mark(subtrees: list[bytes], origin: str) -> Response:
        with store(readonly=False) as opened, opened.atomic():
            opened.add_marks(Mark(rel, origin) for rel in subtrees)
        ctx.wake()
        shown = [_shown(rel) for rel in subtrees]
        log.info("%s: marked %s", origin, ", ".join(shown))
        response = jsonify({"marked": shown})
        response.status_code = 202
        return response

    def paths_request(origin: str) -> Response:
        body = request.get_json(silent=True)
        paths = body.get("paths") if isinstance(body, dict) else None
        if not isinstance(paths, list) or not paths:
            return _error(400, 'send JSON {"paths": ["TV/Show", ...]}: paths relative to the source or inside it')
        config = ctx.config()
        try:
            subtrees = [_relative(config, p) for p in paths]
        except arr.PayloadError as exc:
            return _error(400, str(exc))
        return mark(subtrees, origin)

    @app.post("/api/reconcile")
    def api_reconcile() -> Response:
        return paths_request("api")

    @app.post("/api/webhook")
    def api_webhook() -> Response:
        return paths_request("webhook")

    def arr_hook(app_name: str) -> Response:
        config = ctx.config()
        try:
            event = arr.parse(app_name, request.get_data(cache=False))
        except arr.PayloadError as exc:
            return _error(400, str(exc))
        if event.test or not event.folder:
            # Test (the *arr's "Test" button) and events that change no file.
            return jsonify({"event": event.event, "marked": []})
        try:
            folder = arr.to_source(event.folder, config.web.arr_path_map, config.paths.source)
            files = [arr.to_source(f, config.web.arr_path_map, config.paths.source) for f in event.files]
        except arr.PayloadError as exc:
            log.warning("webhook (%s %s): %s", app_name, event.event, exc)
            return _error(422, str(exc))
        with store(readonly=False) as opened:
            arr.mark_event(opened, folder, files, app_name, config.web.arr_wait)
        ctx.wake()
        log.info("webhook (%s %s): marked %s", app_name, event.event, _shown(folder))
        response = jsonify({"event": event.event, "marked": [_shown(folder)], "waiting_for": len(files)})
        response.status_code = 202
        return response

    @app.post("/api/webhook/sonarr")
    def sonarr() -> Response:
        return arr_hook("sonarr")

    @app.post("/api/webhook/radarr")
    def radarr() -> Response:
        return arr_hook("radarr")

    @app.errorhandler(GraylinkError)
    def graylink_error(exc: GraylinkError) -> Response:
        log.error("web: %s", exc)
        return _error(503, str(exc))

    @app.errorhandler(404)
    def not_found(exc: Exception) -> Response:
        return _error(404, f"no such page: {request.path} (see docs/web.md for the routes)")

    @app.errorhandler(405)
    def wrong_method(exc: Exception) -> Response:
        return _error(405, f"{request.method} is not allowed on {request.path}")

    @app.errorhandler(413)
    def too_large(exc: Exception) -> Response:
        return _error(413, f"the body is larger than {MAX_BODY} bytes")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        # Never the framework's HTML page, never a traceback in the log: a JSON
        # reason, and one line (escaped by the log formatter, no request data).
        if isinstance(exc, HTTPException):
            return _error(exc.code or 500, exc.description or exc.name)
        if isinstance(exc, MALFORMED):
            why = f"the body cannot be used ({MALFORMED_WHY.get(type(exc), type(exc).__name__)})"
            if request.endpoint in ARR_ENDPOINTS:
                # Sonarr and Radarr turn a webhook off after a failed call: past the
                # token, their requests are answered 2xx, what was ignored in the body.
                log.warning("webhook (%s): ignored: %s", request.endpoint, why)
                return jsonify({"ignored": why, "marked": []})
            return _error(400, why)
        log.error("web: %s %s failed: %s: %s", request.method, request.path, type(exc).__name__, str(exc)[:300])
        return _error(500, "an unexpected error; the service log has a line about it")

    return app
