"""The read-only commands: ``status``, ``snapshot``, ``doctor``."""

from __future__ import annotations

import sys

import click

from graylink.cli.app import AppContext, handle_errors


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@click.pass_obj
@handle_errors
def status(app: AppContext, as_json: bool) -> None:
    """Index size, dirty marks, last runs, pending refreshes, mount health (read-only)."""
    import json
    import os

    from graylink.report.status import collect_status
    from graylink.report.status_render import render_status
    from graylink.store.db import Store

    config = app.config
    if os.path.exists(config.paths.database):
        with Store(config.paths.database, readonly=True) as store:
            doc = collect_status(config, store)
    else:
        doc = collect_status(config, None)
    click.echo(json.dumps(doc, indent=2) if as_json else render_status(doc))
    # Exit 1 when the source mount is unhealthy, so `status` serves as a health check.
    mount = doc.get("mount")
    sys.exit(1 if isinstance(mount, dict) and mount.get("healthy") is False else 0)


@click.command()
@click.pass_obj
@handle_errors
def doctor(app: AppContext) -> None:
    """Check config, paths, database, filesystem, mount, Emby and Drive; exit 1 on any failure."""
    from graylink.report.doctor import failed, render, run_checks

    checks = run_checks(app.config_path)
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
@click.pass_obj
@handle_errors
def snapshot(app: AppContext, output: str | None) -> None:
    """Write a single-file HTML page of the index, to browse and search it offline."""
    from graylink.report.snapshot import default_snapshot_path, write_snapshot
    from graylink.store.db import Store

    config = app.config
    # Read-only, so it runs beside a live 'graylink reconcile --loop'.
    with Store(config.paths.database, readonly=True) as store:
        stats = write_snapshot(config, store, output or default_snapshot_path(config))
    app.say(
        f"{stats.path}: {stats.folders} folders, {stats.files} files "
        f"({stats.videos} videos, {stats.linked} linked), {stats.bytes_written} bytes"
    )
