"""What ``-v`` tells: graylink's own story in its words, one line per step, with paths.

Folders listed, marks added, actions planned and applied, requests sent are
logged at DEBUG by the code that does them, through these helpers. The
helpers ask once whether DEBUG is on, so a run without ``-v`` pays one check
per batch, not one per file. Library chatter (raw SQL, HTTP pools) is only
shown at ``-vv`` (:mod:`graylink.service.logsetup`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from enum import Enum
from typing import Protocol

log = logging.getLogger("graylink.story")


# The shapes of the store's marks and the planner's actions, as told here: this
# module sits below both (every layer tells its story through it).
class Mark(Protocol):
    @property
    def path(self) -> bytes: ...
    @property
    def recursive(self) -> bool: ...
    @property
    def reason(self) -> str: ...


class Action(Protocol):
    @property
    def op(self) -> Enum: ...
    @property
    def link(self) -> bytes: ...
    @property
    def target(self) -> bytes: ...
    @property
    def detail(self) -> str: ...


class Plan(Protocol):
    @property
    def actions(self) -> Sequence[Action]: ...
    @property
    def braked(self) -> Sequence[Action]: ...
    @property
    def brake_reason(self) -> str: ...

_DONE = {"create": "created", "repair": "repaired", "prune": "pruned", "adopt": "adopted", "forget": "forgot"}


def on() -> bool:
    return log.isEnabledFor(logging.DEBUG)


def shown(rel: bytes) -> str:
    """A path relative to the source or the link tree, for one log line."""
    return rel.decode("utf-8", "backslashreplace") or "(root)"


def listed(rel: bytes, files: int | None, dirs: int, *, missing: bool = False) -> None:
    if missing:
        log.debug("listed %s: gone", shown(rel))
    elif files is None:
        log.debug("listed %s: unchanged (%d folders)", shown(rel), dirs)
    else:
        log.debug("listed %s: %d files, %d folders", shown(rel), files, dirs)


def marked(marks: Iterable[Mark]) -> None:
    for mark in marks:
        what = "subtree" if mark.recursive else "folder"
        log.debug("marked %s dirty (%s, %s)", shown(mark.path), mark.reason, what)


def planned(plan: Plan) -> None:
    if not on():
        return
    for action in plan.actions:
        _planned_one(action, "")
    for action in plan.braked:
        _planned_one(action, f" (withheld: {plan.brake_reason.split(';')[0]})")


def _planned_one(action: Action, note: str) -> None:
    op = action.op.value
    if op in ("create", "repair"):
        log.debug("plan: %s %s -> %s%s", op, shown(action.link), shown(action.target), note)
    else:
        detail = f" ({action.detail})" if action.detail else ""
        log.debug("plan: %s %s%s%s", op, shown(action.link), detail, note)


def applied(done: Iterable[Action]) -> None:
    if not on():
        return
    for action in done:
        log.debug("%s %s", _DONE.get(action.op.value, action.op.value), shown(action.link))


def request(method: str, url: str, detail: str = "") -> None:
    log.debug("%s %s%s", method, url, f": {detail}" if detail else "")
