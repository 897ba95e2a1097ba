"""Times the database keeps, read against a clock that may have jumped.

A run with the clock in the future (a board without an RTC before NTP, a
wrong manual date) writes that future into the database: the last full
verification, the start of a mount outage, the Drive feed's cursor. Read back
with the right clock, a time in the future would make "how long since" negative
for years -- the daily verification never due again. A recorded time later
than now is therefore treated as "long ago" (whatever it schedules is due),
and told once as a WARNING, when it is read and replaced.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

# NTP steps and clocks of two machines sharing a database differ by seconds:
# only a time further ahead than this is a jump.
SLACK_S = 300.0


def in_future(recorded: float, now: float | None = None) -> bool:
    """True when ``recorded`` (seconds since the epoch) lies beyond now and the slack."""
    now = time.time() if now is None else now
    return recorded > now + SLACK_S


def tell_jump(what: str, recorded: float, consequence: str) -> None:
    """One WARNING: the database holds ``what`` at ``recorded``, in the future."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(recorded))
    log.warning("%s is recorded at %s, in the future: the clock jumped back since; %s", what, stamp, consequence)
