"""The command line: the ``graylink`` group and its commands, one module per concern.

``app`` holds what every command shares (context, errors → exit codes);
``reconcile`` and ``report`` the main job and its output; ``readonly`` the
read-only commands (status, snapshot, doctor); ``maintenance`` the ``db`` and
``drive`` groups; ``alerts`` the test message; ``init`` the guided setup that writes a config.

May import every package: it is the top.
"""

from __future__ import annotations

from typing import Any

import click

from graylink import __version__
from graylink.cli.alerts import alerts
from graylink.cli.app import INTERRUPTED, AppContext, fail, setup_logging
from graylink.cli.init import init
from graylink.cli.maintenance import db, drive
from graylink.cli.readonly import doctor, snapshot, status
from graylink.cli.reconcile import reconcile
from graylink.errors import ConfigError

__all__ = ["AppContext", "cli", "main"]


class _Group(click.Group):
    """Ctrl-C anywhere in a command is exit 130 with one line, as in each command's own
    handler (click would say "Aborted!" and exit 1): reading the arguments, the config, the lazy imports."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except KeyboardInterrupt:
            fail("interrupted", INTERRUPTED)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            fail("interrupted", INTERRUPTED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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


for command in (init, reconcile, status, doctor, db, drive, snapshot, alerts):
    cli.add_command(command)


def main() -> None:
    try:
        cli.main(prog_name="graylink", standalone_mode=True)
    except ConfigError as exc:  # raised while click resolves a lazy config
        fail(str(exc), exc.exit_code)
