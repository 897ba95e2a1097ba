"""Rewrite link-tree paths into the media server's view (``[emby] path_map``).

A media server in a container usually sees the link tree under another path
(``/srv/links`` on the host is ``/media`` inside). Prefixes match whole path
components, so ``/links`` never rewrites ``/links2/x``, and the longest
prefix wins so nested mounts can be mapped separately.
"""

from __future__ import annotations

from collections.abc import Iterable

PathMap = tuple[tuple[str, str], ...]


def _under(path: str, prefix: str) -> bool:
    if prefix == "/":
        return path.startswith("/")
    return path == prefix or path.startswith(prefix + "/")


def ordered(pairs: Iterable[tuple[str, str]]) -> PathMap:
    """The pairs, longest source prefix first (stable for equal lengths)."""
    return tuple(sorted(pairs, key=lambda pair: len(pair[0].rstrip("/")), reverse=True))


def map_path(path: str, pairs: PathMap) -> str:
    """``path`` as the server sees it; unchanged when no prefix matches."""
    for src, dst in ordered(pairs):
        src = src.rstrip("/") or "/"
        if not _under(path, src):
            continue
        rest = path[len(src) :] if src != "/" else path[1:]
        rest = rest.lstrip("/")
        base = dst.rstrip("/") or "/"
        if not rest:
            return base
        return base + rest if base == "/" else base + "/" + rest
    return path


def is_under(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies below it, by whole components."""
    return _under(path.rstrip("/") or "/", folder.rstrip("/") or "/")
