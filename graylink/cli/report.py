"""What ``reconcile`` prints: the plan, the summary line, the JSON document."""

from __future__ import annotations

import sys
from typing import Any

import click

from graylink.cli.app import display
from graylink.config import Config


def plan_document(result: Any, config: Config) -> dict[str, Any]:
    from graylink.links.planner import Op

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
    failed = [
        {
            "op": a.op.value,
            "link": prefix + a.link.decode(encoding, errors),
            "target": a.target.decode(encoding, errors),
            "reason": reason,
        }
        for a, reason in result.failed_actions()
    ]
    stats = result.stats
    return {
        "dry_run": result.dry_run,
        "counts": result.counts(),
        "actions": actions,
        "failed": failed,
        "stats": {
            "dirs_statted": stats.dirs_statted,
            "dirs_listed": stats.dirs_listed,
            "files_indexed": stats.files_indexed,
            "duration_s": stats.duration_s,
            "rows_written": stats.rows_written,
        },
        "failures": result.failures,
        "emby": result.emby.as_json() if result.emby is not None else None,
        "plex": result.plex.as_json() if result.plex is not None else None,
        "servers": {name: delivery.as_json() for name, delivery in result.media.items()},
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
    from graylink.reconcile.outcome import counts_text

    verb = "would be" if result.dry_run else ""
    stats = result.stats
    head = "dry run: " if result.dry_run else ""
    text = f"{head}{counts_text(result.counts())}{' (' + verb.strip() + ')' if verb else ''}"
    return (
        f"{text} in {stats.duration_s:.2f}s; {stats.dirs_statted} folders checked, "
        f"{stats.dirs_listed} listed, {stats.files_indexed} files indexed"
    )
