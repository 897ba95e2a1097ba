"""A loopback rclone rc that runs ``vfs/refresh`` as an async job, for the cases a real rclone cannot be made to show.

Follows rclone's source: ``fs/rc/jobs/job.go`` (``_async=true`` answers
``{"jobid", "executeId"}`` at once; ``job/status`` answers ``id``,
``executeId``, ``finished``, ``success``, ``error``, ``output``; an unknown
job is "job not found", HTTP 500), ``vfs/rc.go`` (``vfs/refresh`` answers
``{"result": {dir: "OK" | error}}``; ``getVFS`` fails with "more than one VFS
active - need \\"fs\\" parameter" when several are active and ``fs`` is not
given; ``vfs/list`` answers ``{"vfses": [...]}``), ``fs/accounting/stats.go``
(``core/stats`` carries ``listed``, rclone >= 1.69) and ``fs/rc/rcserver``
(errors are ``{"error", "input", "status", "path"}`` with the HTTP status).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from loopback import Loopback, QuietHandler


@dataclass
class Job:
    id: int
    params: dict[str, Any]
    started: float
    finish_after: float
    error: str = ""
    result: dict[str, str] = field(default_factory=dict)


class RcServer(Loopback):
    """``job_seconds``: how long a refresh job runs; ``job_error``: its error when it ends;
    ``vfses``: the VFS names (more than one: ``fs`` is needed); ``freeze``: job/status never answers."""

    def __init__(self) -> None:
        self.job_seconds = 0.2
        self.job_error = ""
        self.vfses = ["gdrive:"]
        self.mounts: list[dict[str, str]] = []  # mount/listmounts: {"Fs", "MountPoint"} of mounts made through rc
        self.freeze = False
        self._released = threading.Event()  # set on exit: a frozen answer's thread may end
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.jobs: dict[int, Job] = {}
        self.execute_id = "a1b2c3"
        self.listed = 100
        self.lock = threading.Lock()
        self.serve(self._handler())

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        super().__exit__(*exc)

    def methods(self) -> list[str]:
        with self.lock:
            return [method for method, _ in self.calls]

    def answer(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.calls.append((method, params))
        if method == "vfs/refresh":
            return self._refresh(params)
        if method == "job/status":
            if self.freeze:
                self._released.wait(3600)  # a frozen rclone: the answer never comes
            return self._status(params)
        if method == "core/stats":
            with self.lock:
                self.listed += 37
                return 200, {"listed": self.listed, "bytes": 0}
        if method == "vfs/list":
            return 200, {"vfses": list(self.vfses)}
        if method == "mount/listmounts":
            return 200, {"mountPoints": list(self.mounts)}
        return 404, _error(f'couldn\'t find method "{method}"', params, 404, method)

    def _refresh(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        run = dict(params)
        is_async = run.pop("_async", False) in (True, "true")
        error = ""
        if len(self.vfses) > 1 and run.pop("fs", None) is None:
            error = 'more than one VFS active - need "fs" parameter'
        run.pop("fs", None)
        with self.lock:
            job = Job(len(self.jobs) + 1, params, time.monotonic(), self.job_seconds, error or self.job_error)
            dirs = [v for k, v in run.items() if k.startswith("dir")] or [""]
            job.result = {d: "OK" for d in dirs}
            self.jobs[job.id] = job
        if not is_async:
            return 200, {"result": job.result}
        return 200, {"jobid": job.id, "executeId": self.execute_id}

    def _status(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            job = self.jobs.get(int(params.get("jobid", 0)))
            if job is None:
                return 500, _error("job not found", params, 500, "job/status")
            finished = job.error.startswith("more than one") or time.monotonic() - job.started >= job.finish_after
            return 200, {
                "id": job.id,
                "executeId": self.execute_id,
                "group": f"job/{job.id}",
                "finished": finished,
                "success": finished and not job.error,
                "error": job.error if finished else "",
                "duration": time.monotonic() - job.started,
                "output": {"result": job.result} if finished and not job.error else None,
            }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                params = json.loads(raw) if raw else {}
                status, body = server.answer(self.path.strip("/"), params)
                self.send_body(status, json.dumps(body).encode(), "application/json")

        return Handler


def _error(message: str, params: dict[str, Any], status: int, path: str) -> dict[str, Any]:
    return {"error": message, "input": params, "status": status, "path": path}
