"""Closing a cycle: which marks stay, what goes on the book of problems, a finished full verification."""

from __future__ import annotations

import time

from graylink.links import ownership
from graylink.links.apply import ApplyResult
from graylink.links.planner import Op, Plan
from graylink.store.db import META_LAST_FULL, Store, StoredMark, parent_of
from graylink.store.problems import CONFLICT, FAILED, Problem
from graylink.store.scopes import touched


def marks_to_keep(plan: Plan, marks: list[StoredMark], applied: ApplyResult, mount_ok: bool) -> set[int]:
    """Marks whose work is unfinished: withheld prunes, an early stop.

    Conflicts and failed actions are not kept as marks: they go on the
    book of open problems, whose folders every cycle plans again."""
    if applied.stopped or not mount_ok:
        return {m.id for m in marks}
    unfinished = [a.link for a in plan.braked]
    above, exact = touched([parent_of(link) for link in unfinished] + unfinished)
    return {m.id for m in marks if m.path in (above if m.recursive else exact)}


def problems_of(plan: Plan, applied: ApplyResult) -> list[Problem]:
    found = [Problem(a.link, CONFLICT, a.op.value, a.detail) for a in plan.actions if a.op is Op.CONFLICT]
    found += [Problem(a.link, FAILED, a.op.value, reason) for a, reason in applied.failed]
    return found


def record_full_verification(store: Store) -> None:
    """Everything was verified: note when (inside the caller's transaction)."""
    store.set_meta(META_LAST_FULL, str(time.time()))
    # A rebuilt database has taken back every link of its lost self.
    store.execute("DELETE FROM meta_value WHERE key = ?", (ownership.META_RECLAIM,))
    # Everything was just listed: the Activity feed's item record, which
    # may have missed a late activity, is rebuilt rather than trusted. The
    # Changes feed misses nothing (a refused token clears it), so its stays.
    store.execute(
        "DELETE FROM drive_item WHERE EXISTS (SELECT 1 FROM meta_value "
        "WHERE key = 'drive.feed' AND value LIKE 'activity:%')"
    )
