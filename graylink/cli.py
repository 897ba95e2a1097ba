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
        return self._config


def setup_logging(verbosity: int) -> None:
    level = logging.DEBUG if verbosity > 0 else logging.ERROR if verbosity < 0 else logging.INFO
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level)
    # Library chatter (HTTP connection pools, Google discovery) stays out of INFO.
    for noisy in ("urllib3", "googleapiclient", "google", "peewee", "schedule"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbosity <= 0 else logging.DEBUG)


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
        except KeyboardInterrupt:
            fail("interrupted", 130)
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
