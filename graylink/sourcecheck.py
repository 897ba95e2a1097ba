"""Is the source still the one the walk began on, and is a file really gone?

A mount restarted during a walk (``fusermount3 -uz``, SIGTERM to rclone, a new
``rclone mount``) shows, for a moment, the empty folder underneath the mount
point: every folder listed then answers ENOENT, and a walk that believes it
drops whole subtrees from the index, whose links are then pruned. Each mount
has an identity (the device of the source, the mount's id in mountinfo) that
changes when the mount goes away and again when it comes back. The scanner
compares it with the one taken when the walk began before it writes a batch
of listings (and whenever a listing says a known folder is gone or empty):
a different identity discards the batch and ends the walk, the dirty marks
kept. And before any prune, the source file itself is looked at once
(``lstat``): a file that is there vetoes its prune.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from graylink import deadline, fsinfo
from graylink.listing import MountGone
from graylink.reconciler import TEMP_RE, Op, Plan
from graylink.rules import Rules
from graylink.scanner import Interrupted

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 10.0  # a stat of the source root: longer means the mount does not answer

StopFn = Callable[[], bool]


@dataclass(frozen=True)
class Identity:
    device: int
    mount_id: int


def identity_of(source: str, timeout: float = CHECK_TIMEOUT, should_stop: StopFn | None = None) -> Identity:
    """The source's identity now; MountGone when it cannot be read (gone, dead, hung)."""

    def look() -> Identity:
        device = os.stat(source).st_dev
        entry = fsinfo.mount_of(source)
        return Identity(device, entry.mount_id if entry else 0)

    try:
        return deadline.call(look, timeout, f"looking at the source {source}", should_stop)
    except deadline.NoAnswer as exc:
        if exc.stopped:
            raise Interrupted("stopped on request while looking at the source") from None
        raise MountGone(errno.ETIMEDOUT, f"the source {source} does not answer ({exc})") from None
    except OSError as exc:
        raise MountGone(exc.errno or errno.EIO, f"the source {source} went away: {exc.strerror}") from None


class SourceGuard:
    """The identity of the source when a walk began, checked again as it goes."""

    def __init__(
        self,
        source: str,
        *,
        hang_prone: bool,
        timeout: float = CHECK_TIMEOUT,
        should_stop: StopFn | None = None,
    ) -> None:
        self.source = source
        self.hang_prone = hang_prone  # FUSE, network: listings run where a deadline can end them
        self.timeout = timeout
        self.should_stop = should_stop
        self.start = identity_of(source, timeout, should_stop)

    def check(self, when: str) -> None:
        """MountGone when the source is no longer the mount the walk began on."""
        try:
            now = identity_of(self.source, self.timeout, self.should_stop)
        except MountGone as exc:
            raise MountGone(exc.errno, f"{exc.strerror} {when}; what was listed since is discarded") from None
        if now != self.start:
            raise MountGone(
                errno.ESTALE,
                f"the mount at {self.source} changed {when} (it was restarted): what was listed since the "
                "last check is discarded and the dirty marks are kept",
            )


def _gone(path: bytes) -> bool | None:
    """True when ``path`` does not exist, False when it does, None when that cannot be told."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return True
    except NotADirectoryError:
        return True
    except OSError:
        return None
    return False


@dataclass(frozen=True)
class Veto:
    message: str  # one line for the failures, "" when every prune was confirmed
    folders: tuple[bytes, ...] = ()  # folders to list again: the index lost files that are there


def _wanted(rules: Rules, rel: bytes) -> bool:
    folder, _, name = rel.rpartition(b"/")
    return rules.wants_dir(folder) and rules.wants_file(name)


def veto_prunes(
    plan: Plan, source: str, rules: Rules, timeout: float = CHECK_TIMEOUT, should_stop: StopFn | None = None
) -> Veto:
    """Withhold each prune whose source file is still there (one lstat each: prunes are few).

    Only prunes of links the rules still want are looked at: a link the rules
    no longer want (an extension dropped, a folder excluded) goes although its
    file stays. A source that does not answer withholds every such prune."""
    prunes = [
        a
        for a in plan.actions
        if a.op is Op.PRUNE and not TEMP_RE.match(os.path.basename(a.link)) and _wanted(rules, a.link)
    ]
    if not prunes:
        return Veto("")
    root = os.fsencode(source).rstrip(b"/")

    def look() -> list[bool | None]:
        return [_gone(root + b"/" + a.link) for a in prunes]

    try:
        verdicts = deadline.call(look, timeout, "confirming prunes in the source", should_stop)
    except deadline.NoAnswer as exc:
        verdicts = [None] * len(prunes)
        why = f"{len(prunes)} prune(s) withheld: the source does not answer ({exc})"
    else:
        why = ""
    vetoed = [a for a, gone in zip(prunes, verdicts, strict=True) if gone is not True]
    if not vetoed:
        return Veto("")
    ids = {id(a) for a in vetoed}
    plan.braked.extend(vetoed)
    plan.actions = [a for a in plan.actions if id(a) not in ids]
    message = why or (
        f"{len(vetoed)} prune(s) withheld: the source file is still there although the index lost it "
        "(was the mount restarted during a walk?); its folder is listed again"
    )
    log.error("%s", message)
    folders = () if why else tuple(sorted({a.link.rpartition(b"/")[0] for a in vetoed}))
    return Veto(message, folders)
