"""The loopback Google's Drive v3 ``changes`` resource, after Google's discovery document.

It follows ``drive.v3.json`` (the static discovery document that
googleapiclient ships, ``googleapiclient/discovery_cache/documents``):
``GET drive/v3/changes/startPageToken`` (``driveId``, ``supportsAllDrives``)
answers a ``StartPageToken``; ``GET drive/v3/changes`` (``pageToken``
required, ``pageSize`` 1-1000, ``includeRemoved``, ``driveId``,
``includeItemsFromAllDrives``, ``restrictToMyDrive``) answers a ``ChangeList``: ``changes``, and
``nextPageToken`` or, on the last page, ``newStartPageToken``. The scopes each
method accepts are read from that document, and a token without one of them
is refused with Google's 403 ``insufficientPermissions``. As on Google, the
list holds the latest change of each file, and a change's ``file`` is the
file as it is now; removed files come with ``removed: true`` and no ``file``.

Page tokens do not expire (the document: "The page token doesn't expire"):
any token the Drive handed out stays good; one it never handed out is refused
with 400. ``restrictToMyDrive=true`` omits files outside the My Drive
hierarchy (shared with the user, not added to My Drive: no parent the token
sees), as the parameter's description says.

Faults for tests (``ChangesFaults``): forced statuses with ``Retry-After``,
a body that is not JSON, a page token that comes back forever, a hang.
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import googleapiclient


@functools.cache
def discovery_scopes(resource: str, method: str) -> frozenset[str]:
    """The scopes that drive v3 ``resource.method`` accepts, from the discovery document."""
    doc = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "drive.v3.json"
    methods = json.loads(doc.read_text())["resources"][resource]["methods"]
    return frozenset(methods[method]["scopes"])


@dataclass
class ChangeRecord:
    seq: int
    file_id: str
    time: str
    removed: bool
    drive_id: str = ""


@dataclass
class ChangesFaults:
    statuses: list[tuple[int, str, str]] = field(default_factory=list)  # (status, reason, Retry-After) to answer
    garbage: int = 0  # answers that are not JSON
    loop_token: bool = False  # every page points at the same nextPageToken
    hang: threading.Event | None = None  # when set: changes.list waits on it (a Google that never answers)
    hang_after: int = 0  # ... but only past this many requests


@dataclass
class ChangeLog:
    records: list[ChangeRecord] = field(default_factory=list)
    next_seq: int = 1
    faults: ChangesFaults = field(default_factory=ChangesFaults)
    requests: list[dict[str, str]] = field(default_factory=list)  # the query of each changes.list

    def add(self, file_id: str, time: str, removed: bool = False, drive_id: str = "") -> None:
        self.records = [r for r in self.records if r.file_id != file_id]  # the latest change per file
        self.records.append(ChangeRecord(self.next_seq, file_id, time, removed, drive_id))
        self.next_seq += 1


class ChangesRoutes:
    """Handler methods for the two routes (mixed into the loopback's request handler)."""

    google: Any

    def _changes_start(self, query: dict[str, str]) -> None:
        if not self._allowed("getStartPageToken"):  # type: ignore[attr-defined]
            return
        log: ChangeLog = self.google.state.changes
        self._send(200, {"kind": "drive#startPageToken", "startPageToken": str(log.next_seq)})  # type: ignore[attr-defined]

    def _changes_list(self, query: dict[str, str]) -> None:
        if not self._allowed("list"):  # type: ignore[attr-defined]
            return
        state = self.google.state
        log: ChangeLog = state.changes
        with state.lock:
            log.requests.append(dict(query))
            forced = log.faults.statuses.pop(0) if log.faults.statuses else None
            garbage = log.faults.garbage > 0
            log.faults.garbage -= 1 if garbage else 0
        hang = log.faults.hang
        if hang is not None and len(log.requests) > log.faults.hang_after:
            hang.wait(60)
            return
        if forced is not None:
            status, reason, retry_after = forced
            message = (
                "Rate Limit Exceeded" if "ateLimit" in reason else "Forbidden" if status == 403 else "Backend Error"
            )
            headers = {"Retry-After": retry_after} if retry_after else None
            self._error(status, message, reason, "RESOURCE_EXHAUSTED", headers=headers)  # type: ignore[attr-defined]
            return
        if garbage:
            self._send_raw(200, b"<html>Service temporarily unavailable</html>")  # type: ignore[attr-defined]
            return
        token = query.get("pageToken", "")
        # Page tokens never expire ("The page token doesn't expire", drive.v3.json StartPageToken and
        # ChangeList.newStartPageToken): only a token this Drive never handed out is refused.
        if not token.isdigit() or not (1 <= int(token) <= log.next_seq):
            self._error(400, "Invalid Value", "invalid", "INVALID_ARGUMENT")  # type: ignore[attr-defined]
            return
        size = max(1, min(int(query.get("pageSize") or 100), 1000))
        drive_id = query.get("driveId", "")
        include_removed = query.get("includeRemoved", "true") == "true"
        restrict = query.get("restrictToMyDrive") == "true" and not drive_id
        chosen = [
            r
            for r in log.records
            if r.seq >= int(token)
            and (not drive_id or r.drive_id == drive_id)
            and (include_removed or not r.removed)
            and (drive_id or not r.drive_id or query.get("includeItemsFromAllDrives") == "true")
            and not (restrict and not r.drive_id and not r.removed and not self.google.in_my_drive(r.file_id))
        ]
        page, rest = chosen[:size], chosen[size:]
        payload: dict[str, Any] = {"kind": "drive#changeList", "changes": [self._change(r) for r in page]}
        if log.faults.loop_token:
            payload["nextPageToken"] = token
        elif rest:
            payload["nextPageToken"] = str(rest[0].seq)
        else:
            payload["newStartPageToken"] = str(log.next_seq)
        self._send(200, payload)  # type: ignore[attr-defined]

    def _change(self, record: ChangeRecord) -> dict[str, Any]:
        change: dict[str, Any] = {
            "kind": "drive#change",
            "changeType": "file",
            "fileId": record.file_id,
            "time": record.time,
            "removed": record.removed,
        }
        item = self.google.state.items.get(record.file_id)
        if not record.removed and item is not None:
            change["file"] = self.google.file_resource(item)
        if record.drive_id:
            change["driveId"] = record.drive_id
        return change
