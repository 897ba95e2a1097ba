"""``graylink reconcile``: the main job, once or as the service (``--loop``)."""

from __future__ import annotations

import logging
import sys

import click

from graylink.cli.app import AppContext, display, handle_errors
from graylink.cli.report import plan_document, print_plan, summary_line
from graylink.config import Config
from graylink.errors import ConfigError, GraylinkError

log = logging.getLogger("graylink")


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


@click.command()
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
@click.option(
    "--rebase",
    is_flag=True,
    help="Move the library: the database takes this config's source and target, then everything is verified.",
)
@click.pass_obj
@handle_errors
def reconcile(
    app: AppContext,
    paths: tuple[str, ...],
    dry_run: bool,
    loop: bool,
    force: bool,
    full: bool,
    as_json: bool,
    rebase: bool,
) -> None:
    """Bring the link tree in line with the source (the main job)."""
    import json
    import os

    from graylink.cycle import CycleOptions, run_cycle
    from graylink.db import Store
    from graylink.listing import MountGone
    from graylink.lock import InstanceLock
    from graylink.status import eventful, record_reconcile

    if rebase and (loop or paths):
        raise ConfigError("--rebase verifies the whole library once: it takes neither --loop nor --path")
    config = app.config
    if loop:
        from graylink.service import run_loop

        sys.exit(run_loop(app))
    subtrees = tuple(resolve_subtree(config, p) for p in paths)
    progress = Progress() if sys.stderr.isatty() and not as_json and app.verbosity >= 0 else None
    options = CycleOptions(
        paths=subtrees, dry_run=dry_run, force=force, full=full or rebase, progress=progress, rebase=rebase
    )
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
