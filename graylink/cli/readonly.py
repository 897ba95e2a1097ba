"""The read-only commands: ``status``, ``snapshot``, ``doctor``."""

from __future__ import annotations

import logging
import sys

import click

from graylink.cli.app import AppContext, handle_errors, library_option

log = logging.getLogger(__name__)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@library_option
@click.pass_obj
@handle_errors
def status(app: AppContext, as_json: bool, library: str | None) -> None:
    """Index size, dirty marks, last runs, pending refreshes, mount health (read-only)."""
    import json

    from graylink.report.status import read_status, service_webhooks
    from graylink.report.status_render import render_status

    views = app.libraries(library)
    docs = {view.name: read_status(view) for view in views}
    for doc in docs.values():
        if doc.get("library_mismatch"):  # on stderr too: a script reading --json may not look for it
            log.warning("%s", doc["library_mismatch"])
    if len(docs) == 1:
        [doc] = docs.values()
        click.echo(json.dumps(doc, indent=2) if as_json else render_status(doc))
    elif as_json:
        # Several libraries: one document, each library's status under its name.
        doc = {"config": app.config.file or None, "libraries": docs, **service_webhooks(views)}
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo("\n\n".join(f"library {name}\n{render_status(doc)}" for name, doc in docs.items()))
        hooks = service_webhooks(views).get("webhooks")
        if isinstance(hooks, dict) and "ignored" in hooks:  # the service's own, not a library's
            click.echo(f"\nservice\nwebhooks in no library: {int(hooks['ignored'])} ignored")
    # Exit 1 when a source mount is unhealthy, so `status` serves as a health check.
    mounts = [doc.get("mount") for doc in docs.values()]
    sys.exit(1 if any(isinstance(m, dict) and m.get("healthy") is False for m in mounts) else 0)


@click.command()
@library_option
@click.pass_obj
@handle_errors
def doctor(app: AppContext, library: str | None) -> None:
    """Check config, paths, database, filesystem, mount, Emby and Drive; exit 1 on any failure."""
    from graylink.report.doctor import failed, render, run_checks

    checks = run_checks(app.config_path, library)
    for line in render(checks):
        click.echo(line)
    bad = [c for c in checks if failed(c)]
    if bad:
        click.echo(f"{len(bad)} problem(s) found", err=True)
        sys.exit(1)


@click.command()
@click.option(
    "-o",
    "--output",
    metavar="FILE.html",
    help="Where to write the page (default: [snapshot] path, else graylink-snapshot.html beside the database).",
)
@library_option
@click.pass_obj
@handle_errors
def snapshot(app: AppContext, output: str | None, library: str | None) -> None:
    """Write a single-file HTML page of the index, to browse and search it offline."""
    from graylink.report.snapshot import default_snapshot_path, write_snapshot
    from graylink.store.db import Store

    views = [app.one_library(library, "snapshot -o")] if output else app.libraries(library)
    for config in views:
        # Read-only, so it runs beside a live 'graylink reconcile --loop'.
        with Store(config.paths.database, readonly=True) as store:
            # Each library its own page (report.snapshot.default_snapshot_path).
            where = output or default_snapshot_path(config)
            stats = write_snapshot(config, store, where)
        app.say(
            f"{stats.path}: {stats.folders} folders, {stats.files} files "
            f"({stats.videos} linkable, {stats.linked} linked), {stats.bytes_written} bytes"
        )
