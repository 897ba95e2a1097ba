"""rclone remote paths: ``remote:path``, connection strings, on-the-fly backends.

Follows rclone's ``fs/fspath/path.go`` ``Parse``: ``gdrive:Media``,
``gdrive,team_drive=0ABC:Media`` (parameters override the remote's options),
``:drive,client_id=x:`` (an on-the-fly backend with no config section), and
values quoted with ``'`` or ``"`` (a doubled quote is a literal one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# fs/fspath configNameRe (rclone >= 1.62 allows "+" and "@"): letters, digits, "_", ".", "+", "@", and
# "-" and spaces inside; not starting with "-" or a space, not ending with a space.
_NAME = re.compile(r"^:?[\w.+@]+(?:[ -]+[\w.+@-]+)*$")
_PARAM = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class RemotePath:
    name: str  # the config name, ":backend" for an on-the-fly remote, "" for a local path
    path: str  # the path inside the remote, without leading or trailing "/" (as given for a local path)
    params: dict[str, str] = field(default_factory=dict)  # connection-string options

    @property
    def on_the_fly(self) -> str:
        """The backend of ``:backend:``, else ""."""
        return self.name[1:] if self.name.startswith(":") else ""


class RemotePathError(ValueError):
    pass


def _quoted(text: str, start: int, quote: str) -> tuple[str, int]:
    """A quoted value from ``start`` (just past the quote) → (value, index of the char after it)."""
    out: list[str] = []
    i = start
    while True:
        end = text.find(quote, i)
        if end == -1:
            raise RemotePathError("unterminated quoted config value")
        out.append(text[i:end])
        if text[end + 1 : end + 2] == quote:  # doubled: a literal quote
            out.append(quote)
            i = end + 2
            continue
        if end + 1 >= len(text) or text[end + 1] not in ",:":
            raise RemotePathError("expecting ':' or ',' or another quote after a quote")
        return "".join(out), end + 1


def _params(text: str, i: int) -> tuple[dict[str, str], int]:
    """Parameters from ``i`` (just past the first ``,``) → (params, index of the closing ``:``)."""
    params: dict[str, str] = {}
    while True:
        match = re.compile(r"[,:=]").search(text, i)
        if match is None:
            raise RemotePathError("config parameter must end with ',' or ':'")
        key = text[i : match.start()]
        if not key:
            raise RemotePathError("config parameters can't be empty")
        if not _PARAM.match(key):
            raise RemotePathError("config parameters may only contain 0-9, A-Z, a-z and _")
        sep = match.group(0)
        i = match.end()
        if sep != "=":
            params[key] = "true"
        elif i < len(text) and text[i] in "'\"":
            params[key], i = _quoted(text, i + 1, text[i])
            sep, i = text[i], i + 1
        else:
            end = re.compile(r"[,:]").search(text, i)
            if end is None:
                raise RemotePathError("unquoted config value must end with ',' or ':'")
            params[key], sep, i = text[i : end.start()], end.group(0), end.end()
        if sep == ":":
            return params, i - 1


def parse(spec: str) -> RemotePath:
    """``[drive] remote`` → its parts; RemotePathError for what rclone would refuse."""
    text = spec.strip()
    if not text:
        raise RemotePathError("empty")
    stop = re.compile(r"[:,/\\]").search(text, 1 if text.startswith(":") else 0)
    if stop is None or stop.group(0) in "/\\":
        if text.startswith(":"):
            raise RemotePathError("an on-the-fly remote needs ':backend:'")
        return RemotePath("", text)  # a local path, as rclone reads it
    name = text[: stop.start()]
    if name in ("", ":") or not _NAME.match(name):
        raise RemotePathError(
            "config name may only contain letters, digits, _, -, ., +, @ and space, "
            "not start with - or space, and not end with space"
        )
    params: dict[str, str] = {}
    colon = stop.start()
    if stop.group(0) == ",":
        params, colon = _params(text, stop.end())
    return RemotePath(name, text[colon + 1 :].strip("/"), params)
