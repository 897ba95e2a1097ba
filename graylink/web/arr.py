"""Sonarr / Radarr webhooks: which folder to mark, and which files to wait for.

Payloads as Sonarr and Radarr send them (``Connect → Webhook``; JSON with
camelCase keys, ``eventType`` a PascalCase name). Followed upstream (Sonarr
and Radarr ``develop``, ``src/NzbDrone.Core/Notifications/Webhook/``):
``WebhookBase.cs`` (the payload each event builds), ``WebhookEventType.cs``
(the event names), Sonarr's ``WebhookSeries.cs`` (``series.path``),
``WebhookEpisodeFile.cs`` (``path``, ``relativePath``),
``WebhookRenamedEpisodeFile.cs``, ``WebhookImportCompletePayload.cs``;
Radarr's ``WebhookMovie.cs`` (``movie.folderPath``), ``WebhookMovieFile.cs``,
``WebhookRenamedMovieFile.cs``.

Sonarr's "On Import Complete" is no event of its own: ``BuildOnImportCompletePayload``
sends ``eventType: "Download"`` with a list ``episodeFiles`` and no
``episodeFile``. So a ``Download`` names its files in either field. An upgrade
is a ``Download`` with ``isUpgrade: true`` (its ``deletedFiles`` are gone: no wait).

The *arr often imports before its upload reaches the Drive: a file it names
is waited for (the folder re-marked) until the index has it or
``[web] arr_wait`` ends (:mod:`graylink.web.arrwait`). Deletes and renames
away need no wait.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Events that change files; the others (Grab, Health, ApplicationUpdate, …) are answered and ignored.
SONARR_EVENTS = {"Download", "Rename", "EpisodeFileDelete", "SeriesDelete", "SeriesAdd"}
RADARR_EVENTS = {"Download", "Rename", "MovieFileDelete", "MovieDelete", "MovieAdded"}
MAX_FILES = 10_000  # more files than any season pack: the rest of a body is not read


class PayloadError(ValueError):
    """The body is not a webhook payload graylink can use: answered 2xx, and ignored, with this reason."""


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
    if not (relative and folder):
        return ""
    sep = "\\" if "\\" in folder and "/" not in folder else "/"  # a Windows *arr joins with its own separator
    return folder.rstrip("\\/") + sep + relative


def _files(folder: str, items: Any) -> tuple[str, ...]:
    if not isinstance(items, list):
        return ()
    found = (_file_path(folder, item) for item in items[:MAX_FILES] if isinstance(item, Mapping))
    return tuple(p for p in found if p)


def parse(app: str, body: bytes) -> ArrEvent:
    """One webhook body → the event; :class:`PayloadError` when it is not one."""
    try:
        doc = json.loads(body)
    except RecursionError:
        raise PayloadError("the body is JSON nested too deep") from None
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
    if event == "Download":  # one import (episodeFile), or "On Import Complete" (episodeFiles)
        files = _files(folder, [_obj(doc, "episodeFile")]) + _files(folder, doc.get("episodeFiles"))
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
