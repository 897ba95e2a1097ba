"""Did Plex take the changes? Cheap, typed, bounded questions (network only).

Read in python-plexapi (``plexapi/library.py``: ``LibrarySection.recentlyAdded``
is ``search(sort='addedAt:desc', libtype=…)``, i.e. ``GET
/library/sections/{key}/all?type=…&sort=addedAt:desc`` paged with the
``X-Plex-Container-Start`` / ``X-Plex-Container-Size`` headers
(``plexapi/base.py fetchItems``); ``plexapi/media.py``: ``MediaPart.file`` is
the file's path as Plex sees it; ``plexapi/server.py``: ``GET /activities``
lists what runs, ``Activity.type``; ``fetchItems`` of a list of rating keys is
``GET /library/metadata/{k1,k2,…}``):

- per section that should hold a waiting change, the newest items of its
  video type (movies ``type=1``, episodes ``type=4``), at most
  :data:`MAX_PAGES` pages of :data:`PAGE`, stopping at items added before the
  change was sent: bounded however large the section;
- the items graylink already knows, by rating key (a deletion: gone when
  Plex no longer returns it, or returns it in the trash with ``deletedAt``);
- only when a change is due for a re-send: ``/activities`` (a section scan
  that still runs, ``library.update.*``, may still bring the item).

Paths are compared in Plex's view (``[plex] path_map``).
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from graylink.config import PlexConfig
from graylink.notify.changes import ABSENT, PRESENT, SENT, Lookup, Tracked, answers_into, asked_of
from graylink.notify.http import Budget, Client, FailedError, with_tries
from graylink.notify.pathmap import is_under, map_path
from graylink.notify.plex_plan import Section

PAGE = 100
MAX_PAGES = 3  # per section and cycle
MAX_KEYS = 200  # known items asked by rating key per cycle
SECTION_TYPES = {"movie": "1", "show": "4"}  # plexapi utils.SEARCHTYPES: movie 1, episode 4
CLOCK_SLACK = 300.0
SCAN_ACTIVITY = "library.update"


def plex_path(path: bytes, config: PlexConfig) -> str:
    return map_path(os.fsdecode(path), config.path_map)


def parse_container(content_type: str, body: bytes) -> list[dict[str, Any]]:
    """The items of a MediaContainer, JSON or XML, each as ``{ratingKey, addedAt, deletedAt, files, type}``."""
    out: list[dict[str, Any]] = []
    if "json" in content_type:
        doc = json.loads(body) if body else {}
        container = (doc.get("MediaContainer") or {}) if isinstance(doc, dict) else {}
        for item in container.get("Metadata") or container.get("Activity") or container.get("Setting") or []:
            if not isinstance(item, dict):
                continue
            files = [
                str(part.get("file"))
                for media in item.get("Media") or []
                if isinstance(media, dict)
                for part in media.get("Part") or []
                if isinstance(part, dict) and part.get("file")
            ]
            out.append({**{k: v for k, v in item.items() if not isinstance(v, (list, dict))}, "files": files})
        return out
    root = ET.fromstring(body)  # noqa: S314 (Plex's own XML; expat expands no external entities)
    for element in root:
        files = [part.get("file") or "" for part in element.findall("Media/Part")]
        out.append({**element.attrib, "files": [f for f in files if f]})
    return out


def lookup(
    client: Client,
    config: PlexConfig,
    rows: Sequence[Tracked],
    sections: list[Section],
    budget: Budget,
    now: float,
) -> Lookup:
    """What Plex's library says of ``rows`` (changes sent and not yet confirmed)."""
    found = Lookup()
    asked = asked_of(rows)
    if not asked:
        return found
    headers = {"X-Plex-Token": config.token}
    section_types = {s.key: SECTION_TYPES[s.type] for s in sections if s.type in SECTION_TYPES}

    def get(path: str, extra: dict[str, str] | None = None, params: dict[str, str] | None = None) -> list[Any]:
        found.requests += 1

        def call() -> Any:
            return client.request("GET", path, headers={**headers, **(extra or {})}, params=params)

        try:
            response = with_tries(client, budget, "Plex", call)
        except FailedError as exc:
            if "HTTP 404" in str(exc) and path.startswith("/library/metadata/"):
                return []  # none of the keys exists any more
            raise
        try:
            return parse_container(response.headers.get("Content-Type", ""), response.content)
        except (ValueError, ET.ParseError):
            raise FailedError(f"{path} answered neither Plex JSON nor XML") from None

    with answers_into(found, config.token, "token"):
        _by_key(get, config, [r for r in asked if r.item], found)
        present = [r for r in asked if r.expect == PRESENT and r.path not in found.seen]
        _recent(get, config, present, sections, section_types, found)
        due = [r for r in asked if found.due(r, now, config.confirm_wait)]
        for row in due:
            where = plex_path(row.path, config)
            if row.expect == PRESENT and not any(is_under(where, loc) for s in sections for loc in s.locations):
                found.outside[row.path] = where
        if any(r.state == SENT for r in due):
            found.scanning = any(str(a.get("type") or "").startswith(SCAN_ACTIVITY) for a in get("/activities"))
    return found


def _recent(
    get: Any,
    config: PlexConfig,
    rows: list[Tracked],
    sections: list[Section],
    section_types: dict[str, str],
    found: Lookup,
) -> None:
    """Per section holding a waiting change: its newest items, until those added before the change was sent."""
    by_section: dict[str, dict[str, bytes]] = {}
    since: dict[str, float] = {}
    for row in rows:
        where = plex_path(row.path, config)
        for section in sections:
            if section.key in section_types and any(is_under(where, loc) for loc in section.locations):
                by_section.setdefault(section.key, {})[where] = row.path
                since[section.key] = min(since.get(section.key, float("inf")), row.sent_at or float("inf"))
    for key, wanted in by_section.items():
        oldest = since[key] - CLOCK_SLACK
        for page in range(MAX_PAGES):
            items = get(
                f"/library/sections/{key}/all",
                {"X-Plex-Container-Start": str(page * PAGE), "X-Plex-Container-Size": str(PAGE)},
                {"type": section_types[key], "sort": "addedAt:desc"},
            )
            for item in items:
                for file in item.get("files") or []:
                    link = wanted.pop(file, None)
                    if link is not None:
                        found.seen[link] = str(item.get("ratingKey") or "")
            added = [_num(item.get("addedAt")) for item in items]
            if not wanted or len(items) < PAGE or (added and min(added) < oldest):
                break


def _by_key(get: Any, config: PlexConfig, rows: list[Tracked], found: Lookup) -> None:
    rows = [r for r in rows if str(r.item).isdigit()][:MAX_KEYS]
    if not rows:
        return
    items = get("/library/metadata/" + ",".join(str(r.item) for r in rows))
    listed = {
        str(item.get("ratingKey")): item for item in items if not item.get("deletedAt")
    }  # an item in the trash is gone for the user
    for row in rows:
        item = listed.get(str(row.item))
        there = item is not None and plex_path(row.path, config) in (item.get("files") or [])
        if row.expect == ABSENT and not there:
            found.gone.add(row.path)
        elif row.expect == PRESENT and there:
            found.seen[row.path] = str(row.item)


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
