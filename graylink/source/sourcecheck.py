"""Is the source still the one the walk began on?

A mount restarted during a walk (``fusermount3 -uz``, SIGTERM to rclone, a new
``rclone mount``) shows, for a moment, the empty folder underneath the mount
point: every folder listed then answers ENOENT, and a walk that believes it
drops whole subtrees from the index, whose links are then pruned. Each mount
has an identity (the device of the source, the mount's id in mountinfo) that
changes when the mount goes away and again when it comes back. The scanner
compares it with the one taken when the walk began before it writes a batch
of listings (and whenever a listing says a known folder is gone or empty):
a different identity discards the batch and ends the walk, the dirty marks
kept. The last look before a prune is :mod:`graylink.reconcile.veto`'s.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from graylink.source.listing import MountGone
from graylink.system import deadline, fsinfo

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 10.0  # a stat of the source root: longer means the mount does not answer

StopFn = Callable[[], bool]


class Interrupted(Exception):
    """The scan was asked to stop (a signal). What it had not yet written is
    dropped and re-listed next time; subtrees it had begun are marked dirty."""


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
