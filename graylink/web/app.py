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
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from flask import Flask, Response, g, jsonify, render_template, request, send_file
from werkzeug.exceptions import HTTPException

from graylink.config import Config
from graylink.errors import GraylinkError
from graylink.report.snapshot import render_snapshot
from graylink.store.db import Store
from graylink.web import guard, hooks, i18n, manage
from graylink.web.bounded import MAX_BODY
from graylink.web.libraries import LibraryError, Views, views_of
from graylink.web.page import REFRESH_S, page_model

log = logging.getLogger(__name__)

# Webhook routes (endpoint → origin): past the token, every request is answered 2xx.
WEBHOOK_ENDPOINTS = {"sonarr": "sonarr", "radarr": "radarr", "api_webhook": hooks.GENERIC_ORIGIN}
# A body nested past Python's recursion limit, or text that cannot be a path
# (a lone surrogate such as "\ud800" cannot be encoded): the sender's fault.
MALFORMED = (RecursionError, UnicodeError)
MALFORMED_WHY = {RecursionError: "nested too deeply", UnicodeEncodeError: "a string that is not text"}


@dataclass
class WebContext:
    """What the app needs from the service: the live config (SIGHUP swaps it) and a way to wake the loop.

    A service of several libraries also gives every library's live view and a
    way to wake one library's loop; without them the libraries are the
    config's own (one, for a service of one)."""

    config: Callable[[], Config]
    wake: Callable[[], None]
    views: Callable[[], list[Config]] | None = None
    wake_library: Callable[[str], None] | None = None
    whole: Callable[[], Config] | None = None  # the whole config (the configuration page shows every section)

    def libraries(self) -> Views:
        return views_of(self.views() if self.views is not None else self.config().each_library())

    def wake_for(self, names: tuple[str, ...]) -> None:
        if self.wake_library is None:
            self.wake()
            return
        for name in names:
            self.wake_library(name)

    def whole_config(self) -> Config:
        return (self.whole or self.config)()


def _error(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response


def create_app(ctx: WebContext) -> Flask:
    app = Flask("graylink.web", template_folder=os.path.join(os.path.dirname(__file__), "templates"))
    # Every template escapes what it shows: Flask escapes only *.html by name, and these are
    # *.html.j2, holding file names from the source (a name may hold "<script>").
    app.jinja_options = {**app.jinja_options, "autoescape": True}
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    _languages(app)

    @contextmanager
    def store(readonly: bool = True, view: Config | None = None) -> Iterator[Store]:
        with Store((view or ctx.config()).paths.database, readonly=readonly) as opened:
            yield opened

    def writable(view: Config) -> AbstractContextManager[Store]:
        return store(readonly=False, view=view)

    def shown_library() -> tuple[Views, Config | None]:
        """The libraries, and the one ``?library=`` names (the only one; None: the overview of several)."""
        views = ctx.libraries()
        return views, views.page(request.args.get("library") or None)

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

    @app.before_request
    def _language() -> None:
        # After the guard: a refused request never gets this far.
        g.words = i18n.words(i18n.negotiate(list(request.accept_languages)))

    @app.after_request
    def _vary(response: Response) -> Response:
        response.vary.add("Accept-Language")  # a cache keeps the English and the Chinese page apart
        return response

    def status_doc(view: Config) -> dict[str, Any]:
        from graylink.report.status import collect_status

        with store(view=view) as opened:
            return collect_status(view, opened)

    @app.context_processor
    def _switcher() -> dict[str, Any]:
        # Every page of a service of several libraries: links to each (plain links: no JavaScript needed).
        if ctx.views is None and not isinstance(ctx.config(), Config):
            return {"switcher": [], "lib_q": ""}  # a template rendered without a service's config (tests)
        views = ctx.libraries()
        if not views.several:
            return {"switcher": [], "lib_q": ""}
        current = request.args.get("library") or ""
        here = request.path.lstrip("/") or "./"
        links = [(name, f"{here}?library={quote(name)}", name == current) for name in views.names]
        return {"switcher": links, "lib_q": f"?library={quote(current)}" if current else ""}

    @app.get("/")
    def index() -> str:
        from graylink.notify.queue import configured
        from graylink.store import history
        from graylink.web.actions import brake_state
        from graylink.web.charts import day_charts

        views, view = shown_library()
        if view is None:
            return overview(views)
        doc = status_doc(view)
        servers = configured(view)
        with store(view=view) as opened:
            cycles, changes = history.recent_cycles(opened), history.recent_changes(opened)
            brake = brake_state(opened)
            charts = day_charts(opened, view.drive.enabled, bool(servers), g.words)
        # /snapshot renders the index on request, so the link is always there.
        page = page_model(doc, cycles, changes, True, g.words)
        body = {"library": view.name} if views.several else {}  # what the page's actions send
        return render_template(
            "status.html.j2",
            page=page,
            brake=brake,
            servers=servers,
            charts=charts,
            words=g.words,
            name=view.name,
            body=body,
        )

    def overview(views: Views) -> str:
        pages = [(view.name, page_model(status_doc(view), [], [], False, g.words)) for view in views.all]
        hooks_doc = service_webhooks(views).get("webhooks")
        return render_template(
            "overview.html.j2", pages=pages, words=g.words, refresh_s=REFRESH_S, service_hooks=hooks_doc
        )

    @app.get("/api/status")
    def api_status() -> Response:
        views, view = shown_library()
        if view is not None:
            return jsonify(status_doc(view))
        # Several libraries: the shape of ``status --json`` for several, each library's document under its name.
        docs = {each.name: status_doc(each) for each in views.all}
        doc: dict[str, Any] = {"config": views.all[0].file or None, "libraries": docs}
        doc.update(service_webhooks(views))
        return jsonify(doc)

    def service_webhooks(views: Views) -> dict[str, Any]:
        """Several libraries: the webhooks no library held, the service's (graylink.store.webhooks)."""
        from graylink.report.status import service_webhooks as found

        return found(list(views.all))

    @app.get("/metrics")
    def metrics() -> Response:
        from graylink.store import history
        from graylink.web.metrics import LibraryStatus, render_libraries

        views = ctx.libraries()
        found = []
        for view in views.all:
            doc = status_doc(view)
            with store(view=view) as opened:
                totals = history.totals(opened)
            found.append(LibraryStatus(view.name if views.several else None, doc, totals))
        service = service_webhooks(views).get("webhooks")
        ignored = service.get("ignored") if service else None  # an unreadable count: no sample
        body, content_type = render_libraries(found, ignored if isinstance(ignored, int) else None)
        return Response(body, content_type=content_type)

    @app.get("/snapshot")
    def snapshot() -> Response:
        # Rendered from the index now, never a file on disk: the one at
        # [snapshot] path is a day old by design (rewritten each full verify),
        # and one a 'graylink snapshot' wrote by hand is as old as that run.
        # A temporary file keeps memory flat on a large index (~100 bytes a file).
        views, view = shown_library()
        shown = view or views.all[0]
        page = tempfile.TemporaryFile()  # noqa: SIM115 (send_file closes it)
        try:
            with store(view=shown) as opened:
                render_snapshot(shown, opened, page)
            page.seek(0)
        except BaseException:
            page.close()
            raise
        return send_file(page, mimetype="text/html", max_age=0)

    def answer(result: hooks.Answer) -> Response:
        if result.marked:
            ctx.wake_for(result.libraries)
        response = jsonify(result.body)
        response.status_code = result.status
        return response

    @app.post("/api/reconcile")
    def api_reconcile() -> Response:
        return answer(hooks.paths_request(ctx.libraries(), request.get_json(silent=True), writable, "api"))

    @app.route("/api/webhook", methods=["POST", "PUT"])
    def api_webhook() -> Response:
        return answer(hooks.generic_webhook(ctx.libraries(), request.get_json(silent=True), writable))

    # The webhook routes answer 2xx to every request that passed auth (graylink.web.hooks);
    # PUT too, a method the *arr's webhook settings offer.
    @app.route("/api/webhook/sonarr", methods=["POST", "PUT"])
    def sonarr() -> Response:
        return answer(hooks.arr_webhook(ctx.libraries(), "sonarr", request.get_data(cache=False), writable))

    @app.route("/api/webhook/radarr", methods=["POST", "PUT"])
    def radarr() -> Response:
        return answer(hooks.arr_webhook(ctx.libraries(), "radarr", request.get_data(cache=False), writable))

    manage.register(app, ctx, store)

    @app.errorhandler(LibraryError)
    def no_library(exc: LibraryError) -> Response:
        return _error(404 if request.method == "GET" else 400, str(exc))

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
            origin = WEBHOOK_ENDPOINTS.get(str(request.endpoint))
            if origin is not None:
                # Sonarr and Radarr turn a webhook off after a failed call: past the
                # token, webhook requests are answered 2xx, what was ignored in the body.
                views = ctx.libraries()
                return answer(hooks.ignore(writable, origin, "", why, views.all[0], service=views.several))
            return _error(400, why)
        log.error("web: %s %s failed: %s: %s", request.method, request.path, type(exc).__name__, str(exc)[:300])
        return _error(500, "an unexpected error; the service log has a line about it")

    return app


def _languages(app: Flask) -> None:
    """Jinja2's i18n extension, new-style, reading the request's catalog (graylink.web.i18n)."""
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        lambda message: g.words.catalog.gettext(message),
        lambda singular, plural, n: g.words.catalog.ngettext(singular, plural, n),
        newstyle=True,
    )
