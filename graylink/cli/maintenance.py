"""The ``db`` (backup, restore) and ``drive`` (auth) command groups."""

from __future__ import annotations

import logging
import sys

import click

from graylink.cli.app import AppContext, handle_errors, library_option
from graylink.errors import ConfigError

log = logging.getLogger("graylink")


@click.group()
def db() -> None:
    """Back up or restore the index database."""


@db.command("backup")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@library_option
@click.pass_obj
@handle_errors
def db_backup(app: AppContext, file: str, force: bool, library: str | None) -> None:
    """Write a consistent copy of the database to FILE (safe while the service runs)."""
    from graylink.store.backup import backup_database

    config = app.one_library(library, "db backup")
    info = backup_database(config.paths.database, file, force=force)
    app.say(f"backed up to {file}: {info.dirs} folders, {info.files} files, {info.links} links")


@db.command("restore")
@click.argument("file", type=click.Path(dir_okay=False))
@library_option
@click.pass_obj
@handle_errors
def db_restore(app: AppContext, file: str, library: str | None) -> None:
    """Replace the database with FILE; the next reconcile re-verifies everything against it."""
    from graylink.reconcile.preflight import check_database
    from graylink.store.backup import check_restore_args, restore_database
    from graylink.store.lock import InstanceLock

    config = app.one_library(library, "db restore")
    database = config.paths.database
    # Refused before the lock file exists: a bad restore leaves nothing behind.
    check_restore_args(database, file)
    check_database(config)
    with InstanceLock(database):
        info, kept = restore_database(database, file)
    log.info("restored %s from %s", database, file)
    app.say(f"restored {database} from {file}: {info.dirs} folders, {info.files} files, {info.links} links")
    if kept:
        app.say(f"the previous database is kept as {kept}")
    app.say("the next reconcile verifies everything and brings the link tree in line")


@click.group()
def drive() -> None:
    """The Google Drive Activity feed."""


@drive.command("auth")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Loopback port for Google's answer (0: any free port; fix one to forward it with ssh -L).",
)
@click.option("--timeout", "timeout_text", default="10m", show_default=True, help="How long to wait for the answer.")
@click.pass_obj
@handle_errors
def drive_auth(app: AppContext, port: int, timeout_text: str) -> None:
    """Grant graylink the Drive Activity scope with the rclone remote's OAuth client.

    Prints a consent URL; the answer comes back to a loopback port, or paste the
    address the browser ends on (for a browser on another machine). The token is
    stored in [drive] token_file, readable by you only.
    """
    from graylink.config import parse_duration
    from graylink.drive.auth import run_auth

    try:
        timeout = parse_duration(timeout_text)
    except ValueError as exc:
        raise ConfigError(f"--timeout: {exc}") from None
    path = run_auth(app.config, port=port, timeout=timeout, echo=click.echo, prompt=sys.stdin)
    click.echo(f"Drive token stored in {path}; the feed now uses it.")
