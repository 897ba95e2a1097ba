"""The log page: the service's last lines, secrets scrubbed.

From ``[log] file`` when it is set (its tail: the last lines of the current
file), else from the in-memory ring the service logs to
(:mod:`graylink.system.logring`). Every value of a secret key, each part of an
Apprise URL, and anything that looks like a credential in a URL or header is
replaced by ``***`` before a line leaves the process.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from graylink.config import SECRET_KEYS, Config
from graylink.system import secrets as masking
from graylink.system.logring import RING

SHOWN = 300
TAIL_BYTES = 256 * 1024
# key=value and header forms a line may carry (a URL a library logged, a header echoed by an error).
CREDENTIAL = re.compile(
    r"(?i)(\b(?:api_key|apikey|x-plex-token|x-emby-token|token|access_token|refresh_token|client_secret|password|pass)"
    r"[\"']?\s*[=:]\s*[\"']?)([^\s&\"',;]+)"
)
BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
USERINFO = re.compile(r"(://)[^/\s@]+@")


def secrets_of(config: Config) -> list[str]:
    found: list[str] = []
    for section, key in SECRET_KEYS:
        value = getattr(getattr(config, section), key)
        for item in value if isinstance(value, tuple) else (value,):
            found.append(str(item))
            if "://" in str(item):  # an Apprise URL: its tokens sit in the host, path and query
                parts = urlsplit(str(item))
                found += [parts.netloc, parts.password or "", *parts.path.split("/"), *parts.query.split("&")]
                found += [kv.partition("=")[2] for kv in parts.query.split("&")]
    for server in config.servers:  # named servers too: [emby NAME] api_key, [plex NAME] token
        found.append(str(getattr(server.settings, "api_key", "") or getattr(server.settings, "token", "")))
    return sorted({s for s in found if s}, key=len, reverse=True)


def scrub(line: str, secrets: list[str]) -> str:
    line = masking.scrub(line, secrets)
    line = CREDENTIAL.sub(lambda m: m.group(1) + "***", line)
    line = BEARER.sub(lambda m: m.group(1) + " ***", line)
    return USERINFO.sub(r"\1***@", line)


def _tail(path: str, count: int) -> list[str]:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - TAIL_BYTES))
        data = handle.read()
    lines = data.decode("utf-8", "replace").splitlines()
    if size > TAIL_BYTES and lines:
        lines = lines[1:]  # the first one is cut
    return lines[-count:]


def recent_lines(config: Config, count: int = SHOWN) -> tuple[str, list[str]]:
    """(where the lines come from, the last ``count`` lines scrubbed, oldest first)."""
    if config.log.file:
        try:
            lines, origin = _tail(config.log.file, count), config.log.file
        except OSError as exc:
            lines, origin = RING.lines()[-count:], f"memory ({config.log.file}: {exc.strerror})"
    else:
        lines, origin = RING.lines()[-count:], "memory"
    secrets = secrets_of(config)
    return origin, [scrub(line, secrets) for line in lines]
