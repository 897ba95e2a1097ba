"""What a job may use of the running service, and what it reports back.

The job table (:mod:`graylink.service.jobs`, :mod:`graylink.service.web_jobs`)
and the loop that runs it (:mod:`graylink.service.loop`) meet here, so that
neither imports the other's module for its types.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from graylink.alerts.rules import Observation
    from graylink.config import Config
    from graylink.drive.feed import CredentialCache
    from graylink.drive.shared_changes import ChangePages
    from graylink.notify.shared_holds import SharedHolds
    from graylink.reconcile.cycle import CycleOptions
    from graylink.store.db import Store
    from graylink.triggers.mount import MountWatch


@dataclass(frozen=True)
class Outcome:
    """What one job run did: ``ok`` false when it finished but something failed."""

    ok: bool
    result: str

    def then(self, more: Outcome | None) -> Outcome:
        if more is None:
            return self
        return Outcome(self.ok and more.ok, f"{self.result}; {more.result}")


class Running(Protocol):
    """The running service as its jobs see it (:class:`graylink.service.loop.Service`)."""

    config: Config
    store: Store
    full_first: bool
    stop_requested: bool
    drive_cache: CredentialCache
    mount_watch: MountWatch
    wake: threading.Event
    change_pages: ChangePages | None  # the Changes pages shared by the libraries on one Drive
    shared_holds: SharedHolds | None  # the servers' holds shared by the libraries of one process

    def should_stop(self) -> bool: ...

    def reconcile(self, trigger: str, options: CycleOptions) -> Outcome: ...

    def reconcile_if_dirty(self, trigger: str) -> Outcome | None: ...

    def walk_if_feed_lost(self) -> Outcome | None: ...

    def retry_soon(self, name: str, seconds: float) -> None: ...

    def observe(self, seen: Observation) -> None: ...
