"""A small Emby / Jellyfin server on 127.0.0.1 for tests, answering as upstream does.

It follows, for the routes graylink uses:

- Jellyfin's source: ``Jellyfin.Api/Controllers/LibraryController.cs``
  (``POST /Library/Media/Updated``, ``[Authorize]``, 204; ``POST
  /Library/Refresh``), ``Jellyfin.Api/Controllers/LibraryStructureController.cs``
  (``GET /Library/VirtualFolders`` → ``VirtualFolderInfo[]`` with
  ``Locations``), ``Jellyfin.Api/Controllers/SystemController.cs``
  (``GET /System/Info/Public``, anonymous, PascalCase ``PublicSystemInfo``
  with ``ProductName = "Jellyfin Server"``), and the startup server
  ``Jellyfin.Server/ServerSetupApp/SetupServer.cs``: while the real server is
  not up, ``/System/Info/Public`` answers in ASP.NET's default camelCase with
  ``startupWizardCompleted: false`` and every other route 503 with
  ``Retry-After: 005`` (``starting``). Jellyfin 12 with legacy authorization
  off (migration ``DisableLegacyAuthorization``) accepts the key only as
  ``Authorization: MediaBrowser Token="…"``. ASP.NET routes match case-insensitively.
- Emby's OpenAPI document (dev.emby.media, ``SystemService``
  ``getSystemInfoPublic``: ``PublicSystemInfo`` has no ``ProductName``;
  ``LibraryService`` ``getLibrarySelectablemediafolders``: ``MediaFolder[]``
  with ``SubFolders[].Path``; ``postLibraryMediaUpdated``,
  ``postLibraryRefresh``). The plain ``GET /Library/VirtualFolders`` is not
  in Emby's document, so this Emby answers it 404. Emby takes the key in
  ``X-Emby-Token`` and also answers under ``/emby/…``.

It keeps a library (``media_library.MediaLibrary``, which names the upstream
files it follows): a ``Media/Updated`` path under a library folder is scanned
after ``library.delay`` seconds; ``GET /Items`` answers as
``Jellyfin.Api/Controllers/ItemsController.cs`` with the filters graylink uses
(``Ids``, ``IncludeItemTypes``, ``MinDateLastSaved`` as
``BaseItemRepository.TranslateQuery.cs`` applies it, ``StartIndex``,
``Limit``; ``Fields=Path``) → ``{Items, TotalRecordCount, StartIndex}``. The
scheduled tasks follow ``Jellyfin.Api/Controllers/ScheduledTasksController.cs``
(elevated): ``GET /ScheduledTasks`` → ``TaskInfo[]`` (``Name``, ``State``
Idle|Running|Cancelling, ``Id``, ``Key``, ``Triggers``), ``DELETE
/ScheduledTasks/Running/{Id}`` (204) and ``POST /ScheduledTasks/{Id}/Triggers``
(204), with the library scan task of ``RefreshMediaLibraryTask.cs`` (``Key``
``RefreshLibrary``); a running library scan removes, when it completes, every
item whose file is missing (a dangling link too, since 10.8).

``GET /Environment/DirectoryContents`` follows
``Jellyfin.Api/Controllers/EnvironmentController.cs`` (elevated; ``path``,
``includeFiles``, ``includeDirectories`` → ``FileSystemEntryInfo[]`` with
``Name``, ``Path``, ``Type`` File|Directory, sorted by path); with
``stale_mount`` set, listing fails as a container's dead FUSE mount does (the
IOException "Transport endpoint is not connected" becomes a 500).

With ``plugin`` set, it has the Targeted Scans plugin (d3v1l1989/targeted-scans:
``jellyfin-plugin/Controllers/ScanPathController.cs``,
``jellyfin-plugin/Services/TargetedScanService.cs``,
``emby-plugin/Api/ScanPathService.cs``): ``POST /Library/ScanPaths`` with
``{"Paths": […]}`` scans each path at once and answers 200 ``{"Results":
[{ItemId, ItemName, Status, Path, Message}]}`` — ``Created`` / ``Refreshed``
(the item), ``Removed`` (a path gone whose item it deleted), ``PathNotFound``
(gone, no item), ``ParentNotFound`` (under no library); an empty list is 400.
Without the plugin the route is unknown: 404.

Every request is recorded. Answers to the POST endpoints can be scripted: a
status, extra headers, a delay before answering, or a drip (one byte at a time).
"""

from __future__ import annotations

import json
import os
import re
import select
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from loopback import Loopback, QuietHandler
from media_library import MediaLibrary, iso, parse_iso

SCAN_TASK_ID = "6330ee8fb4a957f33981f4ad3ceb4c0b"
DAILY = [{"Type": "IntervalTrigger", "IntervalTicks": 432000000000}]


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    answered: bool = False  # the answer went to a client still waiting for it


@dataclass
class Answer:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drip: float = 0.0  # > 0: the answer goes out one byte every this many seconds


def drip(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], every: float) -> bool:
    """Answer one byte at a time, ``every`` seconds apart: a read timeout never trips.

    Returns whether the whole answer went out (False: the client hung up).
    """
    head = f"HTTP/1.1 {status} Dripping\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    raw = (head + "Content-Length: 0\r\n\r\n").encode()
    handler.close_connection = True
    for byte in raw:
        try:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
        except OSError:
            return False
        time.sleep(every)
    return True


class FakeMediaServer(Loopback):
    def __init__(
        self, kind: str = "emby", api_key: str = "test-key-1234", locations: list[str] | None = None, port: int = 0
    ):
        self.kind = kind
        self.starting = 0  # Jellyfin: this many more requests are answered by the startup server
        self.api_key = api_key
        self.locations = locations if locations is not None else ["/media/Movies", "/media/TV"]
        self.library = MediaLibrary(self.locations)
        self.scan_state = "Idle"  # the RefreshLibrary task: Idle | Running
        self.scan_started = 0.0
        self.scan_duration = 3600.0  # seconds a library scan runs before it completes
        self.triggers: list[dict[str, Any]] = list(DAILY)
        self.stale_mount = False
        self.plugin = False
        self.requests: list[Recorded] = []
        self.script: deque[Answer] = deque()
        self.lock = threading.Lock()
        self.serve(self._handler(), port)

    def answer(self, *answers: Answer) -> None:
        """Queue answers for the next POSTs; once used up, POSTs get 204."""
        with self.lock:
            self.script.extend(answers)

    def posts(self, path: str | None = None) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.method == "POST" and (path is None or r.path == path)]

    def gets(self, path: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.method == "GET" and r.path.split("?")[0].lower() == path.lower()]

    def start_scan(self, duration: float = 3600.0) -> None:
        """The scheduled library scan starts (RefreshMediaLibraryTask)."""
        with self.lock:
            self.scan_state, self.scan_started, self.scan_duration = "Running", time.time(), duration

    def tick(self) -> None:
        """Due scans; a library scan that completes removes the items whose files are missing."""
        self.library.tick()
        with self.lock:
            done = self.scan_state == "Running" and time.time() >= self.scan_started + self.scan_duration
            if done:
                self.scan_state = "Idle"
        if done:
            for location in self.locations:
                self.library.scan(location)

    def tasks(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {
                    "Name": "Scan Media Library",
                    "State": self.scan_state,
                    "CurrentProgressPercentage": 12.5 if self.scan_state == "Running" else None,
                    "Id": SCAN_TASK_ID,
                    "Triggers": list(self.triggers),
                    "Description": "Scans your media library for new files and refreshes metadata.",
                    "Category": "Library",
                    "IsHidden": False,
                    "Key": "RefreshLibrary",
                },
                {
                    "Name": "Clean Cache Directory",
                    "State": "Idle",
                    "Id": "ccaa4dc8a4d6a1e2b4a3f0d7c96a7e6a",
                    "Triggers": list(DAILY),
                    "Category": "Maintenance",
                    "IsHidden": False,
                    "Key": "DeleteCacheFiles",
                },
            ]

    def items_answer(self, query: dict[str, list[str]]) -> dict[str, Any]:
        """``GET /Items`` (ItemsController.GetItems) with the filters graylink uses."""
        q = {k.lower(): v[0] for k, v in query.items()}
        ids = [i for i in q.get("ids", "").split(",") if i]
        if ids:
            items = [i for i in self.library.items.values() if i.id in ids]
        else:
            kinds = {k for k in q.get("includeitemtypes", "").split(",") if k}
            since = parse_iso(q["mindatelastsaved"]) if "mindatelastsaved" in q else None
            items = self.library.newest_saved(since, kinds)
        start = int(q.get("startindex") or 0)
        limit = int(q["limit"]) if "limit" in q else len(items)
        page = items[start : start + limit]
        fields = {f.lower() for f in q.get("fields", "").split(",")}
        out = []
        for item in page:
            dto: dict[str, Any] = {"Name": item.path.rsplit("/", 1)[-1], "Id": item.id, "Type": item.kind}
            if "path" in fields:
                dto["Path"] = item.path
            if "datecreated" in fields:
                dto["DateCreated"] = iso(item.created_at)
            out.append(dto)
        total = len(items) if q.get("enabletotalrecordcount", "true") != "false" else 0
        return {"Items": out, "TotalRecordCount": total, "StartIndex": start}

    def directory(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        q = {k.lower(): v[0] for k, v in query.items()}
        if self.stale_mount:
            return 500, {"Message": "Transport endpoint is not connected"}
        local = self.library.local(q.get("path", ""))
        try:
            names = sorted(os.listdir(local)) if local else []
        except FileNotFoundError:
            return 404, None
        out = []
        for name in names:
            is_dir = os.path.isdir(os.path.join(str(local), name))
            if (is_dir and q.get("includedirectories") == "true") or (not is_dir and q.get("includefiles") == "true"):
                kind = "Directory" if is_dir else "File"
                out.append({"Name": name, "Path": q["path"].rstrip("/") + "/" + name, "Type": kind})
        return 200, out

    def scan_paths(self, body: Any) -> tuple[int, Any]:
        """TargetedScanService.ScanPathsAsync: distinct paths, shallowest first, each scanned at once."""
        paths = [p for p in (body or {}).get("Paths") or [] if isinstance(p, str) and p.strip()]
        if not paths:
            return 400, {"Results": []}
        results = []
        lib = self.library
        for path in sorted(set(paths), key=lambda p: p.count("/")):
            local = lib.local(path)
            status, item = "Failed", None
            if local is None or not os.path.exists(local):
                gone = lib.items.pop(path, None)
                status, item = ("Removed", gone) if gone else ("PathNotFound", None)
            elif not lib.under_library(path):
                status = "ParentNotFound"
            else:
                existed = path in lib.items
                lib.scan(path)
                item = lib.items.get(path)
                status = "Refreshed" if existed else "Created"
            results.append(
                {
                    "ItemId": item.id if item else "",
                    "ItemName": item.path.rsplit("/", 1)[-1] if item else "",
                    "Status": status,
                    "Path": path,
                    "Message": path,
                }
            )
        return 200, {"Results": results}

    def authorized(self, headers: dict[str, str]) -> bool:
        if self.kind == "jellyfin":
            match = re.fullmatch(r'MediaBrowser\s+Token="([^"]*)"', headers.get("Authorization", ""))
            return bool(match) and match.group(1) == self.api_key  # type: ignore[union-attr]
        return headers.get("X-Emby-Token") == self.api_key

    def public_info(self) -> dict[str, Any]:
        if self.kind == "jellyfin":
            return {
                "LocalAddress": self.url,
                "ServerName": "test-jellyfin",
                "Version": "12.0.0",
                "ProductName": "Jellyfin Server",
                "OperatingSystem": "",
                "Id": "0123456789abcdef",
                "StartupWizardCompleted": True,
            }
        return {
            "LocalAddress": self.url,
            "LocalAddresses": [self.url],
            "WanAddress": "",
            "RemoteAddresses": [],
            "ServerName": "test-emby",
            "Version": "4.8.10.0",
            "Id": "fedcba9876543210",
        }

    def startup_info(self) -> dict[str, Any]:
        """What SetupServer.cs writes: PublicSystemInfo through ASP.NET's web JSON options (camelCase)."""
        return {
            "localAddress": self.url,
            "serverName": "test-jellyfin",
            "version": "12.0.0",
            "productName": "Jellyfin Server",
            "operatingSystem": "",
            "id": "0123456789abcdef",
            "startupWizardCompleted": False,
        }

    def folders(self) -> list[dict[str, Any]]:
        if self.kind == "jellyfin":  # VirtualFolderInfo
            return [
                {
                    "Name": loc.rsplit("/", 1)[-1],
                    "Locations": [loc],
                    "CollectionType": "movies",
                    "LibraryOptions": {},
                    "ItemId": f"{i:032x}",
                    "PrimaryImageItemId": None,
                    "RefreshProgress": None,
                    "RefreshStatus": "Idle",
                }
                for i, loc in enumerate(self.locations)
            ]
        return [  # Emby.Api.Library.MediaFolder
            {
                "Name": loc.rsplit("/", 1)[-1],
                "Id": str(i + 1),
                "Guid": f"{i:032x}",
                "SubFolders": [{"Name": loc.rsplit("/", 1)[-1], "Id": str(100 + i), "Path": loc}],
                "IsUserAccessConfigurable": True,
            }
            for i, loc in enumerate(self.locations)
        ]

    def _starting(self) -> bool:
        with self.lock:
            if self.kind != "jellyfin" or self.starting <= 0:
                return False
            self.starting -= 1
            return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(QuietHandler):
            def _path(self) -> str:
                path = self.path.split("?", 1)[0].lower()  # both servers route case-insensitively
                if server.kind == "emby" and path.startswith("/emby/"):
                    path = path[len("/emby") :]
                return path

            def _startup(self) -> bool:
                """Answer as Jellyfin's startup server does, while it is starting."""
                if not server._starting():
                    return False
                if self._path() == "/system/info/public":
                    self._send(200, server.startup_info())
                else:
                    self._send(503, headers={"Retry-After": "005", "Content-Type": "text/html"})
                return True

            def _record(self, body: Any) -> Recorded:
                record = Recorded(self.command, self.path, dict(self.headers.items()), body)
                with server.lock:
                    server.requests.append(record)
                return record

            def _client_gone(self) -> bool:
                # A client killed while waiting has closed its socket: its end reads as EOF.
                readable, _, _ = select.select([self.connection], [], [], 0)
                if not readable:
                    return False
                try:
                    return self.connection.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    return True

            def _send(self, status: int, payload: Any = None, headers: dict[str, str] | None = None) -> None:
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_body(status, data, "" if payload is None else "application/json", headers)

            def do_GET(self) -> None:
                self._record(None)
                if self._startup():
                    return
                server.tick()
                path = self._path()
                folders = "/library/virtualfolders" if server.kind == "jellyfin" else "/library/selectablemediafolders"
                if path == "/system/info/public":
                    self._send(200, server.public_info())
                    return
                if path not in (folders, "/items", "/scheduledtasks", "/environment/directorycontents"):
                    self._send(404)
                    return
                if not server.authorized(dict(self.headers.items())):
                    self._send(401)
                    return
                if path == folders:
                    self._send(200, server.folders())
                elif path == "/items":
                    self._send(200, server.items_answer(parse_qs(urlsplit(self.path).query)))
                elif path == "/environment/directorycontents":
                    self._send(*server.directory(parse_qs(urlsplit(self.path).query)))
                else:
                    self._send(200, server.tasks())

            def do_DELETE(self) -> None:
                self._record(None)
                path = self._path()
                if not server.authorized(dict(self.headers.items())):
                    self._send(401)
                    return
                if path == f"/scheduledtasks/running/{SCAN_TASK_ID}":
                    with server.lock:
                        server.scan_state = "Idle"  # cancelled: the scan's removals never happen
                    self._send(204)
                elif path.startswith("/scheduledtasks/running/"):
                    self._send(404)
                else:
                    self._send(404)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                record = self._record(body)
                if self._startup():
                    return
                path = self._path()
                if path == f"/scheduledtasks/{SCAN_TASK_ID}/triggers":
                    if not server.authorized(dict(self.headers.items())):
                        self._send(401)
                        return
                    with server.lock:
                        server.triggers = list(body or [])
                    self._send(204)
                    return
                if path == "/library/scanpaths" and server.plugin:
                    if not server.authorized(dict(self.headers.items())):
                        self._send(401)
                        return
                    self._send(*server.scan_paths(body))
                    return
                if path not in ("/library/media/updated", "/library/refresh"):
                    self._send(404)
                    return
                if not server.authorized(dict(self.headers.items())):
                    self._send(401)
                    return
                with server.lock:
                    answer = server.script.popleft() if server.script else Answer()
                if 200 <= answer.status < 300:
                    if path == "/library/refresh":
                        server.library.ask(None)
                    for update in (body or {}).get("Updates") or []:
                        server.library.ask(str(update.get("Path") or ""))
                if answer.delay:
                    time.sleep(answer.delay)
                    if self._client_gone():
                        self.close_connection = True
                        return
                if answer.drip:
                    record.answered = drip(self, answer.status, answer.headers, answer.drip)
                    return
                self._send(answer.status, headers=answer.headers)
                record.answered = True

        return Handler
