"""Parsers of single configuration values: each takes the raw string, returns the typed value.

A parser raises :class:`ValueError` with a message that names the bad value;
the loader adds the section and key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from urllib.parse import urlsplit

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


def parse_duration(text: str) -> float:
    """Parse ``90s``, ``5m``, ``1h``, ``1d``, ``1h30m`` or plain seconds."""
    compact = text.strip().replace(" ", "")
    if not compact:
        raise ValueError("empty duration")
    total = 0.0
    pos = 0
    for match in _DURATION_RE.finditer(compact):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
        pos = match.end()
    if pos != len(compact):
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 5m, 1h, 1d)")
    return total


def positive_duration(text: str) -> float:
    value = parse_duration(text)
    if value <= 0:
        raise ValueError(f"must be longer than zero: {text!r}")
    return value


def optional_duration(text: str) -> float | None:
    """Empty = chosen later (a default that depends on another key)."""
    return positive_duration(text) if text.strip() else None


def yes_no(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"not a yes/no value: {text!r}")


def tristate(text: str) -> str:
    low = text.strip().lower()
    if low == "auto":
        return "auto"
    return "yes" if yes_no(low) else "no"


def protect(text: str) -> str:
    """``[emby] protect`` / ``[plex] protect``: empty (the default: only steps that change no
    user setting), ``yes`` (also hold the server's settings for the outage) or ``no``."""
    if not text.strip():
        return ""
    return "yes" if yes_no(text) else "no"


def positive_int(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise ValueError(f"must be at least 1: {text!r}")
    return value


_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def size(text: str) -> int:
    """Parse ``300M``, ``300MB``, ``1.5G`` or plain bytes (decimal units, as Plex states its 300 MB)."""
    match = _SIZE_RE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a size: {text!r} (use e.g. 300M, 1G, or bytes)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def fraction(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"must be between 0 and 1: {text!r}")
    return value


def choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        low = text.strip().lower()
        if low not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return low

    return parse


def text(value: str) -> str:
    return value.strip()


def path(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        return ""
    return os.path.normpath(os.path.abspath(os.path.expanduser(stripped)))


def word_list(value: str) -> tuple[str, ...]:
    return tuple(w for w in re.split(r"[\s,]+", value.strip()) if w)


def extensions(value: str) -> tuple[str, ...]:
    out = []
    for word in word_list(value):
        ext = word.lower()
        if not ext.startswith("."):
            ext = "." + ext
        if len(ext) < 2 or "/" in ext:
            raise ValueError(f"not a file extension: {word!r}")
        out.append(ext)
    return tuple(out)


def path_map(value: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in (p.strip() for p in value.split(",")):
        if not item:
            continue
        if "=" not in item:
            raise ValueError(f"path_map entry {item!r} is not of the form /from=/to")
        src, _, dst = item.partition("=")
        src, dst = src.strip().rstrip("/") or "/", dst.strip().rstrip("/") or "/"
        if not src.startswith("/") or not dst.startswith("/"):
            raise ValueError(f"path_map entry {item!r}: both sides must be absolute paths")
        pairs.append((src, dst))
    return tuple(pairs)


# A path as Sonarr / Radarr on Windows give it: a drive letter (``D:\\TV``, ``D:/TV``) or a UNC share (``\\\\nas\\tv``).
WINDOWS_PATH_RE = re.compile(r"^(?:[A-Za-z]:(?:[\\/]|$)|\\\\[^\\/])")


def arr_path_map(value: str) -> tuple[tuple[str, str], ...]:
    """``[web] arr_path_map``: like :func:`path_map`, but the *arr's side may be a Windows path."""
    pairs = []
    for item in (p.strip() for p in value.split(",")):
        if not item:
            continue
        src, sep, dst = item.partition("=")
        src, dst = src.strip(), dst.strip().rstrip("/") or "/"
        if not sep or not src:
            raise ValueError(f"arr_path_map entry {item!r} is not of the form /from=/to (or D:\\from=/to)")
        if WINDOWS_PATH_RE.match(src):
            src = src.rstrip("\\/") if len(src.rstrip("\\/")) > 2 else src[:2]  # D:\ → D:
        elif src.startswith("/"):
            src = src.rstrip("/") or "/"
        else:
            raise ValueError(
                f"arr_path_map entry {item!r}: the *arr's side must be an absolute path (/tv, D:\\TV or \\\\nas\\tv)"
            )
        if not dst.startswith("/"):
            raise ValueError(f"arr_path_map entry {item!r}: the source side must be an absolute path")
        pairs.append((src, dst))
    return tuple(pairs)


def url(value: str) -> str:
    stripped = value.strip().rstrip("/")
    if stripped and not re.match(r"^https?://[^/\s]+", stripped):
        raise ValueError(f"not an http(s) URL: {stripped!r}")
    return stripped


def _masked_url(text: str) -> str:
    """``text`` with every query value and any password shown as ``***``."""
    parts = urlsplit(text)
    user = ""
    if parts.username is not None:
        user = parts.username + (":***" if parts.password is not None else "") + "@"
    host = parts.netloc.rpartition("@")[2]
    pairs = (item.partition("=") for item in parts.query.split("&"))
    query = "&".join(f"{name}=***" if sep else name for name, sep, _ in pairs)
    shown = f"{parts.scheme}://{user}{host}{parts.path}"
    if "?" in text:
        shown += "?" + query
    if parts.fragment:
        shown += "#***"
    return shown


def server_url(credentials: str) -> Callable[[str], str]:
    """An http(s) URL of a server graylink sends credentials to: never with credentials of its own.

    A key pasted into the URL (``?api_key=…``, ``user:pass@``) would be shown
    wherever the URL is (logs, ``status``, ``doctor``) and sent where the
    server does not read it; refused with the key masked and the right key named.
    """

    def parse(value: str) -> str:
        stripped = url(value)
        if not stripped:
            return stripped
        parts = urlsplit(stripped)
        where = ""
        if "@" in parts.netloc:
            where = "a user name or password"
        elif "?" in stripped or "#" in stripped:
            where = "a query string" if "?" in stripped else "a fragment"
        if where:
            base = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
            raise ValueError(
                f"{_masked_url(stripped)} carries {where}, which graylink would show in logs and status: "
                f"set the URL to {base} and put the credentials in {credentials}"
            )
        return stripped

    return parse


def listen(value: str) -> str:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6), or "" for off."""
    stripped = value.strip()
    if not stripped:
        return ""
    match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):(\d{1,5})", stripped)
    if not match or not 0 < int(match.group(2)) < 65536:
        raise ValueError(f"not HOST:PORT: {stripped!r} (e.g. 127.0.0.1:8765)")
    return stripped


def url_list(value: str) -> tuple[str, ...]:
    """Apprise URLs, one per line or comma-separated."""
    urls = tuple(u for u in re.split(r"[\s,]+", value.strip()) if u)
    for item in urls:
        if "://" not in item:
            raise ValueError("an alert URL must look like scheme://... (Apprise syntax, e.g. tgram://TOKEN/CHAT)")
    return urls


def listen_address(value: str) -> tuple[str, int]:
    """A ``listen`` value as (host, port); the brackets of an IPv6 host removed."""
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
