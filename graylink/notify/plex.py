"""Plex Media Server: a partial scan per changed folder, in the section that holds it.

``GET /library/sections`` lists the sections and their ``Location`` paths
(XML by default, JSON when asked with ``Accept: application/json``); each
changed folder, mapped with ``[plex] path_map``, is scanned with ``GET
/library/sections/{key}/refresh?path=<folder>`` (PUT stopped working in
PMS 1.32.7). The token travels in the ``X-Plex-Token`` header, never in a
URL: a URL reaches logs. A row leaves the queue once every scan that covers
it answered 2xx, so a server that fails halfway keeps only what it missed.
"""

from __future__ import annotations

import json
import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from graylink.checks import N_, said
from graylink.config import PlexConfig
from graylink.notify import queue
from graylink.notify.http import (
    DELIVERY_BUDGET,
    REQUEST_DEADLINE,
    Budget,
    Client,
    FailedError,
    GaveUpError,
    RefusedError,
    Sleep,
    answered,
    safe_url,
    scrub,
    with_tries,
)
from graylink.notify.plex_plan import PlexPlan, Section, plan_scans
from graylink.notify.queue import DeliveryResult, Queued
from graylink.store.db import Store
from graylink.system.http_deadline import RequestStopped

log = logging.getLogger(__name__)

IDENTITY_PATH = "/identity"
SECTIONS_PATH = "/library/sections"
KEPT = "updates kept in the queue for the next run"
REFUSED_HINT = said(N_("check [plex] token (an X-Plex-Token of an account that owns the server)"))


def token_headers(token: str) -> dict[str, str]:
    return {"X-Plex-Token": token}


def parse_sections(content_type: str, body: bytes) -> list[Section]:
    """The sections of a ``/library/sections`` answer, JSON or XML."""
    if "json" in content_type:
        doc = json.loads(body)
        container = (doc.get("MediaContainer") or {}) if isinstance(doc, dict) else {}
        directories = [d for d in container.get("Directory") or [] if isinstance(d, dict)]
        return [_section(d.get("key"), d.get("title"), d.get("Location") or [], d.get("type")) for d in directories]
    # Plex's own XML from the configured server; Python's expat expands no external entities.
    root = ET.fromstring(body)  # noqa: S314
    return [
        _section(
            d.get("key"), d.get("title"), [{"path": loc.get("path")} for loc in d.findall("Location")], d.get("type")
        )
        for d in root.findall("Directory")
    ]


def _section(key: Any, title: Any, locations: list[Any], kind: Any = "") -> Section:
    paths = tuple(str(loc["path"]) for loc in locations if isinstance(loc, dict) and isinstance(loc.get("path"), str))
    return Section(str(key), str(title or ""), paths, str(kind or ""))


def sections(client: Client, token: str) -> list[Section]:
    response = client.request("GET", SECTIONS_PATH, headers=token_headers(token))
    try:
        return parse_sections(response.headers.get("Content-Type", ""), response.content)
    except (ValueError, ET.ParseError):
        raise FailedError(
            f"{SECTIONS_PATH} answered {answered(response)}, neither Plex JSON nor XML: is [plex] url a Plex server?"
        ) from None


def send(
    config: PlexConfig,
    rows: list[Queued],
    tree_root: bytes,
    budget: Budget,
    deadline: float = REQUEST_DEADLINE,
    exists: Callable[[bytes], bool] = os.path.lexists,
) -> tuple[DeliveryResult, list[int]]:
    """Tell Plex about ``rows``: network only (thread-safe). Returns the result and the rows acknowledged."""
    result = DeliveryResult(mode="targeted", server="plex")
    if not config.token:
        result.error = f"[plex] token is not set; {len(rows)} updates kept for the next run"
        result.refused = True
        return result, []
    url = safe_url(config.url)
    client = Client(config.url, config.token, deadline, budget.should_stop)
    done: list[int] = []
    try:
        found = with_tries(client, budget, f"Plex at {url}", lambda: sections(client, config.token))
        plan = plan_scans(rows, found, config, tree_root, exists)
        done = _scan(client, config, plan, result, budget)
    except RefusedError as exc:
        result.error = f"Plex refused the token ({exc} from {url}): {REFUSED_HINT}; {KEPT}"
        result.refused = True
    except (FailedError, GaveUpError) as exc:
        result.error = f"{scrub(str(exc), config.token)}; {KEPT}"
    except RequestStopped:
        result.error = f"delivery to {url} stopped on request; updates kept for the next run"
        result.stopped = True
    finally:
        client.close()
    result.sent = len(done) - result.skipped
    return result, done


def _scan(client: Client, config: PlexConfig, plan: PlexPlan, result: DeliveryResult, budget: Budget) -> list[int]:
    """Send the plan's scans in order; stop at the first the server would not take. Returns the rows done."""
    url = safe_url(config.url)
    for plex_path, ids in plan.uncovered.items():
        log.warning(
            "Plex: %s is in no Plex section, so %d change(s) there are not sent: add the folder to a library, "
            "or fix [plex] path_map (link tree path=Plex path)",
            plex_path,
            len(ids),
        )
        result.skipped += len(ids)
        result.outside.update(dict.fromkeys(ids, plex_path))
    for section in plan.section_refreshes:
        log.info(
            "Plex: more than %d folders changed in %s: refreshing the whole section", config.max_scans, section.title
        )
        result.mode = "section"
    succeeded: list[int] = []
    for index, scan in enumerate(plan.scans):
        params = {"path": scan.path} if scan.path is not None else None
        where = f"Plex at {url}"

        def call(key: str = scan.section.key, query: dict[str, str] | None = params) -> None:
            client.request("GET", f"{SECTIONS_PATH}/{key}/refresh", headers=token_headers(config.token), params=query)

        try:
            with_tries(client, budget, where, call)
        except FailedError as exc:
            # One scan refused (a section removed meanwhile?): report it, keep its rows, go on with the rest.
            result.error = f"{url}: {scan.describe()}: {scrub(str(exc), config.token)}; {KEPT}"
            continue
        except RefusedError as exc:
            result.error = f"Plex refused the token ({exc} from {url}): {REFUSED_HINT}; {KEPT}"
            result.refused = True
            break
        except GaveUpError as exc:
            result.error = f"{scrub(str(exc), config.token)}; {KEPT}"
            break
        except RequestStopped:
            result.error = f"delivery to {url} stopped on request; updates kept for the next run"
            result.stopped = True
            break
        log.debug("Plex: scanning %s", scan.describe())
        succeeded.append(index)
    result.entries = len(succeeded)
    skipped = [i for ids in plan.uncovered.values() for i in ids]
    all_rows = sorted({i for ids in plan.rows_of.values() for i in ids})
    return plan.rows_done(succeeded, all_rows) + skipped


def deliver(
    config: PlexConfig,
    store: Store,
    *,
    tree_root: bytes | str,
    sleep: Sleep | None = None,
    deadline: float = REQUEST_DEADLINE,
    budget: float = DELIVERY_BUDGET,
    should_stop: Callable[[], bool] | None = None,
) -> DeliveryResult:
    """Send what is queued for ``[plex]``; each row leaves the queue after Plex took every scan that covers it."""
    rows = queue.queued(store, "plex")
    if not rows or not config.url:
        return DeliveryResult(pending=len(rows), server="plex")
    root = os.fsencode(tree_root)
    result, done = send(config, rows, root, Budget(budget, sleep, should_stop), deadline)
    queue.finish(store, "plex", done, result, rows)
    report(config, result)
    return result


def report(config: PlexConfig, result: DeliveryResult, label: str = "Plex") -> None:
    if result.ok:
        what = f"{result.entries} scans" + (" (whole sections among them)" if result.mode == "section" else "")
        log.info("%s: delivered %d queued changes as %s to %s", label, result.sent, what, safe_url(config.url))
    elif result.stopped:
        log.warning("%s", result.error)
    else:
        log.error("%s", result.error)
