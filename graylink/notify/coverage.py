"""Does a media server's library cover the link tree? (``graylink doctor``, for every server.)

A server ignores updates for paths under none of its library folders (Emby,
Jellyfin) or sections (Plex). The link tree's root and each of its top-level
folders are mapped into the server's view with its ``path_map`` and looked
up among the server's folders.
"""

from __future__ import annotations

import os

from graylink.checks import N_, Check, said
from graylink.links.tree import MARKER_DIR
from graylink.notify.pathmap import PathMap, is_under, map_path


def top_folders(target: str) -> list[str]:
    """The link tree's top-level folders, without graylink's own marker folder (it never holds links)."""
    marker = os.fsdecode(MARKER_DIR)
    try:
        with os.scandir(target) as listing:
            return sorted(
                entry.path for entry in listing if entry.is_dir(follow_symlinks=False) and entry.name != marker
            )
    except OSError:
        return []


def coverage_checks(name: str, target: str, pairs: PathMap, locations: list[str], section: str) -> list[Check]:
    """Warn when the server would ignore updates: mapped link-tree folders under no library location.

    ``name`` prefixes the check (``emby``, ``plex``); ``section`` names the
    config section whose ``path_map`` is the fix.
    """
    root = map_path(target, pairs)
    hint = said(
        N_("add the folder to a library, or fix [%(section)s] path_map (link tree path=server path)"), section=section
    )
    if not any(is_under(loc, root) or is_under(root, loc) for loc in locations):
        shown = ", ".join(locations) or said(N_("none"))
        return [
            Check(
                f"{name}.paths",
                False,
                said(
                    N_(
                        "the link tree is %(root)s for the server, but no library lies there"
                        " (library folders: %(shown)s)"
                    ),
                    root=root,
                    shown=shown,
                ),
                hint,
                warn=True,
            )
        ]
    uncovered = []
    for top in top_folders(target):
        mapped = map_path(top, pairs)
        if not any(is_under(mapped, loc) or is_under(loc, mapped) for loc in locations):
            uncovered.append(mapped)
    if uncovered:
        return [
            Check(
                f"{name}.paths",
                False,
                said(
                    N_("updates for %(folders)s would be ignored: under no library folder"),
                    folders=", ".join(uncovered),
                ),
                hint,
                warn=True,
            )
        ]
    covered = said(N_("the link tree (%(root)s for the server) is covered by the libraries"), root=root)
    return [Check(f"{name}.paths", True, covered)]
