"""``graylink reconcile``: the main job, once or as the service (``--loop``)."""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import click

from graylink.cli.app import AppContext, display, handle_errors, library_option
from graylink.cli.pathargs import libraries_of, scopes_of
from graylink.cli.report import plan_document, print_plan, summary_line
from graylink.errors import ConfigError, GraylinkError
from graylink.system.progress import QUIET, Meter, log_every

if TYPE_CHECKING:
    from graylink.config import Config
    from graylink.reconcile.cycle import CycleOptions
    from graylink.store.scopes import Scope

log = logging.getLogger("graylink")


# What --loop cannot honour, and what to run instead.
LOOP_REFUSES = {
    "--dry-run": "the service applies what it plans; for a plan, run 'graylink reconcile --dry-run'",
    "--path": "the service reconciles the whole tree; for one subtree, run 'graylink reconcile --path P'",
    "--json": "the service prints no plan; 'graylink status --json' shows what it did",
    "--force": "the service keeps the prune brake; run 'graylink reconcile --force' once, then start the loop",
}


def refuse_with_loop(*, dry_run: bool, paths: bool, as_json: bool, force: bool) -> None:
    """``--loop`` with an option it cannot honour is a usage error (exit 2), not ignored."""
    given = {"--dry-run": dry_run, "--path": paths, "--json": as_json, "--force": force}
    for option, reason in LOOP_REFUSES.items():
        if given[option]:
            raise ConfigError(f"--loop cannot be combined with {option}: {reason}")


@click.command()
@click.option(
    "--path",
    "paths",
    multiple=True,
    metavar="P",
    help="Reconcile only this folder's subtree, or this file's folder (relative to the source, "
    "or absolute in the source or the link tree). Repeatable.",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the plan (+ create, ~ repair, - prune, ! conflict); change nothing."
)
@click.option("--loop", is_flag=True, help="Run as a service: walk, poll and reconcile on a schedule.")
@click.option("--force", is_flag=True, help="Prune even when the prune brake would withhold it.")
@click.option(
    "--full",
    is_flag=True,
    help="Verify everything now (list every folder, check every link); with --loop, in its first cycle.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (the plan with counts) on stdout.")
@click.option(
    "--rebase",
    is_flag=True,
    help="Move the library: the database takes this config's source and target, then everything is verified.",
)
@library_option
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
    library: str | None,
) -> None:
    """Bring the link tree in line with the source (the main job)."""
    import json
    import os

    from graylink.reconcile.cycle import CycleOptions
    from graylink.reconcile.preflight import check_paths, make_target

    if rebase and (loop or paths):
        raise ConfigError("--rebase verifies the whole library once: it takes neither --loop nor --path")
    if loop:
        refuse_with_loop(dry_run=dry_run, paths=bool(paths), as_json=as_json, force=force)
    progress_every = log_every()  # a bad GRAYLINK_PROGRESS_EVERY is refused before anything is made
    if any(not p.strip() for p in paths):
        # An empty path would read as the source's root: the whole library, not what was meant.
        raise ConfigError("--path is empty: name a folder or file of the source; to reconcile everything, leave it out")
    views = libraries_of(app.libraries(library), paths)

    def label(view: Config) -> str:
        return f"[{view.name}] " if len(views) > 1 else ""

    # Everything that can be refused is refused now, for every library, before a
    # lock file or a database exists: a bad run leaves nothing behind.
    subtrees = {view.name: scopes_of(view, paths, refresh=not dry_run) for view in views}
    for view in views:
        check_paths(view, source=not os.path.isfile(view.paths.database), write=not dry_run)
    if not dry_run and not loop:
        # Some roots pass every check and still take no folder (/proc, /sys answer
        # access() as writable to root): make each link tree's root now, so its
        # refusal too comes before a lock file or a database. (The service makes
        # it after its own checks, the web port's among them.)
        for view in views:
            make_target(view)
    if loop:
        from graylink.service.many import run_service

        sys.exit(run_service(app, [view.name for view in views], full=full))
    options = CycleOptions(dry_run=dry_run, force=force, full=full or rebase, rebase=rebase)
    results = {
        view.name: _run_one(app, view, subtrees[view.name], options, _meter(app, as_json, progress_every, label(view)))
        for view in views
    }
    if as_json:
        # Compact: the C encoder, fast even for a first run with many thousands of actions.
        docs = {view.name: plan_document(results[view.name], view) for view in views}
        doc = next(iter(docs.values())) if len(docs) == 1 else {"libraries": docs}
        click.echo(json.dumps(doc, separators=(",", ":")))
    else:
        for view in views:
            result = results[view.name]
            if dry_run:
                print_plan(result)
            else:
                for action in result.plan.actions:
                    if action.op == "conflict":  # a StrEnum: compared as the string, in C
                        log.error("conflict at %s: %s", display(action.link), action.detail)
            if app.verbosity >= 0 or result.exit_code:
                # With -q the summary is printed only when the run needs attention.
                click.echo(label(view) + summary_line(result))
    sys.exit(max(result.exit_code for result in results.values()))


def _meter(app: AppContext, as_json: bool, every: float, label: str) -> Meter:
    """A live line on a terminal; off one (the journal, ``docker logs``, a pipe), an INFO line
    every ``every`` seconds of a long run; with ``-q``, nothing. ``-v`` logs every step itself,
    so its progress is INFO lines too (a live line would be torn by the log)."""
    if app.verbosity < 0:
        return QUIET
    if sys.stderr.isatty() and not as_json and app.verbosity == 0:
        return Meter(live=sys.stderr, label=label)
    return Meter(every=every, label=label)


def _run_one(app: AppContext, config: Config, subtrees: tuple[Scope, ...], flags: CycleOptions, meter: Meter) -> Any:
    """One library's run, under its own lock and on its own database."""
    import os

    from graylink.reconcile.cycle import run_cycle
    from graylink.report.status import record_reconcile
    from graylink.source.listing import MountGone
    from graylink.store.db import Store
    from graylink.store.lock import InstanceLock

    options = replace(flags, paths=subtrees, progress=meter)
    try:
        if options.dry_run:
            db_exists = os.path.exists(config.paths.database)
            store = Store(config.paths.database, readonly=True) if db_exists else None
            try:
                return run_cycle(config, store, options)
            finally:
                if store is not None:
                    store.close()
        with InstanceLock(config.paths.database), Store(config.paths.database) as store:
            result = run_cycle(config, store, options)
            # Every run, no-op ones too: "last reconcile" in status is the latest run.
            record_reconcile(store, result, "cli")
            return result
    except MountGone as exc:
        raise GraylinkError(f"the source is not readable ({exc.strerror}); nothing was pruned") from None
    finally:
        meter.close()
