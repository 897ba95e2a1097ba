"""Text that goes into one line of a log, a terminal or a JSON reason: control characters escaped.

A path or a request value can hold a newline, a carriage return or an escape
sequence; written raw, it starts a new (forged) log line or moves a terminal's
cursor. Escaped as ``\\xNN`` -- the form names that are not UTF-8 already take
(``bytes.decode("utf-8", "backslashreplace")``) -- every value stays on its line.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls (U+0085 is a newline to some readers), and the
# Unicode line and paragraph separators (newlines to JavaScript and to some viewers).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def one_line(text: str) -> str:
    """``text`` with every control character escaped, so that it is one line."""
    return _CONTROL.sub(_escaped, text)
