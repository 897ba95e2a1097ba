"""An access token borrowed from rclone.conf, used until its real expiry.

With rclone's built-in OAuth client (empty ``client_id``) graylink cannot
refresh the token: only rclone can, and it does so lazily, about 10 s before
expiry (golang.org/x/oauth2 ``expiryDelta``), when it next calls the Drive —
then it rewrites rclone.conf. google-auth would call the same token expired
3 min 45 s early (``_helpers.REFRESH_THRESHOLD``) and fail every poll of an
hour's last minutes. So the borrowed token keeps its own clock: fresh until a
few seconds before the expiry rclone wrote, and a "refresh" is a fresh read of
rclone.conf.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from google.auth import credentials as ga_credentials
from google.auth import exceptions as ga_exceptions

# One request's worth: a token is not sent when it expires before Google could answer.
MARGIN = dt.timedelta(seconds=5)


def parse_go_time(text: str) -> dt.datetime | None:
    """A Go ``time.Time`` as JSON (RFC 3339, up to nanoseconds) → naive UTC, as google-auth wants.

    Go's zero time (``0001-01-01T00:00:00Z``) means "no expiry" and gives None.
    """
    match = re.fullmatch(
        r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text.strip(), flags=re.IGNORECASE
    )
    if not match:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    base, frac, zone = match.groups()
    stamp = dt.datetime.fromisoformat(base).replace(microsecond=int((frac or "0")[:6].ljust(6, "0")))
    if stamp.year <= 1:
        return None
    if zone.upper() != "Z":
        sign = 1 if zone[0] == "+" else -1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        stamp -= sign * dt.timedelta(hours=hours, minutes=minutes)
    return stamp


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class BorrowedTokenExpired(ga_exceptions.RefreshError):
    """rclone's access token has expired and rclone.conf holds no newer one (yet)."""

    def __init__(self, remote: str, expiry: dt.datetime) -> None:
        message = f"the access token of rclone remote [{remote}] expired at {expiry:%H:%M:%S} UTC"
        super().__init__(message)  # type: ignore[no-untyped-call]
        self.remote = remote
        self.expiry = expiry


# What a re-read of rclone.conf gives: the access token and its expiry.
Reread = Callable[[], tuple[str, dt.datetime | None]]


class BorrowedToken(ga_credentials.Credentials):
    """google-auth credentials over rclone's access token; ``refresh`` re-reads rclone.conf."""

    def __init__(self, remote: str, token: str, expiry: dt.datetime | None, reread: Reread) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.remote = remote
        self.token = token
        self.expiry = expiry
        self._reread = reread

    def __repr__(self) -> str:  # the token must never reach a log
        return f"BorrowedToken(remote={self.remote!r}, expiry={self.expiry!r})"

    @property
    def expired(self) -> bool:
        return self.expiry is not None and utcnow() >= self.expiry - MARGIN

    @property
    def valid(self) -> bool:
        return self.token is not None and not self.expired

    @property
    def token_state(self) -> Any:
        state = ga_credentials.TokenState
        return state.FRESH if self.valid else state.INVALID

    def refresh(self, request: Any) -> None:
        token, expiry = self._reread()
        self.token, self.expiry = token, expiry
        if self.expired and self.expiry is not None:
            raise BorrowedTokenExpired(self.remote, self.expiry)

    def check(self) -> None:
        """Raise BorrowedTokenExpired now if the token is expired even after a re-read."""
        if self.expired:
            self.refresh(None)
