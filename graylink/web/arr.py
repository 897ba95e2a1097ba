"""Sonarr / Radarr webhooks: which folder to mark, and which files to wait for.

Payloads as Sonarr and Radarr send them (``Connect → Webhook``; JSON with
camelCase keys, ``eventType`` a PascalCase name). Followed upstream:
Sonarr ``src/NzbDrone.Core/Notifications/Webhook/WebhookBase.cs`` (the
payload of each event), ``WebhookSeries.cs`` (``series.path``),
``WebhookEpisodeFile.cs`` (``episodeFile.relativePath`` / ``path``),
``WebhookRenamedEpisodeFile.cs``, ``WebhookImportCompletePayload.cs``
(``episodeFiles``); Radarr's files of the same names (``movie.folderPath``,
``movieFile``, ``renamedMovieFiles``) and ``WebhookEventType.cs`` of both.
An upgrade is a ``Download`` with ``isUpgrade: true``.

The *arr often imports before its upload reaches the Drive: a file it names
is waited for (the folder re-marked) until the index has it or
``[web] arr_wait`` ends. Deletes and renames away need no wait.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from graylink.notify.pathmap import map_path
from graylink.store.db import Mark, Store, normalize_rel

log = logging.getLogger(__name__)

# Events that change files; the others (Grab, Health, ApplicationUpdate, …) are answered and ignored.
SONARR_EVENTS = {"Download", "Rename", "EpisodeFileDelete", "SeriesDelete", "SeriesAdd", "ImportComplete"}
RADARR_EVENTS = {"Download", "Rename", "MovieFileDelete", "MovieDelete", "MovieAdded"}


class PayloadError(ValueError):
    """The body is not a webhook payload graylink can use (answered 400 with this text)."""


@dataclass(frozen=True)
class ArrEvent:
    app: str  # sonarr | radarr
    event: str
    folder: str  # the series / movie folder, as the *arr sees it ("" for Test and ignored events)
    files: tuple[str, ...] = ()  # files that should exist once the upload landed (*arr's view)

    @property
    def test(self) -> bool:
        return self.event == "Test"


def _obj(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, Mapping) else {}


def _str(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    return value if isinstance(value, str) else ""


def _file_path(folder: str, item: Mapping[str, Any]) -> str:
    path = _str(item, "path")
    if path:
        return path
    relative = _str(item, "relativePath")
    return os.path.join(folder, relative) if relative and folder else ""


def _files(folder: str, items: Any) -> tuple[str, ...]:
    if not isinstance(items, list):
        return ()
    found = (_file_path(folder, item) for item in items if isinstance(item, Mapping))
    return tuple(p for p in found if p)


def parse(app: str, body: bytes) -> ArrEvent:
    """One webhook body → the event; :class:`PayloadError` when it is not one."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise PayloadError("the body is not JSON") from None
    if not isinstance(doc, Mapping):
        raise PayloadError("the body is not a JSON object")
    event = _str(doc, "eventType")
    if not event:
        raise PayloadError("no eventType: not a Sonarr / Radarr webhook")
    if event == "Test":
        return ArrEvent(app, event, "")
    if app == "sonarr":
        return _sonarr(doc, event)
    return _radarr(doc, event)


def _sonarr(doc: Mapping[str, Any], event: str) -> ArrEvent:
    if event not in SONARR_EVENTS:
        return ArrEvent("sonarr", event, "")
    folder = _str(_obj(doc, "series"), "path")
    if not folder:
        raise PayloadError(f"{event} without series.path")
    files: tuple[str, ...] = ()
    if event == "Download":
        files = _files(folder, [_obj(doc, "episodeFile")])
    elif event == "ImportComplete":
        files = _files(folder, doc.get("episodeFiles"))
    elif event == "Rename":
        files = _files(folder, doc.get("renamedEpisodeFiles"))
    return ArrEvent("sonarr", event, folder, files)


def _radarr(doc: Mapping[str, Any], event: str) -> ArrEvent:
    if event not in RADARR_EVENTS:
        return ArrEvent("radarr", event, "")
    folder = _str(_obj(doc, "movie"), "folderPath")
    if not folder:
        raise PayloadError(f"{event} without movie.folderPath")
    files: tuple[str, ...] = ()
    if event == "Download":
        files = _files(folder, [_obj(doc, "movieFile")])
    elif event == "Rename":
        files = _files(folder, doc.get("renamedMovieFiles"))
    return ArrEvent("radarr", event, folder, files)


# ------------------------------------------------------------- paths


def to_source(path: str, arr_path_map: tuple[tuple[str, str], ...], source: str) -> bytes:
    """An *arr path → a subtree relative to the source; PayloadError when it lies outside."""
    mapped = os.path.normpath(map_path(path, arr_path_map)) if path.startswith("/") else ""
    root = source.rstrip("/")
    if not mapped or not (mapped == root or mapped.startswith(root + "/")):
        hint = "" if arr_path_map else " (set [web] arr_path_map to map the *arr's folders onto the source)"
        raise PayloadError(f"{path} is not inside the source {source}{hint}")
    try:
        return normalize_rel(os.fsencode(mapped[len(root) :]))
    except ValueError:
        raise PayloadError(f"{path} leaves the source") from None


# ------------------------------------------------------------- waiting


@dataclass(frozen=True)
class Waiting:
    folder: bytes
    files: tuple[bytes, ...]
    origin: str
    since: float
    until: float


def mark_event(
    store: Store, folder: bytes, files: Sequence[bytes], origin: str, wait_s: float, now: float | None = None
) -> None:
    """Mark the folder now; keep waiting for ``files`` until they are indexed or ``wait_s`` ends."""
    at = time.time() if now is None else now
    with store.atomic():
        store.add_marks([Mark(folder, origin)])
        if files:
            store.execute(
                "INSERT INTO arr_wait (folder, files, origin, since, until) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(folder) DO UPDATE SET files = excluded.files, origin = excluded.origin, "
                "until = excluded.until",
                (folder, json.dumps([os.fsdecode(f) for f in files]), origin, at, at + wait_s),
            )


def waiting(store: Store) -> list[Waiting]:
    rows = store.execute("SELECT folder, files, origin, since, until FROM arr_wait ORDER BY since").fetchall()
    out = []
    for folder, files, origin, since, until in rows:
        names = tuple(os.fsencode(f) for f in json.loads(files))
        out.append(Waiting(bytes(folder), names, str(origin), float(since), float(until)))
    return out


def _indexed(store: Store, rel: bytes) -> bool:
    parent, _, name = rel.rpartition(b"/")
    row = store.execute(
        "SELECT 1 FROM file JOIN directory ON directory.id = file.dir_id WHERE directory.path = ? AND file.name = ?",
        (parent, name),
    ).fetchone()
    return row is not None


def recheck(store: Store, now: float | None = None) -> int:
    """Re-mark every folder still waiting for its files; drop what arrived or timed out. Returns marks made."""
    at = time.time() if now is None else now
    marks = []
    done: list[bytes] = []
    for entry in waiting(store):
        if all(_indexed(store, f) for f in entry.files):
            log.info("webhook (%s): %s arrived on the mount", entry.origin, os.fsdecode(entry.folder))
            done.append(entry.folder)
        elif at >= entry.until:
            missing = [os.fsdecode(f) for f in entry.files if not _indexed(store, f)]
            log.warning(
                "webhook (%s): %s did not reach the mount within [web] arr_wait (missing: %s); "
                "the daily full verification will find it if it comes later",
                entry.origin,
                os.fsdecode(entry.folder),
                ", ".join(missing[:3]),
            )
            done.append(entry.folder)
        else:
            marks.append(Mark(entry.folder, entry.origin))
    with store.atomic():
        store.add_marks(marks)
        for folder in done:
            store.execute("DELETE FROM arr_wait WHERE folder = ?", (folder,))
    return len(marks)
