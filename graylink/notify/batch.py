"""Turning queued link changes into the entries of one refresh request (pure).

Queued changes of several runs are merged per path (the latest change wins,
but a path that the server may already know is never reported as new), then
folders with many changes are sent as one folder entry, then paths are
rewritten into the server's view.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from graylink.links.planner import Op
from graylink.notify.pathmap import PathMap, map_path
from graylink.source.sidecars import is_sidecar

CREATED = "Created"
MODIFIED = "Modified"
DELETED = "Deleted"

QUEUED_OPS = (Op.CREATE, Op.REPAIR, Op.PRUNE)


@dataclass(frozen=True, slots=True)
class Entry:
    """One element of ``Updates`` in ``POST /Library/Media/Updated``."""

    path: str
    update_type: str

    def as_json(self) -> dict[str, str]:
        return {"Path": self.path, "UpdateType": self.update_type}


def merge_type(previous: str | None, op: Op) -> str:
    """The update type of a path after ``op``, given what was queued before it.

    A prune always ends as Deleted. A create after anything else is Modified:
    the server may still hold an item for the path (prune then create is a
    replaced file). A repair stays Created when the server never heard of the
    path, since its Created is still queued.
    """
    if op is Op.PRUNE:
        return DELETED
    if op is Op.CREATE:
        return CREATED if previous in (None, CREATED) else MODIFIED
    if op is Op.REPAIR:
        return CREATED if previous == CREATED else MODIFIED
    raise ValueError(f"{op.value} is not a change the media server is told about")


def merge(changes: Iterable[tuple[bytes, Op]]) -> dict[bytes, str]:
    """Per path, the update type after all of ``changes`` (oldest first)."""
    merged: dict[bytes, str] = {}
    for path, op in changes:
        merged[path] = merge_type(merged.get(path), op)
    return merged


def _parent(path: bytes) -> bytes:
    return os.path.dirname(path.rstrip(b"/")) or b"/"


def _blocked(folder: bytes, floors: Iterable[bytes]) -> bool:
    """Whether collapsing into ``folder`` would climb to or above a floor."""
    if folder == b"/":
        return True
    for floor in floors:
        floor = floor.rstrip(b"/") or b"/"
        if floor == folder or floor.startswith(folder.rstrip(b"/") + b"/"):
            return True
    return False


def _folder_type(types: Iterable[str], gone: bool) -> str:
    kinds = set(types)
    if kinds == {DELETED} and gone:
        return DELETED
    if kinds == {CREATED}:
        return CREATED
    return MODIFIED


def collapse(
    updates: Mapping[bytes, str],
    threshold: int,
    floors: Iterable[bytes] = (),
    is_gone: Callable[[bytes], bool] = lambda _path: False,
) -> dict[bytes, str]:
    """Replace the entries of any folder with more than ``threshold`` of them by the folder.

    Repeats upwards, so a show whose seasons each collapsed can collapse into
    the show. Never climbs to ``/`` or to a floor (the link tree's root, the
    roots of the path map): refreshing those is what a library refresh is for.
    A folder entry is Deleted only when all its changes were deletions and
    ``is_gone`` says the folder no longer exists.
    """
    floors = tuple(floors)
    current = dict(updates)
    while True:
        groups: dict[bytes, list[bytes]] = defaultdict(list)
        for path in current:
            groups[_parent(path)].append(path)
        collapsible = {
            folder: members
            for folder, members in groups.items()
            if len(members) > threshold and not _blocked(folder, floors)
        }
        if not collapsible:
            break
        for folder, members in collapsible.items():
            types = [current.pop(member) for member in members]
            if folder in current:
                types.append(current[folder])
            current[folder] = _folder_type(types, is_gone(folder))
    return _drop_covered(current)


def _drop_covered(updates: Mapping[bytes, str]) -> dict[bytes, str]:
    """Drop entries inside a folder that is itself an entry: the folder's refresh covers them."""
    kept: dict[bytes, str] = {}
    for path in sorted(updates):
        if any(path.startswith(folder.rstrip(b"/") + b"/") for folder in kept):
            continue
        kept[path] = updates[path]
    return kept


def fold_sidecars(
    updates: Mapping[bytes, str], floors: Iterable[bytes] = (), is_gone: Callable[[bytes], bool] = lambda _path: False
) -> dict[bytes, str]:
    """Replace each sidecar (a subtitle, an .nfo, artwork: ``[rules] sidecars``) by its folder.

    A sidecar is no item of its own: the server reads it when it looks at its
    video's folder, so the folder is what it is told, once however many
    sidecars changed (and the folder entry covers the video's own entry, see
    ``_drop_covered``). A sidecar right in a floor (the link tree's root, a
    path map root) stays itself: refreshing a floor is a library refresh.
    """
    floors = tuple(floors)
    out: dict[bytes, str] = {}
    folded: dict[bytes, list[str]] = defaultdict(list)
    for path, kind in updates.items():
        folder = _parent(path)
        if is_sidecar(path.rpartition(b"/")[2]) and not _blocked(folder, floors):
            folded[folder].append(kind)
        else:
            out[path] = kind
    # The folder is Created only with a video created in it (a new film with
    # its subtitles); new sidecars beside a known video modify its folder.
    created = {_parent(path) for path, kind in out.items() if kind == CREATED}
    for folder, kinds in folded.items():
        if folder in out:
            kinds.append(out[folder])
        kind = _folder_type(kinds, is_gone(folder))
        out[folder] = MODIFIED if kind == CREATED and folder not in created else kind
    return out


def speakable(path: bytes) -> tuple[bytes, bool]:
    """The nearest ancestor whose path is valid UTF-8, and whether it is ``path`` itself.

    A name that is not UTF-8 cannot be said in JSON (Emby, Jellyfin) or in a
    URL query (Plex); its folder can.
    """
    candidate = path
    while candidate not in (b"", b"/"):
        try:
            candidate.decode("utf-8")
        except UnicodeDecodeError:
            candidate = _parent(candidate)
            continue
        return candidate, candidate == path
    return b"/", path == b"/"


def build_entries(
    updates: Mapping[bytes, str],
    threshold: int,
    path_map: PathMap,
    floors: Iterable[bytes] = (),
    is_gone: Callable[[bytes], bool] = lambda _path: False,
) -> list[Entry]:
    """The request's entries: sidecars folded, collapsed, made sayable in JSON, mapped, sorted."""
    floors = tuple(floors)
    sayable: dict[bytes, str] = {}
    for path, update_type in fold_sidecars(updates, floors, is_gone).items():
        said, same = speakable(path)
        kind = update_type if same else MODIFIED
        previous = sayable.get(said)
        sayable[said] = kind if previous in (None, kind) else MODIFIED
    collapsed = collapse(sayable, threshold, floors, is_gone)
    return [Entry(map_path(os.fsdecode(path), path_map), kind) for path, kind in sorted(collapsed.items())]
