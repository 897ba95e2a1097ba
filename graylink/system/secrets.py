"""Masking secrets in text that leaves the process (logs, pages, errors).

A secret of ``SHORT`` characters or more is replaced wherever it appears, even
inside a word: a key pasted into the wrong field still disappears. A shorter
one (a test value, a mistyped password) would mangle every line that holds
those letters ("a" in every word), so it is replaced only where it stands as a
value: after ``=`` (query strings, ``Token="…"``), after a credential header or
key and its ``:`` (``X-Emby-Token: …``, ``"api_key": "…"``), as a URL's user or
password, or after ``Bearer`` / ``Basic`` — and only as the whole value.
``graylink doctor`` warns that such a secret is weak.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

SHORT = 4
MASK = "***"

# What may stand right before a value: "=", a credential key and ":", a URL's "//" or "//user:", an auth scheme.
_BEFORE = (
    r"(?:=\s*[\"']?"
    r"|(?i:token|key|secret|pass|password|authorization)[\"']?\s*:\s*[\"']?"
    r"|//(?:[^/\s@:]*:)?"
    r"|(?i:\bbearer|\bbasic)\s+)"
)
# What may end a value: the end, white space, quotes, separators of queries, lists and URLs.
_AFTER = r"(?=$|[\s\"'&,;@/:)\]}>])"


def masker(secrets: Iterable[str]) -> Callable[[str], str]:
    """A function that masks every one of ``secrets`` in a text (empty ones are ignored)."""
    values = {s for s in secrets if s}
    long = sorted((s for s in values if len(s) >= SHORT), key=len, reverse=True)
    short = sorted((s for s in values if len(s) < SHORT), key=len, reverse=True)
    pattern = re.compile(f"({_BEFORE})(?:{'|'.join(re.escape(s) for s in short)}){_AFTER}") if short else None

    def mask(text: str) -> str:
        for value in long:
            text = text.replace(value, MASK)
        return pattern.sub(lambda m: m.group(1) + MASK, text) if pattern else text

    return mask


def scrub(text: str, secrets: Iterable[str]) -> str:
    return masker(secrets)(text)


def is_short(secret: str) -> bool:
    """Whether a set secret is short enough to be only masked as a value (and weak)."""
    return 0 < len(secret) < SHORT
