"""``graylink status``: what the index holds, what waits, how the last runs went.

Everything here only reads: the database (opened read-only, so it works while
the service loop writes), the lock file, the link tree's claims, and -- when no
service runs -- the mount itself (graylink.triggers.mount_checks, each look
under a deadline). The Emby queue, the mount and the Drive feed each add
their own section.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from graylink.config import Config
from graylink.store import history
from graylink.store.db import META_LAST_FULL, Store
from graylink.store.lock import holder, lock_path

META_LAST_RECONCILE = "last_reconcile"


def shown_path(value: object) -> str:
    """A path of this document (a name that is not UTF-8 kept as surrogates, as
    ``os.fsdecode`` gives it) as people read it: those bytes as ``\\xNN``, as in the log."""
    return os.fsencode(str(value)).decode("utf-8", "backslashreplace")


# ------------------------------------------------------------ last reconcile


def record_reconcile(store: Store, result: Any, trigger: str) -> None:
    """Keep a summary of one finished cycle in meta, for ``status``."""
    summary = {
        "at": time.time(),
        "trigger": trigger,
        "counts": result.counts(),
        "full": bool(result.full),
        "duration_s": result.stats.duration_s,
        "dirs_listed": result.stats.dirs_listed,
        "files_indexed": result.stats.files_indexed,
        "failures": len(result.failures),
        "stopped": result.stopped,
        "exit_code": result.exit_code,
    }
    applied = getattr(result, "applied", None)
    done = applied.done if applied is not None and not result.dry_run else []
    changes = history.last_changes(done)
    with store.atomic():
        store.set_meta(META_LAST_RECONCILE, json.dumps(summary))
        history.record_cycle(store, summary)
        history.record_changes(store, changes, at=summary["at"])


def _json_meta(store: Store, key: str) -> Any:
    raw = store.get_meta(key)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


# -------------------------------------------------------------------- counts


def count_videos(store: Store) -> int:
    """Indexed files that the link rules want, as the reconciler last counted them."""
    return int(store.execute("SELECT coalesce(sum(videos), 0) FROM directory").fetchone()[0])


def count_sidecars(config: Config, store: Store) -> int:
    """graylink's links to subtitles, .nfo and artwork (``[rules] sidecars``, or
    their extensions in ``[rules] extensions``): counted apart from the videos.
    One pass over the link table, by extension, only when such links can exist."""
    from graylink.source.sidecars import SIDECAR_EXTENSIONS

    exts = sorted(e.decode("ascii") for e in SIDECAR_EXTENSIONS)
    if not (config.rules.sidecars or set(config.rules.extensions) & set(exts)):
        return 0
    lengths = sorted({len(e) for e in exts})
    where = " OR ".join(
        f"lower(CAST(substr(name, -{n}) AS TEXT)) IN ({', '.join(repr(e) for e in exts if len(e) == n)})"
        for n in lengths
    )
    return int(store.execute(f"SELECT count(*) FROM link WHERE {where}").fetchone()[0])


def _marks(store: Store) -> dict[str, Any]:
    rows = store.execute("SELECT reason, count(*), min(marked_at) FROM dirty GROUP BY reason").fetchall()
    by_reason = {str(reason): int(n) for reason, n, _ in rows}
    oldest = min((float(at) for _, _, at in rows), default=None)
    return {"total": sum(by_reason.values()), "by_reason": by_reason, "oldest_marked_at": oldest}


def _jobs(store: Store) -> list[dict[str, Any]]:
    if not store.db.table_exists("job_run"):
        return []
    rows = store.execute(
        "SELECT name, last_start, duration_s, ok, result, runs, failures, next_run FROM job_run ORDER BY name"
    )
    return [
        {
            "name": name,
            "last_run": last_start,
            "duration_s": duration,
            "ok": None if ok is None else bool(ok),
            "result": result,
            "runs": runs,
            "failures": failures,
            "next_run": next_run,
        }
        for name, last_start, duration, ok, result, runs, failures, next_run in rows
    ]


# ---------------------------------------------------------------- the document


# What status lists of the open problems; the counts cover them all.
PROBLEMS_SHOWN = 50


def _problems(config: Config, store: Store) -> dict[str, Any]:
    """Open conflicts, failed actions and unlistable source folders (graylink.problems), with their paths."""
    from graylink.store.problems import UNLISTABLE, open_problems, problem_counts

    root = config.paths.target.rstrip("/")
    source = config.paths.source.rstrip("/")
    return {
        **problem_counts(store),
        "open": [
            {
                # An unlistable folder is a source folder; the others are links.
                "link": (source if p.kind == UNLISTABLE else root) + "/" + os.fsdecode(p.link),
                "kind": p.kind,
                "op": p.op,
                "detail": p.detail,
                "since": p.first_seen,
                "last_seen": p.last_seen,
            }
            for p in open_problems(store, PROBLEMS_SHOWN)
        ],
    }


def _section_list(read: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]] | dict[str, Any]:
    try:
        return list(read())
    except Exception as exc:  # a broken section must not hide the rest of status
        return {"error": f"{exc.__class__.__name__}: {exc}"}


def _section(read: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return dict(read())
    except Exception as exc:  # a broken section must not hide the rest of status
        return {"error": f"{exc.__class__.__name__}: {exc}"}


def read_status(config: Config) -> dict[str, Any]:
    """One library's status document, its database opened read-only (None when it does not exist yet)."""
    if not os.path.exists(config.paths.database):
        return collect_status(config, None)
    with Store(config.paths.database, readonly=True) as store:
        return collect_status(config, store)


def service_webhooks(views: list[Config]) -> dict[str, Any]:
    """A service of several libraries with a web face: ``{"webhooks": ...}``, the ignored webhooks that no
    library held (kept in the first library's database: graylink.store.webhooks); else nothing."""
    if len(views) < 2 or not views[0].web.listen or not os.path.exists(views[0].paths.database):
        return {}
    from graylink.store.webhooks import service_webhook_status

    with Store(views[0].paths.database, readonly=True) as store:
        return {"webhooks": _section(lambda: service_webhook_status(store))}


def collect_status(config: Config, store: Store | None) -> dict[str, Any]:
    """The status document (what ``status --json`` prints). ``store`` None: no database yet."""
    pid = holder(config.paths.database)
    doc: dict[str, Any] = {
        "config": config.file or None,
        "source": config.paths.source,
        "target": config.paths.target,
        "database": config.paths.database,
        "library": config.name,
        "service": {"running": pid is not None, "pid": pid or None, "lock": lock_path(config.paths.database)},
    }
    from graylink.links.claim_report import claim_report

    doc["claims"] = _section_list(lambda: claim_report(config, store))
    if store is None:
        doc["index"] = None
        return doc
    from graylink.links.ownership import mismatch

    # Status of a config that names another library than the database's would
    # show one library's index under the other's paths: said first, in full.
    doc["library_mismatch"] = mismatch(config, store)
    last_full = store.get_meta(META_LAST_FULL)
    doc["schema_version"] = store.schema_version
    doc["index"] = {
        "dirs": store.count_folders(),
        "files": store.count("file"),
        "videos": count_videos(store),
        "links": store.count("link"),
        "sidecars": count_sidecars(config, store),  # of the links: subtitles, .nfo, artwork
        "link_dirs": store.count("link_dir"),
        "last_full_verify": float(last_full) if last_full else None,
    }
    doc["dirty"] = _marks(store)
    doc["problems"] = _problems(config, store)
    doc["last_reconcile"] = _json_meta(store, META_LAST_RECONCILE)
    doc["jobs"] = _jobs(store)
    # The pieces are imported only when their section is shown: status must
    # start fast (it is the container's health check).
    from graylink.notify.queue import configured, queue_status

    # Every server by its key ("emby", "emby family", "plex friend"); the unnamed ones
    # also under "emby" / "plex", where status documents always had them.
    doc["servers"] = {}
    for server in configured(config):
        doc["servers"][server] = _section(partial(queue_status, store, server))
        if " " not in server:
            doc[server] = doc["servers"][server]
    from graylink.triggers.mount_checks import mount_status

    # While the service runs, it checks the mount: its record is shown, and a hung mount keeps no reader waiting.
    doc["mount"] = _section(lambda: mount_status(config, store, probe=pid is None))
    if config.web.listen:
        from graylink.store.webhooks import webhook_status

        doc["webhooks"] = _section(lambda: webhook_status(store))
    if config.drive.enabled:
        from graylink.drive.feed import drive_status

        doc["drive"] = _section(lambda: drive_status(store))
    return doc
