"""Paths that arrive in a request: checked at the edge, then mapped onto the source.

A path from a webhook or ``POST /api/reconcile`` becomes a dirty mark, and a
mark is a path the reconciler lists. So every path is checked before it is
marked: a string (no NUL, no lone surrogate: JSON allows ``\\u0000`` and
``\\ud800``, no file name holds them), at most ``PATH_MAX`` bytes with no
component over ``NAME_MAX``, absolute (or, for ``/api/reconcile``, relative to
the source) and without a ``..`` component (a ``..`` that stays inside is no
more use than the path without it, and one that leaves is an attack).

The *arr's side of ``[web] arr_path_map`` may be a Windows path: Sonarr and
Radarr on Windows send ``D:\\TV\\Show`` or ``\\\\nas\\tv\\Show`` (their Test
event: ``C:\\testpath``). Windows paths compare case-insensitively, with
either separator, as Windows itself does; POSIX paths compare exactly.
"""

from __future__ import annotations

import os
import re

from graylink.config.values import WINDOWS_PATH_RE
from graylink.notify.pathmap import map_path
from graylink.store.db import NAME_MAX, PATH_MAX, normalize_rel
from graylink.system.text import one_line


class PathError(ValueError):
    """A path a request cannot mark: the request is answered, and ignored, with this reason."""


class OutsideSource(PathError):
    """A well-formed path that is not inside the source: another library's source may hold it."""


_SURROGATE = re.compile("[\ud800-\udfff]")
_WIN_SEP = re.compile(r"[\\/]+")


def shown(text: str, limit: int = 200) -> str:
    """A value of a request as one safe log line: control characters and lone surrogates as escapes, cut short."""
    cut = text if len(text) <= limit else text[:limit] + "…"
    return one_line(cut.encode("utf-8", "backslashreplace").decode("utf-8"))


def check_text(path: object) -> str:
    """The path as a string fit to be a file name's path, or :class:`PathError`."""
    if not isinstance(path, str) or not path.strip():
        raise PathError("a path must be a non-empty string")
    if "\x00" in path:
        raise PathError(f"{shown(path)} holds a NUL character")
    if _SURROGATE.search(path):
        raise PathError(f"{shown(path)} holds a lone surrogate (not text)")
    if len(path.encode("utf-8")) > PATH_MAX:
        raise PathError(f"{shown(path)} is longer than {PATH_MAX} bytes")
    return path


def is_windows(path: str) -> bool:
    return WINDOWS_PATH_RE.match(path) is not None


def _win_parts(path: str) -> list[str]:
    """``\\\\nas\\share\\a`` → ``["\\\\", "nas", "share", "a"]``; ``d:/A\\b`` → ``["d:", "A", "b"]``."""
    head = "\\\\" if path.startswith("\\\\") else ""
    return ([head] if head else []) + [p for p in _WIN_SEP.split(path) if p and p != "."]


def _map_windows(path: str, pairs: tuple[tuple[str, str], ...]) -> str:
    parts = _win_parts(path)
    if ".." in parts:
        raise PathError(f"{shown(path)} has a '..' component")
    best: tuple[int, str] | None = None
    for src, dst in pairs:
        if not is_windows(src):
            continue
        prefix = [p.casefold() for p in _win_parts(src)]
        if [p.casefold() for p in parts[: len(prefix)]] == prefix and (best is None or len(prefix) > best[0]):
            best = (len(prefix), dst)
    if best is None:
        return ""
    rest = parts[best[0] :]
    return "/".join([best[1].rstrip("/"), *rest]) if rest else best[1]


def to_source(path: object, arr_path_map: tuple[tuple[str, str], ...], source: str) -> bytes:
    """An *arr path → a subtree relative to the source; :class:`PathError` when it cannot be one."""
    text = check_text(path)
    if is_windows(text):
        mapped = _map_windows(text, arr_path_map)
    elif text.startswith("/"):
        if ".." in text.split("/"):
            raise PathError(f"{shown(text)} has a '..' component")
        posix_pairs = tuple(pair for pair in arr_path_map if not is_windows(pair[0]))
        mapped = map_path(text, posix_pairs)
    else:
        raise PathError(f"{shown(text)} is not an absolute path")
    return _inside(text, mapped, source, hint=not arr_path_map)


def request_path(given: object, source: str) -> bytes:
    """A path of ``POST /api/reconcile`` or ``/api/webhook``: relative to the source, or absolute inside it."""
    text = check_text(given).strip()
    if ".." in text.split("/"):
        raise PathError(f"{shown(text)} has a '..' component")
    if not text.startswith("/"):
        text = source.rstrip("/") + "/" + text
    return _inside(text, text, source, hint=False)


def _inside(given: str, mapped: str, source: str, *, hint: bool) -> bytes:
    root = source.rstrip("/")
    mapped = os.path.normpath(mapped) if mapped else ""
    if not mapped or not (mapped == root or mapped.startswith(root + "/")):
        why = " (set [web] arr_path_map to map the *arr's folders onto the source)" if hint else ""
        raise OutsideSource(f"{shown(given)} is not inside the source {source}{why}")
    rel = normalize_rel(os.fsencode(mapped[len(root) :]))
    if len(os.fsencode(root)) + 1 + len(rel) > PATH_MAX:
        raise PathError(f"{shown(given)} is longer than {PATH_MAX} bytes inside the source")
    if any(len(part) > NAME_MAX for part in rel.split(b"/")):
        raise PathError(f"{shown(given)} has a name longer than {NAME_MAX} bytes")
    return rel
