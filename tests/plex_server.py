"""A small Plex Media Server on 127.0.0.1 for tests, answering as PMS does.

It follows Plex's API documents for the routes graylink uses: the Plex Media
Server API reference (developer.plex.tv/pms: ``GET /identity``, anonymous,
``MediaContainer`` with ``machineIdentifier`` and ``version``; ``GET
/library/sections`` (``/library/sections/all``): ``MediaContainer`` of
``Directory`` elements with ``key``, ``title``, ``type`` and one ``Location``
(``id``, ``path``) per folder of the section; ``GET
/library/sections/{sectionId}/refresh`` with the optional ``path`` (restrict
the scan to that folder) and ``force`` parameters) and Plex's support article
"Plex Media Server URL Commands" (the partial scan ``…/refresh?path=``, the
token as ``X-Plex-Token``). Answers are XML unless the request asks for
``Accept: application/json``, and 401 without the right token, as PMS does.
A scan of a path outside the section's locations is answered 200 and
ignored (recorded as such), which is why graylink must match folders to
sections itself.

It keeps a library (``media_library.MediaLibrary``): a partial scan of a path
inside a section's location adds its files after ``library.delay`` seconds.
Read in python-plexapi: ``GET /library/sections/{key}/all?type=…&sort=addedAt:desc``
paged by the ``X-Plex-Container-Start`` / ``-Size`` headers
(``plexapi/library.py`` ``recentlyAdded`` / ``search``, ``plexapi/base.py``
``fetchItems``) → ``Metadata`` with ``ratingKey``, ``addedAt``, ``Media`` /
``Part`` ``file`` (``plexapi/media.py``); ``GET /library/metadata/{k1,k2}``
(404 when none exists; an item in the trash carries ``deletedAt``); ``GET
/activities`` (``plexapi/server.py`` ``Activity``: ``uuid``, ``type``
``library.update.section``, ``cancellable``, ``title``); ``DELETE
/library/sections/{key}/refresh`` (``LibrarySection.cancelUpdate``); ``GET
/:/prefs`` (``Setting`` ``id``, ``value``) and ``PUT /:/prefs?name=value``
(``plexapi/settings.py`` ``Settings.save``), with ``autoEmptyTrash``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import quoteattr

from emby_server import drip
from loopback import Loopback, QuietHandler
from media_library import MediaLibrary

MACHINE = "0123456789abcdef0123456789abcdef01234567"
VERSION = "1.41.3.9314-a0bfb8370"


@dataclass(frozen=True)
class PlexSection:
    key: str
    title: str
    type: str
    locations: tuple[str, ...]


@dataclass
class Scan:
    section: str
    path: str | None  # None: the whole section
    ignored: bool  # the path is under none of the section's locations
    headers: dict[str, str] = field(default_factory=dict)
    url: str = ""
    at: float = field(default_factory=time.monotonic)  # when Plex took it


@dataclass
class PlexAnswer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    drip: float = 0.0


class FakePlex(Loopback):
    def __init__(self, token: str, sections: list[PlexSection] | None = None, port: int = 0) -> None:
        self.token = token
        self.sections = sections or [
            PlexSection("1", "Movies", "movie", ("/data/Movies",)),
            PlexSection("2", "TV Shows", "show", ("/data/TV", "/data/More TV")),
        ]
        self.library = MediaLibrary([loc for sec in self.sections for loc in sec.locations])
        self.running: dict[str, float] = {}  # section key -> when its (whole) scan completes
        self.prefs: dict[str, Any] = {"autoEmptyTrash": True, "FriendlyName": "test-plex"}
        self.cancelled: list[str] = []
        self.scans: list[Scan] = []
        self.urls: list[str] = []  # every request line's target, to check that no token is in a URL
        self.script: deque[PlexAnswer] = deque()
        self.lock = threading.Lock()
        self.serve(self._handler(), port)

    def answer(self, *answers: PlexAnswer) -> None:
        """Queue answers for the next refresh requests; once used up, they get 200."""
        with self.lock:
            self.script.extend(answers)

    def scanned(self) -> list[tuple[str, str | None]]:
        with self.lock:
            return [(s.section, s.path) for s in self.scans]

    def start_scan(self, key: str, duration: float = 3600.0) -> None:
        with self.lock:
            self.running[key] = time.time() + duration

    def tick(self) -> None:
        """Due partial scans; a section scan that completes removes (or trashes) what is missing."""
        self.library.empty_trash = bool(self.prefs["autoEmptyTrash"])
        self.library.tick()
        with self.lock:
            done = [k for k, end in self.running.items() if end <= time.time()]
            for key in done:
                del self.running[key]
        for key in done:
            section = next(s for s in self.sections if s.key == key)
            for loc in section.locations:
                self.library.scan(loc, section.locations)

    def section_items(self, key: str, start: int, size: int) -> dict[str, Any]:
        section = next(s for s in self.sections if s.key == key)
        items = [
            i for i in self.library.newest_saved(None, None) if self.library.under_library(i.path, section.locations)
        ]
        return self._items_doc(items[start : start + size], len(items))

    def _items_doc(self, items: list[Any], total: int) -> dict[str, Any]:
        metadata = []
        for item in items:
            entry: dict[str, Any] = {
                "ratingKey": item.id,
                "key": f"/library/metadata/{item.id}",
                "type": "episode" if item.kind == "Episode" else "movie",
                "title": item.path.rsplit("/", 1)[-1],
                "addedAt": int(item.saved_at),
                "Media": [{"id": int(item.id), "Part": [{"id": int(item.id), "file": item.path}]}],
            }
            if item.deleted_at is not None:
                entry["deletedAt"] = int(item.deleted_at)
            metadata.append(entry)
        return {"size": len(metadata), "totalSize": total, "Metadata": metadata}

    def activities(self) -> dict[str, Any]:
        with self.lock:
            running = list(self.running)
        acts = [
            {"uuid": f"0000-{key}", "type": "library.update.section", "cancellable": True, "title": "Scanning"}
            for key in running
        ]
        return {"size": len(acts), "Activity": acts}

    # -- documents

    def identity(self) -> dict[str, Any]:
        return {"size": 0, "claimed": True, "machineIdentifier": MACHINE, "version": VERSION}

    def sections_doc(self) -> dict[str, Any]:
        return {
            "size": len(self.sections),
            "allowSync": False,
            "title1": "Plex Library",
            "Directory": [
                {
                    "allowSync": True,
                    "key": s.key,
                    "type": s.type,
                    "title": s.title,
                    "agent": "tv.plex.agents.movie" if s.type == "movie" else "tv.plex.agents.series",
                    "scanner": "Plex Movie" if s.type == "movie" else "Plex TV Series",
                    "language": "en-US",
                    "uuid": f"{int(s.key):08x}-0000-0000-0000-000000000000",
                    "Location": [{"id": int(s.key) * 10 + i, "path": loc} for i, loc in enumerate(s.locations)],
                }
                for s in self.sections
            ],
        }

    @staticmethod
    def to_xml(doc: dict[str, Any]) -> bytes:
        """A MediaContainer document as PMS writes it: attributes, with child elements for lists."""

        def element(name: str, values: dict[str, Any]) -> str:
            attrs = "".join(f" {k}={quoteattr(_xml_value(v))}" for k, v in values.items() if not isinstance(v, list))
            children = "".join(element(k, child) for k, v in values.items() if isinstance(v, list) for child in v)
            return f"<{name}{attrs}>{children}</{name}>" if children else f"<{name}{attrs} />"

        return ('<?xml version="1.0" encoding="UTF-8"?>\n' + element("MediaContainer", doc) + "\n").encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(QuietHandler):
            def _token(self, query: dict[str, list[str]]) -> str:
                return self.headers.get("X-Plex-Token") or (query.get("X-Plex-Token") or [""])[0]

            def _send(self, status: int, doc: dict[str, Any] | None = None) -> None:
                if doc is None:
                    data, kind = b"", "text/html"
                    if status == 401:
                        data = b"<html><head><title>Unauthorized</title></head><body><h1>401 Unauthorized</h1>"
                        data += b"</body></html>"
                elif "application/json" in (self.headers.get("Accept") or ""):
                    data, kind = json.dumps({"MediaContainer": doc}).encode(), "application/json"
                else:
                    data, kind = server.to_xml(doc), "text/xml;charset=utf-8"
                self.send_body(status, data, kind)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                with server.lock:
                    server.urls.append(self.path)
                path = parts.path.rstrip("/")
                if path == "/identity":
                    self._send(200, server.identity())
                    return
                if self._token(query) != server.token:
                    self._send(401)
                    return
                server.tick()
                if path in ("/library/sections", "/library/sections/all"):
                    self._send(200, server.sections_doc())
                    return
                if path == "/activities":
                    self._send(200, server.activities())
                    return
                if path == "/:/prefs":
                    settings = [
                        {"id": k, "value": v, "type": "bool" if isinstance(v, bool) else "text"}
                        for k, v in server.prefs.items()
                    ]
                    self._send(200, {"size": len(settings), "Setting": settings})
                    return
                pieces = path.split("/")
                if len(pieces) == 5 and pieces[1:3] == ["library", "sections"] and pieces[4] == "all":
                    start = int(self.headers.get("X-Plex-Container-Start") or 0)
                    size = int(self.headers.get("X-Plex-Container-Size") or 1000000)
                    self._send(200, server.section_items(pieces[3], start, size))
                    return
                if len(pieces) == 4 and pieces[1:3] == ["library", "metadata"]:
                    keys = pieces[3].split(",")
                    found = [i for i in server.library.items.values() if i.id in keys]
                    if found:
                        self._send(200, server._items_doc(found, len(found)))
                    else:
                        self._send(404)
                    return
                if len(pieces) == 5 and pieces[1:3] == ["library", "sections"] and pieces[4] == "refresh":
                    self._refresh(pieces[3], (query.get("path") or [None])[0])
                    return
                self._send(404)

            def do_DELETE(self) -> None:
                parts = urlsplit(self.path)
                pieces = parts.path.rstrip("/").split("/")
                if self._token(parse_qs(parts.query)) != server.token:
                    self._send(401)
                    return
                if len(pieces) == 5 and pieces[1:3] == ["library", "sections"] and pieces[4] == "refresh":
                    with server.lock:
                        server.running.pop(pieces[3], None)
                        server.cancelled.append(pieces[3])
                    self._send(200, {"size": 0})
                    return
                self._send(404)

            def do_PUT(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                if self._token(query) != server.token:
                    self._send(401)
                    return
                if parts.path == "/:/prefs":
                    with server.lock:
                        for name, values in query.items():
                            if name in server.prefs and isinstance(server.prefs[name], bool):
                                server.prefs[name] = values[0] in ("1", "true")
                            elif name in server.prefs:
                                server.prefs[name] = values[0]
                    self._send(200, {"size": 0})
                    return
                self._send(404)

            def _refresh(self, key: str, path: str | None) -> None:
                section = next((s for s in server.sections if s.key == key), None)
                if section is None:
                    self._send(404)
                    return
                with server.lock:
                    answer = server.script.popleft() if server.script else PlexAnswer()
                if answer.drip:
                    drip(self, answer.status, answer.headers, answer.drip)
                    return
                if 200 <= answer.status < 300:
                    inside = path is None or any(
                        path == loc or path.startswith(loc.rstrip("/") + "/") for loc in section.locations
                    )
                    with server.lock:
                        server.scans.append(Scan(key, path, not inside, dict(self.headers.items()), self.path))
                    if inside:
                        server.library.ask(path, section.locations)
                self.send_body(answer.status, b"", "", answer.headers)

        return Handler


def _xml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())
