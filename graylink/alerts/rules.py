"""The alert rules (pure): what a job saw, the state the last alerts left, the messages due.

A mount that is down is one alert and one recovery, not one per cycle; a
server or the feed failing now and then says nothing until it fails
``REPEATS`` times in a row, except for a refused key or scope, which no retry fixes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from graylink.triggers.mount_record import span

REPEATS = 3  # consecutive failures before "unreachable" / "failing" is worth a message
SHOWN_PATHS = 5


@dataclass(frozen=True)
class ServerSeen:
    """One media server's delivery in one cycle."""

    ok: bool
    refused: bool = False  # the server refused the key (401/403): worth a message at once
    error: str = ""


@dataclass(frozen=True)
class Observation:
    """What one job saw; None = not looked at this time (keeps that part of the state)."""

    at: float
    mount_ok: bool | None = None
    mount_message: str = ""
    mount_down_s: float | None = None  # the mount is back: its outage's length, as the log told it
    remount_error: str = ""  # a remount ran and failed
    braked: int | None = None  # prunes the brake withheld in a finished cycle
    conflicts: tuple[str, ...] | None = None  # open conflicts (link paths) after a cycle
    servers: dict[str, ServerSeen] | None = None
    feed_ok: bool | None = None
    feed_refused: bool = False  # a scope / permission refusal: no retry fixes it
    feed_error: str = ""
    cycle_error: str | None = None  # "" a cycle finished without failures, text: why it failed
    stuck: dict[str, tuple[str, ...]] | None = None  # per server: changes that became stuck in this cycle
    protect_on: dict[str, str] | None = None  # servers whose library protection began: what was done
    protect_off: tuple[str, ...] | None = None  # servers whose protection ended (settings put back)
    server_mount_ok: bool | None = None  # the media server can list the source as it sees it
    server_mount_message: str = ""
    server_mount_server: str = "emby"  # which Emby / Jellyfin server (its key) the verdict is about


@dataclass
class State:
    mount_down_since: float | None = None
    remount_announced: bool = False
    brake_announced: int = 0
    conflicts: list[str] = field(default_factory=list)
    server_failures: dict[str, int] = field(default_factory=dict)
    server_announced: list[str] = field(default_factory=list)
    feed_failures: int = 0
    feed_announced: bool = False
    cycle_failures: int = 0
    cycle_announced: bool = False
    server_mount_bad: bool = False  # before named servers: the [emby] server's verdict (read as "emby")
    server_mount_bad_on: list[str] = field(default_factory=list)  # servers that cannot read the source

    @classmethod
    def from_json(cls, raw: str | None) -> State:
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except (ValueError, TypeError):
            return cls()


@dataclass(frozen=True)
class Alert:
    event: str  # a key of graylink.alert_events.EVENTS
    title: str
    body: str
    kind: str = "failure"  # failure | warning | success (Apprise's notify types)


def _paths(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:SHOWN_PATHS])
    more = len(paths) - SHOWN_PATHS
    return shown + (f" and {more} more" if more > 0 else "")


# ---------------------------------------------------------------- the rules (pure)


def evaluate(state: State, seen: Observation, library: str) -> tuple[State, list[Alert]]:
    """The state after ``seen`` and the alerts it calls for. ``library`` names the library in messages."""
    new = replace(state, conflicts=list(state.conflicts), server_failures=dict(state.server_failures))
    new.server_announced = list(state.server_announced)
    new.server_mount_bad_on = list(state.server_mount_bad_on)
    alerts: list[Alert] = []
    _mount(new, seen, library, alerts)
    _brake(new, seen, library, alerts)
    _conflicts(new, seen, library, alerts)
    _servers(new, seen, library, alerts)
    _feed(new, seen, library, alerts)
    _cycle(new, seen, library, alerts)
    _stuck(seen, library, alerts)
    _protect(seen, library, alerts)
    _server_mount(new, seen, library, alerts)
    return new, alerts


def _mount(new: State, seen: Observation, library: str, alerts: list[Alert]) -> None:
    if seen.mount_ok is False and new.mount_down_since is None:
        new.mount_down_since = seen.at
        alerts.append(
            Alert(
                "mount",
                f"graylink: the mount of {library} is down",
                f"{seen.mount_message or 'the source does not answer'}. No link is pruned while it is down. "
                "Fix: check the rclone mount (systemctl status / its log), or set [mount] remount_command.",
            )
        )
    elif seen.mount_ok and new.mount_down_since is not None:
        # The outage as the mount's record knows it (from its first failed check,
        # which a cycle may have seen before this job did), as the log told it.
        down_s = seen.mount_down_s if seen.mount_down_s is not None else seen.at - new.mount_down_since
        down_for = span(down_s)
        new.mount_down_since = None
        new.remount_announced = False
        alerts.append(
            Alert("mount", f"graylink: the mount of {library} is back", f"It was down for {down_for}.", "success")
        )
    if seen.remount_error and not new.remount_announced:
        new.remount_announced = True
        alerts.append(
            Alert(
                "remount",
                f"graylink: remounting {library} failed",
                f"{seen.remount_error}. Fix: run [mount] remount_command by hand and read its error.",
            )
        )


def _brake(new: State, seen: Observation, library: str, alerts: list[Alert]) -> None:
    if seen.braked is None:
        return
    if seen.braked and not new.brake_announced:
        alerts.append(
            Alert(
                "brake",
                f"graylink: {seen.braked} prunes withheld in {library}",
                f"The prune brake holds back {seen.braked} prunes (more than [reconcile] max_prune_fraction of "
                "the links). If the files really are gone, stop the service and run: graylink reconcile --force",
                "warning",
            )
        )
    new.brake_announced = seen.braked


def _conflicts(new: State, seen: Observation, library: str, alerts: list[Alert]) -> None:
    if seen.conflicts is None:
        return
    known = set(new.conflicts)
    fresh = [p for p in seen.conflicts if p not in known]
    if fresh:
        alerts.append(
            Alert(
                "conflicts",
                f"graylink: {len(fresh)} new conflicts in {library}",
                f"Something that is not graylink's link sits where a link belongs: {_paths(fresh)}. "
                "Fix: move the file or folder away; the next reconcile links it.",
                "warning",
            )
        )
    new.conflicts = list(seen.conflicts)[:1000]


def _servers(new: State, seen: Observation, library: str, alerts: list[Alert]) -> None:
    for name, delivery in (seen.servers or {}).items():
        if delivery.ok:
            new.server_failures.pop(name, None)
            if name in new.server_announced:
                new.server_announced.remove(name)
                alerts.append(Alert("server", f"graylink: {name} is back", f"{name} accepts updates again.", "success"))
            continue
        count = new.server_failures.get(name, 0) + 1
        new.server_failures[name] = count
        if name in new.server_announced or not (delivery.refused or count >= REPEATS):
            continue
        new.server_announced.append(name)
        if delivery.refused:
            body = f"{name} refuses graylink's key: {delivery.error}. Fix: set a valid API key / token for it."
        else:
            body = f"{name} failed {count} cycles in a row: {delivery.error}. Updates stay queued until it answers."
        alerts.append(Alert("server", f"graylink: {name} does not take updates for {library}", body))


def _feed(new: State, seen: Observation, library: str, alerts: list[Alert]) -> None:
    if seen.feed_ok is None:
        return
    if seen.feed_ok:
        if new.feed_announced:
            alerts.append(
                Alert("feed", "graylink: the Drive feed is back", f"Changes in {library} are read again.", "success")
            )
        new.feed_failures, new.feed_announced = 0, False
        return
    new.feed_failures += 1
    if new.feed_announced or not (seen.feed_refused or new.feed_failures >= REPEATS):
        return
    new.feed_announced = True
    fix = (
        "Fix: give the credentials the scope the feed needs (docs/google-drive.md)."
        if seen.feed_refused
        else "The walk keeps the links right meanwhile; the feed resumes from where it stopped."
    )
    alerts.append(Alert("feed", "graylink: the Drive feed is failing", f"{seen.feed_error}. {fix}"))


def _cycle(new: State, seen: Observation, library: str, alerts: list[Alert]) -> None:
    if seen.cycle_error is None:
        return
    if not seen.cycle_error:
        if new.cycle_announced:
            alerts.append(
                Alert("cycle", f"graylink: {library} reconciles again", "The last cycle succeeded.", "success")
            )
        new.cycle_failures, new.cycle_announced = 0, False
        return
    if new.mount_down_since is not None:
        return  # the mount alert already says why cycles fail
    new.cycle_failures += 1
    if new.cycle_failures >= REPEATS and not new.cycle_announced:
        new.cycle_announced = True
        alerts.append(
            Alert(
                "cycle",
                f"graylink: reconciling {library} keeps failing",
                f"{new.cycle_failures} cycles in a row failed: {seen.cycle_error}. See the service log.",
            )
        )


def _stuck(seen: Observation, library: str, alerts: list[Alert]) -> None:
    """A change becomes stuck once (the database holds its state): one message for the changes of a cycle."""
    for name, paths in (seen.stuck or {}).items():
        if not paths:
            continue
        alerts.append(
            Alert(
                "stuck",
                f"graylink: {len(paths)} changes of {library} never reached {name}'s library",
                f"Sent, sent once more with their folder, still not in {name}'s library: {_paths(list(paths))}. "
                "The reason of each is in 'graylink status'. graylink sends them again when their folder changes; "
                "to send one now: graylink reconcile --path PATH",
                "warning",
            )
        )


def _protect(seen: Observation, library: str, alerts: list[Alert]) -> None:
    """The database marks a protection engaged once and released once: one message each."""
    for name, done in (seen.protect_on or {}).items():
        alerts.append(
            Alert(
                "protect",
                f"graylink: protecting {name}'s library while the mount of {library} is down",
                f"{done}. Its own scans would remove the items whose links dangle now; "
                "everything graylink changed is put back when the mount is back ([emby]/[plex] protect).",
                "warning",
            )
        )
    for name in seen.protect_off or ():
        alerts.append(
            Alert(
                "protect",
                f"graylink: {name}'s library is no longer held",
                "The mount is back; its settings are as before.",
                "success",
            )
        )


def _server_mount(new: State, seen: Observation, library: str, alerts: list[Alert]) -> None:
    """Each Emby / Jellyfin server's view of the source: one alert when it turns stale, one when it reads again."""
    name = seen.server_mount_server
    bad = set(new.server_mount_bad_on) | ({"emby"} if new.server_mount_bad else set())
    if seen.server_mount_ok is None or (not seen.server_mount_ok) == (name in bad):
        return  # nothing seen, or no change
    if seen.server_mount_ok:
        bad.discard(name)
    else:
        bad.add(name)
    new.server_mount_bad, new.server_mount_bad_on = False, sorted(bad)
    if not seen.server_mount_ok:
        alerts.append(
            Alert(
                "server_mount",
                f"graylink: the media server {name} cannot read {library}",
                f"{seen.server_mount_message}, while graylink reads it: its links are right, the server's mount "
                "is stale. Fix: restart the server's container, and bind the folder that holds the rclone mount "
                "into it with propagation rslave (docker: -v /mnt:/mnt:ro,rslave).",
            )
        )
    else:
        alerts.append(
            Alert(
                "server_mount",
                f"graylink: the media server {name} reads {library} again",
                seen.server_mount_message,
                "success",
            )
        )
