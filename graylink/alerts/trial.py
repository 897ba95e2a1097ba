"""``graylink alerts test``: one message through every configured Apprise URL, now.

Each URL is sent on its own, so the answer can say how many of them took it.
What is said about a URL is its scheme only (the rest holds tokens), and
Apprise's own log lines stay quiet while it sends (they quote the URL).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from graylink.alerts.deliver import SCRUBBED_LOGGERS, Sender, apprise_sender, masked, not_understood
from graylink.alerts.rules import Alert


@dataclass
class TrialResult:
    """How a test message went: the URLs that took it, and the schemes of those that did not."""

    total: int
    sent: int = 0
    failed: list[str] = field(default_factory=list)  # "scheme://… (why)": never the URL itself

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.sent == self.total


def trial_alert(host: str) -> Alert:
    return Alert(
        event="test",
        title="graylink: test alert",
        body=f"A test from graylink on {host}: its alerts reach you here.",
        kind="success",
    )


def send_test(urls: Sequence[str], sender: Sender = apprise_sender) -> TrialResult:
    """Send one test alert to each URL; never raises for a URL that fails."""
    alert = trial_alert(socket.gethostname())
    result = TrialResult(total=len(urls))
    unusable = set(not_understood(urls))
    quiet = [logging.getLogger(name) for name in SCRUBBED_LOGGERS]
    was = [logger.disabled for logger in quiet]
    for logger in quiet:
        logger.disabled = True
    try:
        for url in urls:
            if url in unusable:
                result.failed.append(f"{masked(url)} (not a URL Apprise understands)")
                continue
            try:
                ok = sender(url, alert)
            except Exception:  # a broken notifier is one failed URL, not a traceback
                ok = False
            if ok:
                result.sent += 1
            else:
                result.failed.append(f"{masked(url)} (not delivered)")
    finally:
        for logger, state in zip(quiet, was, strict=True):
            logger.disabled = state
    return result
