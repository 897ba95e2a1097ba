"""What a reconcile cycle is asked to do, and what it reports back (values only)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from graylink.links.apply import STOPPED_ON_REQUEST, ApplyResult
from graylink.links.planner import Action, Op, Plan
from graylink.store.scopes import Scope
from graylink.system.progress import QUIET, Meter
from graylink.triggers.mount import Health
from graylink.words import count, plural

if TYPE_CHECKING:  # the notifiers (requests) and the Drive feed load only when configured
    from graylink.drive.feed import DrivePollResult
    from graylink.notify.queue import DeliveryResult


@dataclass(frozen=True)
class CycleOptions:
    # What ``--path`` named, relative to the source (a folder's subtree, or a
    # file's folder alone); empty = walk, and everything dirty.
    paths: tuple[Scope, ...] = ()
    dry_run: bool = False
    force: bool = False
    # A person saw this many withheld prunes and released the brake for them (the web face):
    # a plan with at most this many prunes passes the brake; one with more is still held.
    prune_allowance: int = 0
    full: bool = False  # verify everything now
    # Where each phase reports how far it is: a terminal's live line, INFO lines, or nothing.
    progress: Meter = QUIET
    remount: bool = True  # run [mount] remount_command when the mount is down (the loop paces it itself)
    # Asked between directories and between actions (the service's SIGTERM):
    # true stops the cycle there, with what is done committed and the marks kept.
    should_stop: Callable[[], bool] | None = None
    # False: reconcile only what is already marked (the service, after the Drive
    # feed or the mount check marked something), without walking the source.
    walk: bool = True
    # False: do not poll the Drive feed first (the service polls it on its own schedule).
    drive: bool = True
    # True: the database may belong to another source or target; it moves to
    # this config's (``reconcile --rebase``), with a full verification.
    rebase: bool = False
    # True: run by the service loop, which tells a mount failure once per drop
    # and reason (then a reminder every half hour), not every cycle.
    in_loop: bool = False


@dataclass
class CycleStats:
    dirs_statted: int = 0
    dirs_listed: int = 0
    files_indexed: int = 0
    duration_s: float = 0.0
    # Rows the cycle inserted, changed or deleted in the database (a no-change
    # cycle writes none; the run's own record, written after it, is not counted).
    rows_written: int = 0


@dataclass
class CycleResult:
    plan: Plan
    stats: CycleStats
    dry_run: bool
    full: bool = False
    failures: list[str] = field(default_factory=list)
    stopped: str = ""
    applied: ApplyResult | None = None
    health: Health | None = None  # the mount's health when the cycle ended
    media: dict[str, DeliveryResult] = field(default_factory=dict)  # by server (emby, plex); empty: none told
    drive: DrivePollResult | None = None  # the Drive feed's poll, when it ran

    @property
    def emby(self) -> DeliveryResult | None:
        return self.media.get("emby")

    @property
    def plex(self) -> DeliveryResult | None:
        return self.media.get("plex")

    @property
    def mount_healthy(self) -> bool:
        return self.health is None or self.health.ok

    @property
    def held_by(self) -> str:
        """The mount check that kept the cycle from starting ("" when none did)."""
        if self.health is None or self.health.ok or self.applied is not None or self.dry_run or self.plan.actions:
            return ""
        return self.health.failed_check

    def counts(self) -> dict[str, int]:
        """What the run did: links created / repaired / pruned that are so on disk now,
        conflicts met, prunes withheld, the actions that failed (or that a stop on an error
        left undone), and ``not_tried``: those a stop on request left for the next run.
        A dry run counts what it would do."""
        counts = self.plan.counts()
        counts["failed"] = 0
        counts["not_tried"] = 0
        if self.applied is None:
            return counts if self.dry_run else {**counts, "create": 0, "repair": 0, "prune": 0}
        done = [action.op for action in self.applied.done]
        for op in (Op.CREATE, Op.REPAIR, Op.PRUNE):
            counts[op.value] = done.count(op)
        # A stop on request failed nothing: what it left is done by the next run.
        left = "not_tried" if self.applied.stopped == STOPPED_ON_REQUEST else "failed"
        counts["failed"] = len(self.applied.failed)
        counts[left] += len(self.applied.unreached)
        return counts

    @property
    def stopped_on_request(self) -> bool:
        return self.stopped == STOPPED_ON_REQUEST

    def failed_actions(self) -> list[tuple[Action, str]]:
        """Every planned change that did not happen, with why."""
        if self.applied is None:
            return []
        left = f"not tried: {self.applied.stopped}"
        return self.applied.failed + [(a, left) for a in self.applied.unreached]

    @property
    def exit_code(self) -> int:
        counts = self.plan.counts()
        undelivered = any(not delivery.ok for delivery in self.media.values())
        return 1 if counts["conflict"] or counts["braked"] or self.failures or self.stopped or undelivered else 0


def counts_text(counts: dict[str, int]) -> str:
    """``1 created, 0 repaired, 0 pruned, 0 conflicts[, N prunes withheld][, M failed]``:
    the one wording of a cycle's counts, for the command line and the service's log."""
    parts = [
        f"{counts['create']} created",
        f"{counts['repair']} repaired",
        f"{counts['prune']} pruned",
        count(counts["conflict"], "conflict"),
    ]
    if counts.get("braked"):
        parts.append(f"{count(counts['braked'], 'prune')} withheld")
    if counts.get("failed"):
        parts.append(f"{counts['failed']} failed")
    if counts.get("not_tried"):
        parts.append(f"{counts['not_tried']} not tried")
    return ", ".join(parts)


SHOWN_CONFLICTS = 3  # named in the service's line; status and the page list them all


def conflicts_text(result: CycleResult) -> str:
    """The links a cycle met a conflict at, as the log names them: ``: a.mkv, b.mkv and 4 more``."""
    links = [a.link for a in result.plan.actions if a.op is Op.CONFLICT]
    if not links:
        return ""
    shown = ", ".join(link.decode("utf-8", "backslashreplace") for link in links[:SHOWN_CONFLICTS])
    more = len(links) - SHOWN_CONFLICTS
    if more > 0:
        shown += f" and {more} more"
    return f" ({plural(len(links), 'conflict')} at {shown})"


def service_line(result: CycleResult) -> str:
    """One cycle in the service's log and in its job record."""
    text = counts_text(result.counts()) + conflicts_text(result)
    if result.failures:
        text += f", {count(len(result.failures), 'failure')}"
    if result.stopped:
        text += f" ({result.stopped})"
    text += f" in {result.stats.duration_s:.2f}s"
    for name, delivery in result.media.items():
        text += f"; {name}: {delivery.error}" if not delivery.ok else f"; {name}: {delivery.sent} sent"
    return text
