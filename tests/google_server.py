"""A loopback Google for tests: OAuth, Drive Activity v2, Drive v3 ``files`` and ``changes``.

It speaks the real wire protocol (paths, JSON shapes, error bodies) so that the
real googleapiclient and google-auth drive it, and it enforces scopes the way
Google does: ``activity:query`` answers 403 insufficientPermissions to a token
without a drive.activity scope, ``files.get`` wants a drive or metadata scope.
The Drive is a dict of items; every change made through the helpers is also
recorded as an activity in the v2 shape, at a timestamp the test may choose,
and in the change log that ``changes.list`` reads (``tests/google_changes.py``,
after the drive v3 discovery document that googleapiclient ships).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.google_changes import ChangeLog, ChangesRoutes, discovery_scopes
from tests.google_oauth import JwtGrant, OAuthRoutes

FOLDER_MIME = "application/vnd.google-apps.folder"
SHORTCUT_MIME = "application/vnd.google-apps.shortcut"
SCOPE = "https://www.googleapis.com/auth/"
ACTIVITY_SCOPES = {SCOPE + "drive.activity", SCOPE + "drive.activity.readonly"}
FILES_SCOPES = {SCOPE + s for s in ("drive", "drive.readonly", "drive.metadata", "drive.metadata.readonly")}
MY_DRIVE_ROOT = "0AMyDriveRootFolder"


@dataclass
class Item:
    id: str
    name: str
    parents: list[str]
    mime: str
    trashed: bool = False
    drive_id: str = ""  # a shared drive's ID, "" for My Drive
    target: str = ""  # a shortcut's target (Drive v3 File.shortcutDetails.targetId)
    target_mime: str = ""

    @property
    def folder(self) -> bool:
        return self.mime == FOLDER_MIME


@dataclass
class AccessToken:
    scopes: set[str]
    expires: float


@dataclass
class Recorded:
    time_ms: int
    ancestors: set[str]
    body: dict[str, Any]


@dataclass
class ServiceAccount:
    email: str
    key_id: str
    public_key_pem: bytes


@dataclass
class GoogleState:
    clients: dict[str, str] = field(default_factory=dict)  # client_id -> secret
    service_accounts: dict[str, ServiceAccount] = field(default_factory=dict)  # client_email -> account
    jwt_grants: list[JwtGrant] = field(default_factory=list)
    refresh_tokens: dict[str, set[str]] = field(default_factory=dict)  # refresh token -> scopes
    access_tokens: dict[str, AccessToken] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    items: dict[str, Item] = field(default_factory=dict)
    activities: list[Recorded] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    changes: ChangeLog = field(default_factory=ChangeLog)
    token_garbage: int = 0  # token endpoint answers that are not JSON
    activity_garbage: int = 0  # activity:query answers that are not JSON
    fail_queries: list[int] = field(default_factory=list)  # statuses to answer the next activity queries
    queries: list[tuple[str, str]] = field(default_factory=list)  # each activity:query's (ancestorName, filter)
    hold_files_get: threading.Event | None = None  # when set, files.get waits for it to be set
    files_get_reached: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakeGoogle:
    """The server plus helpers that change the Drive and record activities."""

    def __init__(self) -> None:
        self.state = GoogleState()
        self._ids = itertools.count(1)
        self.state.items[MY_DRIVE_ROOT] = Item(MY_DRIVE_ROOT, "My Drive", [], FOLDER_MIME)
        handler = type("Handler", (_Handler,), {"google": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # -- lifecycle

    def __enter__(self) -> FakeGoogle:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.state.hold_files_get is not None:
            self.state.hold_files_get.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def calls(self, name: str) -> int:
        return self.state.calls.get(name, 0)

    # -- credentials

    def add_client(self, client_id: str, secret: str) -> None:
        self.state.clients[client_id] = secret

    def add_service_account(self, email: str, key_id: str, public_key_pem: bytes) -> None:
        self.state.service_accounts[email] = ServiceAccount(email, key_id, public_key_pem)

    def grant(self, refresh_token: str, scopes: list[str]) -> None:
        self.state.refresh_tokens[refresh_token] = {_full(s) for s in scopes}

    def issue_access_token(self, scopes: list[str], lifetime: float = 3600) -> str:
        token = f"fake-access-{next(self._ids)}"
        self.state.access_tokens[token] = AccessToken({_full(s) for s in scopes}, time.time() + lifetime)
        return token

    # -- the Drive

    def new_id(self, prefix: str = "id") -> str:
        return f"{prefix}{next(self._ids):05d}"

    def add(
        self,
        name: str,
        parent: str,
        *,
        folder: bool = False,
        record: bool = True,
        at_ms: int | None = None,
        item_id: str | None = None,
        drive_id: str = "",
    ) -> str:
        item = Item(
            item_id or self.new_id("f" if folder else "v"),
            name,
            [parent],
            FOLDER_MIME if folder else "video/x-matroska",
            drive_id=drive_id,
        )
        self.state.items[item.id] = item
        if record:
            self._record(item, {"create": {"new": {}}}, at_ms)
        return item.id

    def add_shortcut(self, name: str, parent: str, target: str, *, record: bool = True) -> str:
        """A shortcut (mimeType application/vnd.google-apps.shortcut) to ``target``."""
        kind = self.state.items[target].mime
        item = Item(self.new_id("s"), name, [parent], SHORTCUT_MIME, target=target, target_mime=kind)
        self.state.items[item.id] = item
        if record:
            self._record(item, {"create": {"new": {}}}, None)
        return item.id

    def add_shared_drive(self, drive_id: str, name: str) -> None:
        """A shared drive: its root folder's ID is the drive's ID."""
        self.state.items[drive_id] = Item(drive_id, name, [], FOLDER_MIME, drive_id=drive_id)

    def file_resource(self, item: Item) -> dict[str, Any]:
        """A Drive v3 File with the fields graylink asks for."""
        payload: dict[str, Any] = {"id": item.id, "name": item.name, "mimeType": item.mime, "trashed": item.trashed}
        if item.parents:
            payload["parents"] = list(item.parents)
        if item.drive_id:
            payload["driveId"] = item.drive_id
        if item.target:
            payload["shortcutDetails"] = {"targetId": item.target, "targetMimeType": item.target_mime}
        return payload

    def untrash(self, item_id: str, at_ms: int | None = None) -> None:
        item = self.state.items[item_id]
        item.trashed = False
        self._record(item, {"restore": {"type": "UNTRASH"}}, at_ms)

    def rename(self, item_id: str, new_name: str, at_ms: int | None = None) -> None:
        item = self.state.items[item_id]
        old = item.name
        item.name = new_name
        self._record(item, {"rename": {"oldTitle": old, "newTitle": new_name}}, at_ms)

    def move(self, item_id: str, new_parent: str, at_ms: int | None = None) -> None:
        item = self.state.items[item_id]
        old_parents = list(item.parents)
        extra = set().union(*(self.ancestors(p) | {p} for p in old_parents))
        item.parents = [new_parent]
        detail = {
            "move": {
                "addedParents": [self._ref(new_parent)],
                "removedParents": [self._ref(p) for p in old_parents],
            }
        }
        self._record(item, detail, at_ms, extra_ancestors=extra)

    def trash(self, item_id: str, at_ms: int | None = None) -> None:
        item = self.state.items[item_id]
        item.trashed = True
        self._record(item, {"delete": {"type": "TRASH"}}, at_ms)

    def delete_forever(self, item_id: str, at_ms: int | None = None) -> None:
        item = self.state.items[item_id]
        ancestors = self.ancestors(item_id)
        del self.state.items[item_id]
        self._record(item, {"delete": {"type": "PERMANENT_DELETE"}}, at_ms, extra_ancestors=ancestors, removed=True)

    def edit(self, item_id: str, at_ms: int | None = None) -> None:
        self._record(self.state.items[item_id], {"edit": {}}, at_ms)

    def comment(self, item_id: str, at_ms: int | None = None) -> None:
        self._record(self.state.items[item_id], {"comment": {"post": {"subtype": "ADDED"}}}, at_ms)

    def ancestors(self, item_id: str) -> set[str]:
        out: set[str] = set()
        current = self.state.items.get(item_id)
        while current is not None and current.parents and current.parents[0] not in out:
            out.add(current.parents[0])
            current = self.state.items.get(current.parents[0])
        return out

    def in_my_drive(self, item_id: str) -> bool:
        """Whether the item lies in the My Drive hierarchy (a file shared with the user and not
        added to My Drive has no parent there)."""
        return item_id == MY_DRIVE_ROOT or MY_DRIVE_ROOT in self.ancestors(item_id)

    def _ref(self, item_id: str) -> dict[str, Any]:
        item = self.state.items[item_id]
        if item.drive_id and item.id == item.drive_id:  # a shared drive's root: a DriveReference
            return {"drive": {"name": f"drives/{item.id}", "title": item.name}}
        return {
            "driveItem": {
                "name": f"items/{item.id}",
                "title": item.name,
                "driveFolder": {"type": "STANDARD_FOLDER"},
                "folder": {"type": "STANDARD_FOLDER"},
            }
        }

    def _target(self, item: Item) -> dict[str, Any]:
        drive_item: dict[str, Any] = {
            "name": f"items/{item.id}",
            "title": item.name,
            "mimeType": item.mime,
            "owner": {"user": {"knownUser": {"personName": "people/1", "isCurrentUser": True}}},
        }
        if item.folder:
            drive_item.update(driveFolder={"type": "STANDARD_FOLDER"}, folder={"type": "STANDARD_FOLDER"})
        else:
            drive_item.update(driveFile={}, file={})
        return {"driveItem": drive_item}

    def _record(
        self,
        item: Item,
        detail: dict[str, Any],
        at_ms: int | None,
        extra_ancestors: set[str] | None = None,
        removed: bool = False,
    ) -> None:
        when = at_ms if at_ms is not None else int(time.time() * 1000)
        if "comment" not in detail:  # comments are no change of the file itself
            with self.state.lock:
                self.state.changes.add(item.id, _rfc3339(when), removed, item.drive_id)
        body = {
            "primaryActionDetail": detail,
            "actors": [{"user": {"knownUser": {"personName": "people/1", "isCurrentUser": True}}}],
            "actions": [{"detail": detail}],
            "targets": [self._target(item)],
            "timestamp": _rfc3339(when),
        }
        ancestors = self.ancestors(item.id) | {item.id} | (extra_ancestors or set())
        self.state.activities.append(Recorded(when, ancestors, body))


def _full(scope: str) -> str:
    return scope if scope.startswith("https://") else SCOPE + scope


def _rfc3339(ms: int) -> str:
    stamp = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


_OPS = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def _parse_time_filter(text: str) -> list[tuple[str, int]]:
    """The ``time`` expressions of a QueryDriveActivityRequest filter, joined by "AND" (Google's
    documented form: ``time > 1452409200000 AND time <= 1492812924310``, or RFC 3339 values)."""
    out = []
    for part in re.split(r"\s+AND\s+", text.strip()):
        match = re.fullmatch(r'\s*time\s*(>=|>|<=|<)\s*(?:(\d+)|"([^"]+)")\s*', part)
        if not match:
            raise ValueError(text)
        op, ms, rfc = match.groups()
        if ms is None:
            ms = round(dt.datetime.fromisoformat(rfc.replace("Z", "+00:00")).timestamp() * 1000)
        out.append((op, int(ms)))
    return out


class _Handler(OAuthRoutes, ChangesRoutes, BaseHTTPRequestHandler):
    google: FakeGoogle
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing

    def _send(self, status: int, payload: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_raw(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _allowed(self, method: str, resource: str = "changes") -> bool:
        """A valid token carrying one of the scopes the discovery document names for the method."""
        scopes = self._token_scopes()
        if scopes is None:
            return False
        if not scopes & discovery_scopes(resource, method):
            self._insufficient()
            return False
        return True

    def _error(
        self,
        status: int,
        message: str,
        reason: str,
        status_text: str,
        detail: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        error: dict[str, Any] = {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": status_text,
        }
        if detail:
            error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": detail}]
        self._send(status, {"error": error}, headers)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _count(self, name: str) -> None:
        with self.google.state.lock:
            self.google.state.calls[name] = self.google.state.calls.get(name, 0) + 1

    def _token_scopes(self) -> set[str] | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            self._error(401, "Request is missing required authentication credential.", "required", "UNAUTHENTICATED")
            return None
        token = self.google.state.access_tokens.get(header[len("Bearer ") :])
        if token is None or token.expires <= time.time():
            self._error(401, "Request had invalid authentication credentials.", "authError", "UNAUTHENTICATED")
            return None
        return token.scopes

    def _insufficient(self) -> None:
        self._error(
            403,
            "Request had insufficient authentication scopes.",
            "insufficientPermissions",
            "PERMISSION_DENIED",
            "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
        )

    # -- routes

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/auth":
            self._count("auth")
            self._auth(query)
        elif url.path == "/drive/v3/changes/startPageToken":
            self._count("changes.getStartPageToken")
            self._changes_start(query)
        elif url.path == "/drive/v3/changes":
            self._count("changes.list")
            self._changes_list(query)
        elif url.path.startswith("/drive/v3/files/"):
            self._count("files.get")
            self._files_get(urllib.parse.unquote(url.path[len("/drive/v3/files/") :]))
        elif url.path == "/drive/v3/files":
            self._count("files.list")
            self._files_list(query)
        else:
            self._error(404, "Not Found", "notFound", "NOT_FOUND")

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/token":
            self._count("token")
            with self.google.state.lock:
                garbage = self.google.state.token_garbage > 0
                self.google.state.token_garbage -= 1 if garbage else 0
            if garbage:
                self._send_raw(200, b"<html>502 Bad Gateway</html>")
                return
            self._token(dict(urllib.parse.parse_qsl(self._body().decode())))
        elif url.path == "/v2/activity:query":
            self._count("activity.query")
            self._activity_query(self._body())
        else:
            self._error(404, "Not Found", "notFound", "NOT_FOUND")

    # -- Drive Activity

    def _activity_query(self, raw: bytes) -> None:
        scopes = self._token_scopes()
        if scopes is None:
            return
        if not scopes & ACTIVITY_SCOPES:
            self._insufficient()
            return
        state = self.google.state
        with state.lock:
            forced = state.fail_queries.pop(0) if state.fail_queries else None
            garbage = state.activity_garbage > 0
            state.activity_garbage -= 1 if garbage else 0
        if garbage:
            self._send_raw(200, b"<html>Service temporarily unavailable</html>")
            return
        if forced is not None:
            self._error(forced, "Backend Error", "backendError", "UNAVAILABLE")
            return
        body = json.loads(raw or b"{}")
        if "consolidationStrategy" in body and "none" not in body["consolidationStrategy"]:
            self._error(400, "only consolidationStrategy none is faked", "badRequest", "INVALID_ARGUMENT")
            return
        ancestor = str(body.get("ancestorName", "items/")).removeprefix("items/")
        if not body.get("pageToken"):
            with state.lock:
                state.queries.append((ancestor, str(body.get("filter", ""))))
        try:
            times = _parse_time_filter(body.get("filter", "time >= 0"))
        except ValueError:
            self._error(400, "Invalid filter", "badRequest", "INVALID_ARGUMENT")
            return
        chosen = [
            r
            for r in state.activities
            if all(_OPS[op](r.time_ms, at) for op, at in times) and (not ancestor or ancestor in r.ancestors)
        ]
        chosen.sort(key=lambda r: r.time_ms, reverse=True)  # newest first, like Google
        size = max(1, min(int(body.get("pageSize") or 50), 1000))
        offset = int(body.get("pageToken") or 0)
        page = chosen[offset : offset + size]
        payload: dict[str, Any] = {"activities": [r.body for r in page]}
        if offset + size < len(chosen):
            payload["nextPageToken"] = str(offset + size)
        self._send(200, payload)

    # -- Drive v3

    def _files_get(self, file_id: str) -> None:
        scopes = self._token_scopes()
        if scopes is None:
            return
        if not scopes & FILES_SCOPES:
            self._insufficient()
            return
        state = self.google.state
        if state.hold_files_get is not None:
            state.files_get_reached.set()
            state.hold_files_get.wait(30)
        item = state.items.get(MY_DRIVE_ROOT if file_id == "root" else file_id)
        if item is None:
            self._error(404, f"File not found: {file_id}.", "notFound", "NOT_FOUND")
            return
        self._send(200, self.google.file_resource(item))

    def _files_list(self, query: dict[str, str]) -> None:
        """``files.list`` (drive.v3.json; the query language of Google's "Search for files and
        folders" guide, the subset graylink and rclone send): ``'ID' in parents`` terms joined by
        ``or`` (rclone's ListR groups up to 50), ``name = '…'``, ``mimeType = '…'``, ``trashed =
        false``; ``pageSize`` (at most 1000) and ``pageToken``; each file with the fields graylink
        asks for."""
        scopes = self._token_scopes()
        if scopes is None:
            return
        if not scopes & FILES_SCOPES:
            self._insufficient()
            return
        q = query.get("q", "")

        def unq(text: str) -> str:
            return re.sub(r"\\(.)", r"\1", text)

        want_parents = {unq(m) for m in re.findall(r"'((?:[^'\\]|\\.)*)' in parents", q)}
        name = re.search(r"name = '((?:[^'\\]|\\.)*)'", q)
        want_name = None if name is None else unq(name.group(1))
        mimes = set(re.findall(r"mimeType = '([^']*)'", q))  # terms joined by "or"
        found = sorted(
            (
                i
                for i in self.google.state.items.values()
                if (not want_parents or want_parents & set(i.parents))
                and (want_name is None or i.name == want_name)
                and (not mimes or i.mime in mimes)
                and not ("trashed = false" in q and i.trashed)
                and i.id != MY_DRIVE_ROOT
            ),
            key=lambda i: i.id,
        )
        size = max(1, min(int(query.get("pageSize") or 100), 1000))
        offset = int(query.get("pageToken") or 0)
        payload: dict[str, Any] = {"files": [self.google.file_resource(i) for i in found[offset : offset + size]]}
        if offset + size < len(found):
            payload["nextPageToken"] = str(offset + size)
        self._send(200, payload)
