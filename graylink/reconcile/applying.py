"""The cycle's last step: apply the plan, then record what was done.

Applying is the only writer of links (:class:`graylink.links.apply.Applier`);
the recording that follows -- owned links, the folders graylink made, video
counts, marks cleared or kept, problems, the full verification -- is one
transaction, so a cycle killed before it leaves every mark for the next run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from graylink import story
from graylink.config import Config
from graylink.links import ownership
from graylink.links.apply import Applier
from graylink.links.planner import Op, Plan
from graylink.links.recording import VideoCounts, record_links, record_tree_dirs, record_video_counts
from graylink.reconcile.announce import announce, withdraw
from graylink.reconcile.closing import marks_to_keep, problems_of, record_full_verification
from graylink.reconcile.outcome import CycleResult
from graylink.store.db import Mark, Store, StoredMark
from graylink.store.problems import update_problems, update_unlistable
from graylink.store.scopes import Scope, ScopeSet
from graylink.system.progress import QUIET, Meter

LINK_CHANGES = frozenset({Op.CREATE, Op.REPAIR, Op.PRUNE})  # what the summary counts as created, repaired, pruned
UNLISTABLE = "unlistable"  # the reason of a mark that retries a folder that could not be listed


@dataclass
class Findings:
    """What the cycle found before applying, which the recording keeps."""

    target: bytes  # the link tree
    should_stop: Callable[[], bool] | None
    mount_ok: bool
    full: bool
    scopes: list[Scope]
    unlistable: dict[bytes, str]  # folders that could not be listed, with why
    video_counts: VideoCounts
    meter: Meter = QUIET


def apply_and_record(
    config: Config, store: Store, plan: Plan, marks: list[StoredMark], result: CycleResult, found: Findings
) -> None:
    def is_made_dir(rel: bytes) -> bool:
        return store.execute("SELECT 1 FROM link_dir WHERE path = ?", (rel,)).fetchone() is not None

    announced = announce(config, store, plan.actions)
    meter = found.meter
    changes = sum(1 for action in plan.actions if action.op in LINK_CHANGES)
    only_creates = all(action.op is Op.CREATE for action in plan.actions if action.op in LINK_CHANGES)
    meter.begin("creating links" if only_creates else "changing links", changes)
    applier = Applier(found.target, is_made_dir, found.should_stop, meter.count if meter.on else None)
    new_dirs = applier.dirs_to_make(plan.actions)
    recorded = set(new_dirs)
    if new_dirs:
        with store.atomic():
            store.insert_many("INSERT OR IGNORE INTO link_dir (path)", 1, [(d,) for d in new_dirs])
    applied = applier.apply(plan.actions)
    story.applied(applied.done)
    result.applied = applied
    result.stopped = applied.stopped
    for action, reason in applied.failed:
        result.failures.append(f"{action.op.value} {os.fsdecode(action.link)}: {reason}")
    keep = marks_to_keep(plan, marks, applied, found.mount_ok)
    meter.begin("recording links", counted=False)
    with store.atomic():
        ownership.record(config, store)
        record_links(store, applied, recorded)
        record_video_counts(store, found.video_counts)
        record_tree_dirs(store, found.target, found.video_counts)
        withdraw(config, store, announced, applied)
        made = set(applied.made_dirs)
        store.executemany("DELETE FROM link_dir WHERE path = ?", ((d,) for d in new_dirs if d not in made))
        store.clear_marks(m.id for m in marks if m.id and m.id not in keep)
        finished = not applied.stopped and found.mount_ok
        update_problems(store, ScopeSet(found.scopes) if finished else None, problems_of(plan, applied))
        # Folders that could not be listed stay on the books as marks of their
        # own, listed again (and reported) each run until they can be.
        store.add_marks([Mark(d, UNLISTABLE, indexed=False) for d in sorted(found.unlistable) if d])
        update_unlistable(store, {d: why for d, why in found.unlistable.items() if d}, UNLISTABLE)
        # Everything was verified but what this run reported (unlistable
        # folders, a failing feed, failed actions: each on the books and
        # retried): that is a full verification, or one bad folder would
        # make every later run list the whole library again.
        if found.full and not keep:
            record_full_verification(store)
