"""The command line: parses arguments, calls the pieces, maps errors to exit codes.

Exit codes: 0 ok; 1 the run finished but something failed (reported);
2 bad usage or bad configuration (one line on stderr, nothing changed).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from graylink import __version__
from graylink.config import Config, load_config
from graylink.db import SQLITE_ERRORS, database_failure
from graylink.errors import ConfigError, GraylinkError

log = logging.getLogger("graylink")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class AppContext:
    """What the group's options give every command; the config is loaded on demand."""

    config_path: str | None
    verbosity: int
    _config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
            from graylink.logsetup import configure_logging

            configure_logging(self._config.log, self.verbosity)
        return self._config


def setup_logging(verbosity: int) -> None:
    """Logging to stderr until the config is read (then ``[log]`` applies)."""
    from graylink.logsetup import configure_logging

    configure_logging(None, verbosity)


def fail(message: str, code: int) -> None:
    click.echo(f"graylink: {message}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Turn graylink's errors into one line and an exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except GraylinkError as exc:
            fail(str(exc), exc.exit_code)
        except SQLITE_ERRORS as exc:
            app = args[0] if args and isinstance(args[0], AppContext) else None
            where = app.config.paths.database if app is not None and app._config is not None else "the database"
            failure = database_failure(exc, where)
            if failure is None:
                raise
            fail(str(failure), failure.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except OSError as exc:
            # A filesystem refusal nobody foresaw: say what and where, in one line.
            where = f": {exc.filename!r}" if exc.filename else ""
            fail(f"{exc.strerror or exc}{where}", 1)
        except Exception as exc:
            app = args[0] if args and isinstance(args[0], AppContext) else None
            if app is not None and app.verbosity > 0:
                raise
            fail(f"unexpected error: {type(exc).__name__}: {exc} (run with -v for the details)", 1)
        return None

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="graylink")
@click.option(
    "-c",
    "--config",
    "config_path",
    metavar="FILE",
    help="Config file (default ./graylink.ini, else ~/.config/graylink/graylink.ini; env GRAYLINK_CONFIG).",
)
@click.option("-v", "--verbose", count=True, help="More output (debug).")
@click.option("-q", "--quiet", count=True, help="Less output (errors only).")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int, quiet: int) -> None:
    """graylink: a symlink tree of your cloud media library, kept in sync; Emby told only what changed."""
    verbosity = verbose - quiet
    setup_logging(verbosity)
    ctx.obj = AppContext(config_path=config_path, verbosity=verbosity)


def main() -> None:
    try:
        cli.main(prog_name="graylink", standalone_mode=True)
    except ConfigError as exc:  # raised while click resolves a lazy config
        fail(str(exc), exc.exit_code)


# ------------------------------------------------------------------ reconcile


def display(name: bytes) -> str:
    """A path for one line of human output: undecodable bytes and control characters escaped."""
    text = name.decode("utf-8", "backslashreplace")
    if any(ch < " " or ch == "\x7f" for ch in text):
        text = "".join(ch if ch >= " " and ch != "\x7f" else f"\\x{ord(ch):02x}" for ch in text)
    return text


def resolve_subtree(config: Config, given: str) -> bytes:
    """``--path`` as a subtree relative to the source: absolute in the source or the
    link tree, or relative to the source."""
    import os

    from graylink.db import normalize_rel

    raw = os.fsencode(given)
    if raw.startswith(b"/"):
        path = os.path.normpath(raw)
        for root in (config.paths.source, config.paths.target):
            base = os.fsencode(root).rstrip(b"/")
            if path == base:
                return b""
            if path.startswith(base + b"/"):
                return path[len(base) + 1 :]
        raise ConfigError(f"--path {given} is neither inside the source nor inside the target")
    try:
        return normalize_rel(raw)
    except ValueError:
        raise ConfigError(f"--path {given} leaves the source") from None


class Progress:
    """A one-line counter on a terminal, for long first scans."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, dirs: int, files: int) -> None:
        import time

        now = time.monotonic()
        if now - self.last >= 0.2:
            self.last = now
            click.echo(f"\rscanning: {dirs} folders, {files} files", err=True, nl=False)

    def done(self) -> None:
        if self.last:
            click.echo("\r\033[K", err=True, nl=False)


def plan_document(result: Any, config: Config) -> dict[str, Any]:
    from graylink.reconciler import Op

    # A first run has one action per video: decode with the codec itself
    # rather than os.fsdecode, which looks the codec up for every call.
    encoding, errors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
    prefix = config.paths.target.rstrip("/") + "/"
    actions: list[dict[str, Any]] = []
    for a in result.plan.visible():
        item: dict[str, Any] = {
            "op": a.op.value,
            "link": prefix + a.link.decode(encoding, errors),
            "target": a.target.decode(encoding, errors),
        }
        if a.detail:
            item["detail"] = a.detail
        actions.append(item)
    actions += [
        {
            "op": Op.PRUNE.value,
            "link": prefix + a.link.decode(encoding, errors),
            "target": a.target.decode(encoding, errors),
            "braked": True,
        }
        for a in result.plan.braked
    ]
    stats = result.stats
    return {
        "dry_run": result.dry_run,
        "counts": result.plan.counts(),
        "actions": actions,
        "stats": {
            "dirs_statted": stats.dirs_statted,
            "dirs_listed": stats.dirs_listed,
            "files_indexed": stats.files_indexed,
            "duration_s": stats.duration_s,
        },
        "failures": result.failures,
        "emby": result.emby.as_json() if result.emby is not None else None,
        "mount": _health_json(result.health),
        "drive": _drive_json(result.drive),
    }


def _health_json(health: Any) -> dict[str, Any] | None:
    if health is None:
        return None
    return {"healthy": health.ok, "failed_check": health.failed_check or None, "message": health.message or None}


def _drive_json(poll: Any) -> dict[str, Any] | None:
    if poll is None:
        return None
    return {"activities": poll.activities, "marks": poll.marks, "error": poll.error}


def print_plan(result: Any) -> None:
    symbols = {"create": "+", "repair": "~", "prune": "-", "conflict": "!"}
    for action in result.plan.visible():
        line = f"{symbols[action.op.value]} {display(action.link)}"
        if action.op.value in ("create", "repair"):
            line += f" -> {display(action.target)}"
        if action.detail:
            line += f"  ({action.detail})"
        click.echo(line)
    for action in result.plan.braked:
        click.echo(f"- {display(action.link)}  (withheld: {result.plan.brake_reason.split(';')[0]})")


def summary_line(result: Any) -> str:
    counts = result.plan.counts()
    verb = "would be" if result.dry_run else ""
    parts = [
        f"{counts['create']} created",
        f"{counts['repair']} repaired",
        f"{counts['prune']} pruned",
        f"{counts['conflict']} conflicts",
    ]
    if counts["braked"]:
        parts.append(f"{counts['braked']} prunes withheld")
    stats = result.stats
    head = "dry run: " if result.dry_run else ""
    text = f"{head}{', '.join(parts)}{' (' + verb.strip() + ')' if verb else ''}"
    return (
        f"{text} in {stats.duration_s:.2f}s; {stats.dirs_statted} folders checked, "
        f"{stats.dirs_listed} listed, {stats.files_indexed} files indexed"
    )


@cli.command()
@click.option(
    "--path",
    "paths",
    multiple=True,
    metavar="P",
    help="Reconcile only this subtree (absolute, or relative to the source). Repeatable.",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the plan (+ create, ~ repair, - prune, ! conflict); change nothing."
)
@click.option("--loop", is_flag=True, help="Run as a service: walk, poll and reconcile on a schedule.")
@click.option("--force", is_flag=True, help="Prune even when the prune brake would withhold it.")
@click.option("--full", is_flag=True, help="Verify everything now (list every folder, check every link).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (the plan with counts) on stdout.")
@click.pass_obj
@handle_errors
def reconcile(
    app: AppContext, paths: tuple[str, ...], dry_run: bool, loop: bool, force: bool, full: bool, as_json: bool
) -> None:
    """Bring the link tree in line with the source (the main job)."""
    import json
    import os

    from graylink.cycle import CycleOptions, run_cycle
    from graylink.db import Store
    from graylink.listing import MountGone
    from graylink.lock import InstanceLock
    from graylink.status import eventful, record_reconcile

    config = app.config
    if loop:
        from graylink.service import run_loop

        sys.exit(run_loop(app))
    subtrees = tuple(resolve_subtree(config, p) for p in paths)
    progress = Progress() if sys.stderr.isatty() and not as_json and app.verbosity >= 0 else None
    options = CycleOptions(paths=subtrees, dry_run=dry_run, force=force, full=full, progress=progress)
    try:
        if dry_run:
            db_exists = os.path.exists(config.paths.database)
            store = Store(config.paths.database, readonly=True) if db_exists else None
            try:
                result = run_cycle(config, store, options)
            finally:
                if store is not None:
                    store.close()
        else:
            with InstanceLock(config.paths.database), Store(config.paths.database) as store:
                result = run_cycle(config, store, options)
                # A no-op run writes nothing at all (the service records its every run).
                if eventful(result):
                    record_reconcile(store, result, "cli")
    except MountGone as exc:
        raise GraylinkError(f"the source is not readable ({exc.strerror}); nothing was pruned") from None
    finally:
        if progress is not None:
            progress.done()
    if as_json:
        # Compact: the C encoder, fast even for a first run with many thousands of actions.
        click.echo(json.dumps(plan_document(result, config), separators=(",", ":")))
    else:
        if dry_run:
            print_plan(result)
        else:
            for action in result.plan.visible():
                if action.op.value == "conflict":
                    log.error("conflict at %s: %s", display(action.link), action.detail)
        click.echo(summary_line(result))
    sys.exit(result.exit_code)


# ------------------------------------------------------------------- status


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@click.pass_obj
@handle_errors
def status(app: AppContext, as_json: bool) -> None:
    """Index size, dirty marks, last runs, pending refreshes, mount health (read-only)."""
    import json
    import os

    from graylink.db import Store
    from graylink.status import collect_status, render_status

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


# ------------------------------------------------------------------- doctor


@cli.command()
@click.pass_obj
@handle_errors
def doctor(app: AppContext) -> None:
    """Check config, paths, database, filesystem, mount, Emby and Drive; exit 1 on any failure."""
    from graylink.doctor import failed, render, run_checks

    checks = run_checks(app.config_path)
    for line in render(checks):
        click.echo(line)
    bad = [c for c in checks if failed(c)]
    if bad:
        click.echo(f"{len(bad)} problem(s) found", err=True)
        sys.exit(1)


# ----------------------------------------------------------------------- db


@cli.group()
def db() -> None:
    """Back up or restore the index database."""


@db.command("backup")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@click.pass_obj
@handle_errors
def db_backup(app: AppContext, file: str, force: bool) -> None:
    """Write a consistent copy of the database to FILE (safe while the service runs)."""
    from graylink.backup import backup_database

    info = backup_database(app.config.paths.database, file, force=force)
    click.echo(f"backed up to {file}: {info.dirs} folders, {info.files} files, {info.links} links")


@db.command("restore")
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_obj
@handle_errors
def db_restore(app: AppContext, file: str) -> None:
    """Replace the database with FILE; the next reconcile re-verifies everything against it."""
    from graylink.backup import restore_database
    from graylink.lock import InstanceLock

    database = app.config.paths.database
    with InstanceLock(database):
        info, kept = restore_database(database, file)
    log.info("restored %s from %s", database, file)
    click.echo(f"restored {database} from {file}: {info.dirs} folders, {info.files} files, {info.links} links")
    if kept:
        click.echo(f"the previous database is kept as {kept}")
    click.echo("the next reconcile verifies everything and brings the link tree in line")


# ------------------------------------------------------------------- drive


@cli.group()
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
    from graylink.drive_auth import run_auth

    try:
        timeout = parse_duration(timeout_text)
    except ValueError as exc:
        raise ConfigError(f"--timeout: {exc}") from None
    path = run_auth(app.config, port=port, timeout=timeout, echo=click.echo, prompt=sys.stdin)
    click.echo(f"Drive token stored in {path}; the feed now uses it.")


# ------------------------------------------------------------------- snapshot


@cli.command()
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
    from graylink.db import Store
    from graylink.snapshot import default_snapshot_path, write_snapshot

    config = app.config
    # Read-only, so it runs beside a live 'graylink reconcile --loop'.
    with Store(config.paths.database, readonly=True) as store:
        stats = write_snapshot(config, store, output or default_snapshot_path(config))
    click.echo(
        f"{stats.path}: {stats.folders} folders, {stats.files} files "
        f"({stats.videos} videos, {stats.linked} linked), {stats.bytes_written} bytes"
    )
