"""Which partial scans tell Plex about a set of queued link changes (pure).

Plex scans folders, not files: each change becomes the folder that holds its
link (a folder that is gone becomes the nearest one still there, a folder
whose name is not UTF-8 the nearest one whose name is), folders
with many changed siblings collapse into their parent (the rule of
``collapse_threshold``, as for Emby), each folder is mapped into Plex's view
with ``[plex] path_map`` and matched to the section(s) whose ``Location``
holds it. A section that would get more than ``max_scans`` scans gets one
section refresh instead. A folder under no section is never sent: it is
reported (as Plex would see it) and dropped.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from graylink.config import PlexConfig
from graylink.notify.batch import MODIFIED, collapse, speakable
from graylink.notify.pathmap import is_under, map_path
from graylink.notify.queue import Queued


@dataclass(frozen=True)
class Section:
    key: str  # the section's id in /library/sections/{key}/refresh
    title: str
    locations: tuple[str, ...]
    type: str = ""  # movie | show | artist | photo


@dataclass(frozen=True)
class Scan:
    section: Section
    path: str | None  # None: the whole section

    def describe(self) -> str:
        where = self.path if self.path is not None else "the whole section"
        return f"section {self.section.key} ({self.section.title}): {where}"


@dataclass
class PlexPlan:
    scans: list[Scan] = field(default_factory=list)
    rows_of: dict[int, set[int]] = field(default_factory=dict)  # scan index -> queue row ids it covers
    uncovered: dict[str, list[int]] = field(default_factory=dict)  # Plex path -> row ids under no section
    section_refreshes: list[Section] = field(default_factory=list)  # sections over max_scans

    def rows_done(self, done_scans: Iterable[int], all_rows: Iterable[int]) -> list[int]:
        """Rows every one of whose scans succeeded (a row is in as many scans as sections hold it)."""
        done = set(done_scans)
        needed: dict[int, set[int]] = defaultdict(set)
        for index, rows in self.rows_of.items():
            for row in rows:
                needed[row].add(index)
        return [row for row in all_rows if row in needed and needed[row] <= done]


def _parent(path: bytes) -> bytes:
    return os.path.dirname(path.rstrip(b"/")) or b"/"


def _existing_folder(path: bytes, root: bytes, exists: Callable[[bytes], bool]) -> bytes:
    """The folder holding ``path``, or its nearest ancestor still there (never above ``root``)."""
    folder = _parent(path)
    while folder != root and len(folder) > len(root) and not exists(folder):
        folder = _parent(folder)
    return folder


def changed_folders(
    rows: list[Queued], config: PlexConfig, tree_root: bytes, exists: Callable[[bytes], bool]
) -> dict[bytes, set[int]]:
    """The link-tree folders to scan, collapsed, each with the queue rows it covers."""
    root = tree_root.rstrip(b"/") or b"/"
    folders: dict[bytes, set[int]] = defaultdict(set)
    for row in rows:
        # A folder whose name is not UTF-8 cannot be put in the scan's query: its nearest sayable ancestor is.
        folder, _same = speakable(_existing_folder(row.path, root, exists))
        folders[folder].add(row.id)
    floors = [root, *(os.fsencode(src) for src, _ in config.path_map)]
    # A floor itself may be scanned (changes right under the tree's root), but never climbed above.
    kept = collapse(dict.fromkeys(folders, MODIFIED), config.collapse_threshold, floors)
    out: dict[bytes, set[int]] = defaultdict(set)
    for folder, ids in folders.items():
        cover = next((k for k in kept if k == folder or folder.startswith(k.rstrip(b"/") + b"/")), folder)
        out[cover] |= ids
    return dict(out)


def match(plex_path: str, sections: list[Section]) -> list[Scan]:
    """The scans that cover ``plex_path``: inside a location, or a location inside it."""
    scans: list[Scan] = []
    for section in sections:
        for location in section.locations:
            if is_under(plex_path, location):
                scans.append(Scan(section, plex_path))
            elif is_under(location, plex_path):
                scans.append(Scan(section, location.rstrip("/") or "/"))
    return scans


def plan_scans(
    rows: list[Queued],
    sections: list[Section],
    config: PlexConfig,
    tree_root: bytes,
    exists: Callable[[bytes], bool] = os.path.lexists,
) -> PlexPlan:
    plan = PlexPlan()
    by_scan: dict[Scan, set[int]] = defaultdict(set)
    for folder, ids in sorted(changed_folders(rows, config, tree_root, exists).items()):
        plex_path = map_path(os.fsdecode(folder), config.path_map)
        scans = match(plex_path, sections)
        if not scans:
            plan.uncovered.setdefault(plex_path, []).extend(sorted(ids))
        for scan in scans:
            by_scan[scan] |= ids
    per_section: dict[str, list[Scan]] = defaultdict(list)
    for scan in by_scan:
        per_section[scan.section.key].append(scan)
    for scans in per_section.values():
        if len(scans) > config.max_scans:
            whole = Scan(scans[0].section, None)
            plan.section_refreshes.append(whole.section)
            by_scan[whole] = set().union(*(by_scan.pop(scan) for scan in scans))
    for index, (scan, ids) in enumerate(sorted(by_scan.items(), key=lambda item: _order(item[0]))):
        plan.scans.append(scan)
        plan.rows_of[index] = ids
    return plan


def _order(scan: Scan) -> tuple[str, str]:
    return scan.section.key, scan.path or ""
