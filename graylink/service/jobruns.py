"""The ``job_run`` table: each job's last run, duration, result and next run.

The service writes it after every job and every (re)schedule; ``graylink
status`` and the status page read it. Only bookkeeping: a failure to write is
the caller's to log, never the end of the loop.
"""

from __future__ import annotations

import datetime as dt

import schedule

from graylink.store.db import Store


def _epoch(moment: dt.datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def record_run(store: Store, name: str, started: float, duration: float, ok: bool, result: str) -> None:
    """One run of job ``name``: its start, duration and result; the counts of runs and failures."""
    with store.atomic():
        store.execute(
            "INSERT INTO job_run (name, last_start, duration_s, ok, result, runs, failures, next_run) "
            "VALUES (?, ?, ?, ?, ?, 1, ?, NULL) "
            "ON CONFLICT(name) DO UPDATE SET last_start = excluded.last_start, "
            "duration_s = excluded.duration_s, ok = excluded.ok, result = excluded.result, "
            "runs = runs + 1, failures = failures + excluded.failures",
            (name, started, round(duration, 6), int(ok), result[:500], 0 if ok else 1),
        )


def write_next_runs(store: Store, scheduler: schedule.Scheduler) -> None:
    """Every scheduled job's next run, and NULL for the rest (not running)."""
    rows = []
    for entry in scheduler.jobs:
        name = next(iter(entry.tags), None)
        if name is not None and not str(name).endswith("-retry"):  # a one-off retry is no job of its own
            rows.append((name, _epoch(entry.next_run)))
    with store.atomic():
        store.execute("UPDATE job_run SET next_run = NULL")
        store.executemany(
            "INSERT INTO job_run (name, result, runs, failures, next_run) VALUES (?, '', 0, 0, ?) "
            "ON CONFLICT(name) DO UPDATE SET next_run = excluded.next_run",
            rows,
        )
