"""The kinds of alert ``[alerts] events`` can choose (a small module: the config validates against it)."""

from __future__ import annotations

# name -> what it covers (docs/alerts.md lists the same)
EVENTS: dict[str, str] = {
    "mount": "the mount went down / came back",
    "remount": "a remount attempt failed",
    "brake": "the prune brake is holding prunes back",
    "conflicts": "new conflicts appeared in the link tree",
    "server": "a media server refuses its key or is unreachable / is back",
    "feed": "the Drive feed is refused or failing / is back",
    "cycle": "reconcile cycles keep failing / recovered",
    "stuck": "changes a media server never took into its library (after one re-send)",
    "protect": "a media server's library is protected while the mount is down / released",
    "server_mount": "the media server cannot read the source (a stale mount in its container) / reads it again",
}
