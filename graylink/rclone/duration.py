"""rclone's durations, as its flags read them.

Follows rclone's ``fs/parseduration.go`` ``ParseDuration``, tried in order:

1. ``off``: no limit (here ``math.inf``);
2. Go's ``time.ParseDuration``: one or more ``<number><unit>`` with units
   ``ns us µs ms s m h`` (``1h30m``, ``1.5h``, ``-5m``), or a bare ``0``;
3. one number with one suffix ``d`` (24 h), ``w`` (7 d), ``M`` (30 d), ``y``
   (365 d), or none (seconds): ``1d``, ``1.5w``, ``90``; no combinations
   (``1d12h`` is not a duration);
4. a date (``2006-01-02``, ``2006-01-02 15:04:05``, ``2006-01-02T15:04:05``,
   RFC 3339) in local time: the time from then until now.

rclone before 1.66 read ``--dir-cache-time`` and ``--poll-interval`` with Go's
parser alone (step 2); a running rclone accepted its value, so the superset
reads it right either way.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from datetime import datetime

_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)")
_SUFFIXES = (("d", 86400.0), ("w", 7 * 86400.0), ("M", 30 * 86400.0), ("y", 365 * 86400.0), ("", 1.0))
_GO_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity)", re.IGNORECASE)
# Go's parser takes a fractional second after the seconds whether the layout has one or not.
_DATE_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S.%f%z",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%d",
)


def go_duration(text: str) -> float | None:
    """Go's ``time.ParseDuration`` in seconds, None where Go refuses the text."""
    sign, rest = 1.0, text
    if rest[:1] in ("+", "-"):
        sign, rest = (-1.0 if rest[0] == "-" else 1.0), rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        return None
    total, pos = 0.0, 0
    while pos < len(rest):
        part = _GO_PART.match(rest, pos)
        if part is None or not (part.group(1) or part.group(2)):
            return None
        whole, frac, unit = part.group(1) or "0", part.group(2) or "", part.group(3)
        total += float(f"{whole}.{frac or '0'}") * _GO_UNITS[unit]
        pos = part.end()
    return sign * total


def _suffixed(text: str) -> float | None:
    for suffix, seconds in _SUFFIXES:
        if text.endswith(suffix):
            number = text[: len(text) - len(suffix)] if suffix else text
            if not _GO_FLOAT.fullmatch(number):
                return None
            return float(number) * seconds
    return None  # not reached: the last suffix is ""


def _since_date(text: str, now: float) -> float | None:
    for layout in _DATE_FORMATS:
        try:
            instant = datetime.strptime(text, layout)
        except ValueError:
            continue
        return now - instant.timestamp()  # a naive date is local time, as rclone reads it
    return None


def parse_duration(text: str, clock: Callable[[], float] = time.time) -> float | None:
    """Seconds (``math.inf`` for ``off``), or None when rclone would refuse the text."""
    if text == "off":
        return math.inf
    for parse in (go_duration, _suffixed):
        value = parse(text)
        if value is not None:
            return value
    return _since_date(text, clock())
