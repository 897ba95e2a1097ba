"""Planning: desired links and the links on disk in, a list of actions out.

Nothing here touches the filesystem or the database, which is what makes
``--dry-run`` honest and idempotence testable: the same inputs always give the
same plan, and applying a plan then planning again gives an empty plan.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from graylink.store.db import join


class Op(StrEnum):
    CREATE = "create"  # no entry where a link should be
    REPAIR = "repair"  # a link of ours points at the wrong place, or is gone from the link tree
    PRUNE = "prune"  # a link of ours whose source is gone
    CONFLICT = "conflict"  # something not ours sits where a link should be: reported, never touched
    ADOPT = "adopt"  # a correct link that the database does not list yet: record it, touch nothing
    FORGET = "forget"  # the database lists a link that is no longer on disk and not wanted


# Ops that change the link tree, and so are reported to the user and to Emby.
VISIBLE_OPS = (Op.CREATE, Op.REPAIR, Op.PRUNE, Op.CONFLICT)

# The detail of a repair that puts back a link of ours gone from the link tree.
MISSING = "missing from the link tree"

# Temporary names the applier uses for atomic replacement; leftovers of a
# killed run are always pruned.
TEMP_PREFIX = b".graylink-"
TEMP_RE = re.compile(rb"^\.graylink-[0-9a-f]{12}\.tmp$")


@dataclass(frozen=True, slots=True)
class Entry:
    """What is on disk at a link path."""

    kind: str  # "link" | "file" | "dir" | "other"
    target: bytes = b""  # the symlink's content, for kind == "link"


@dataclass(frozen=True, slots=True)
class Desired:
    target: bytes  # the symlink content wanted


class Action(NamedTuple):
    """One planned change. A named tuple: immutable like a frozen dataclass, and
    a third of its cost to make (a first run plans one per video)."""

    op: Op
    link: bytes  # relative to the target root, and so the source file's path relative to the source
    target: bytes = b""  # content to write (create/repair/adopt) or found (prune)
    detail: str = ""  # for conflicts: what is in the way


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    braked: list[Action] = field(default_factory=list)  # prunes withheld by a safety gate
    brake_reason: str = ""

    def visible(self) -> list[Action]:
        return [a for a in self.actions if a.op in VISIBLE_OPS]

    def counts(self) -> dict[str, int]:
        # list.count compares by identity first: one C loop per op, not a
        # Python loop over every action (a first run plans tens of thousands).
        ops = [action.op for action in self.actions]
        counts = {op.value: ops.count(op) for op in VISIBLE_OPS}
        counts["braked"] = len(self.braked)
        return counts

    def is_empty(self) -> bool:
        return not self.actions and not self.braked


@dataclass(frozen=True)
class LinkSpace:
    """Where links live and what they point at, as bytes."""

    source: bytes  # the source root as graylink reads it
    target: bytes  # the link tree's root
    link_root: bytes  # the source root as the media server sees it
    relative: bool
    # Another graylink database claims this link tree too: then only links this
    # database recorded are its own.
    shared: bool = False
    # This database was rebuilt (its earlier self claimed the link tree, alone):
    # until its first full verification ends, a symlink into the source that it
    # did not record is taken as one the lost database made.
    reclaim: bool = False

    def link_target(self, rel: bytes) -> bytes:
        absolute = self.link_root.rstrip(b"/") + b"/" + rel
        if not self.relative:
            return absolute
        link_dir = os.path.dirname(self.target.rstrip(b"/") + b"/" + rel)
        return os.path.relpath(absolute, link_dir)

    def made(self, link: bytes, content: bytes) -> bool:
        """Whether an unrecorded symlink at ``link`` is one graylink made and could not
        record (a run killed between the two): its content is exactly what graylink
        writes there, and no other graylink shares the tree."""
        return not self.shared and content == self.link_target(link)

    def reclaims(self, rel_dir: bytes, content: bytes) -> bool:
        """Whether a symlink this database did not record is still graylink's to
        repair or prune: only while a rebuilt database takes its tree back."""
        return self.reclaim and self.points_into_source(rel_dir, content)

    def points_into_source(self, rel_dir: bytes, content: bytes) -> bool:
        """Whether a symlink in ``rel_dir`` of the link tree points into the source."""
        if not content:
            return False
        if not content.startswith(b"/"):
            base = self.target.rstrip(b"/") + (b"/" + rel_dir if rel_dir else b"")
            content = base + b"/" + content
        resolved = os.path.normpath(content)
        for root in (self.source, self.link_root):
            root = root.rstrip(b"/")
            if resolved.startswith(root + b"/"):
                return True
        return False


def plan_dir(
    space: LinkSpace,
    rel_dir: bytes,
    desired: Mapping[bytes, Desired],
    actual: Mapping[bytes, Entry],
    owned: Mapping[bytes, bytes],
) -> list[Action]:
    """Plan one directory of the link tree.

    ``desired`` maps names to the links wanted, ``actual`` names to what is on
    disk, ``owned`` names to the link contents graylink recorded as its own.
    """
    actions: list[Action] = []
    names = set(desired) | set(actual) | set(owned)
    for name in sorted(names):
        link = join(rel_dir, name)
        want = desired.get(name)
        have = actual.get(name)
        mine = owned.get(name)
        if want is not None:
            actions.extend(_plan_wanted(space, rel_dir, link, want, have, mine))
        else:
            actions.extend(_plan_unwanted(space, rel_dir, link, name, have, mine))
    return actions


def _plan_wanted(
    space: LinkSpace, rel_dir: bytes, link: bytes, want: Desired, have: Entry | None, mine: bytes | None
) -> list[Action]:
    if have is None:
        if mine is not None:
            # Ours, and gone from the link tree (deleted by hand, or by a media server).
            return [Action(Op.REPAIR, link, want.target, detail=MISSING)]
        return [Action(Op.CREATE, link, want.target)]
    if have.kind == "link":
        if have.target == want.target:
            if mine != want.target:
                return [Action(Op.ADOPT, link, want.target)]
            return []
        if (mine is not None and have.target == mine) or (mine is None and space.reclaims(rel_dir, have.target)):
            return [Action(Op.REPAIR, link, want.target, detail=_show(have.target))]
        if mine is not None:
            # Someone put their own symlink in place of ours: it is theirs now.
            detail = "a symlink graylink did not make (in place of graylink's link)"
            return [Action(Op.FORGET, link), Action(Op.CONFLICT, link, want.target, detail=detail)]
        return [Action(Op.CONFLICT, link, want.target, detail="a symlink graylink did not make")]
    what = {"file": "a regular file", "dir": "a directory"}.get(have.kind, "a special file")
    forget = [Action(Op.FORGET, link)] if mine is not None else []
    return [*forget, Action(Op.CONFLICT, link, want.target, detail=what)]


def _plan_unwanted(
    space: LinkSpace, rel_dir: bytes, link: bytes, name: bytes, have: Entry | None, mine: bytes | None
) -> list[Action]:
    if have is None or have.kind != "link":
        return [Action(Op.FORGET, link)] if mine is not None else []
    if TEMP_RE.match(name):
        return [Action(Op.PRUNE, link, have.target, detail="temporary entry of an interrupted run")]
    if mine is not None:
        theirs = have.target != mine
    else:
        theirs = not (space.made(link, have.target) or space.reclaims(rel_dir, have.target))
    if not theirs:
        return [Action(Op.PRUNE, link, have.target)]
    # A symlink graylink did not make (or one that replaced ours): the user's, left alone.
    return [Action(Op.FORGET, link)] if mine is not None else []


def apply_prune_brake(plan: Plan, owned_total: int, max_fraction: float, minimum: int = 20, allowance: int = 0) -> None:
    """Withhold every prune when a run would prune too much (like rsync's --max-delete).

    One deleted show folder is a normal prune; a fraction of the whole library
    at once usually means the source vanished, so nothing is pruned until a
    human confirms with ``--force``, or releases the brake for ``allowance``
    prunes they were shown (the web face): more than that is held again.
    """
    prunes = [a for a in plan.actions if a.op is Op.PRUNE and not TEMP_RE.match(os.path.basename(a.link))]
    if len(prunes) <= max(minimum, allowance) or len(prunes) <= max_fraction * owned_total:
        return
    reason = (
        f"{len(prunes)} prunes would remove more than {max_fraction:.0%} of the {owned_total} links graylink "
        "owns; nothing was pruned (check the source, then run again with --force)"
    )
    withhold_prunes(plan, reason)


def withhold_prunes(plan: Plan, reason: str) -> None:
    """Move every prune of the plan to ``braked`` (a safety gate said no)."""
    kept: list[Action] = []
    for action in plan.actions:
        if action.op is Op.PRUNE and not TEMP_RE.match(os.path.basename(action.link)):
            plan.braked.append(action)
        else:
            kept.append(action)
    plan.actions = kept
    if reason and not plan.brake_reason:
        plan.brake_reason = reason


def _show(content: bytes) -> str:
    return os.fsdecode(content)
