"""Configuration: the typed :class:`Config`, parsed once from an INI file plus ``GRAYLINK_<SECTION>_<KEY>``.

The keys live in :mod:`graylink.config.schema`, the value parsers in
:mod:`graylink.config.values`, the reading of the file and the environment in
:mod:`graylink.config.file`. Every problem is reported as a :class:`ConfigError`
with one line that names the section and key, so the CLI can print it and exit 2
before touching anything.

May import: ``system``. Every other package may import it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graylink.config.file import find_config_file, read_raw
from graylink.config.schema import DEFAULT_CONFIG_PATHS, DEFAULT_DATABASE, ENV_PREFIX, SCHEMA, SECRET_KEYS
from graylink.config.values import parse_duration
from graylink.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG_PATHS",
    "DEFAULT_DATABASE",
    "ENV_PREFIX",
    "SCHEMA",
    "SECRET_KEYS",
    "Config",
    "ConfigError",
    "find_config_file",
    "load_config",
    "parse_duration",
    "parse_raw",
    "read_raw",
]


# ------------------------------------------------------------- typed sections


@dataclass(frozen=True)
class PathsConfig:
    source: str
    target: str
    database: str
    link_root: str
    relative_links: bool


@dataclass(frozen=True)
class ScanConfig:
    interval: float
    full_verify: float
    workers: int
    trust_dir_mtime: str  # auto | yes | no


@dataclass(frozen=True)
class RulesConfig:
    extensions: tuple[str, ...]
    exclude_dirs: tuple[str, ...]


@dataclass(frozen=True)
class ReconcileConfig:
    max_prune_fraction: float


@dataclass(frozen=True)
class MountConfig:
    check_interval: float
    anchor: str
    require_mountpoint: bool
    remount_command: str
    remount_wait: float
    remount_timeout: float
    rclone_rc: str
    rclone_rc_user: str
    rclone_rc_pass: str = field(repr=False)  # a secret: never in a repr, hence never in a log


@dataclass(frozen=True)
class DriveConfig:
    enabled: bool
    rclone_config: str
    remote: str
    folder_id: str
    feed: str  # auto | changes | activity
    interval: float | None  # None: the feed's own default (drive.feed.feed_interval)
    overlap: float
    token_file: str
    client_id: str
    client_secret: str = field(repr=False)  # a secret: never in a repr, hence never in a log
    api_endpoint: str
    token_uri: str
    auth_uri: str


@dataclass(frozen=True)
class EmbyConfig:
    url: str
    api_key: str = field(repr=False)  # a secret: never in a repr, hence never in a log
    server: str
    mode: str
    path_map: tuple[tuple[str, str], ...]
    collapse_threshold: int
    max_updates: int
    confirm_wait: float = 600.0  # seconds a sent change may stay unconfirmed before one re-send, then "stuck"
    protect: str = ""  # "" scans only (no user setting changed) | yes (settings too) | no


@dataclass(frozen=True)
class PlexConfig:
    url: str
    token: str = field(repr=False)  # a secret: never in a repr, hence never in a log
    path_map: tuple[tuple[str, str], ...] = ()
    collapse_threshold: int = 20
    max_scans: int = 50  # partial scans per cycle and section; more become one section refresh
    confirm_wait: float = 600.0  # seconds a sent change may stay unconfirmed before one re-send, then "stuck"
    protect: str = ""  # "" scans only (no user setting changed) | yes (settings too) | no


@dataclass(frozen=True)
class LogConfig:
    level: str
    file: str
    format: str
    max_bytes: int
    backups: int


@dataclass(frozen=True)
class SnapshotConfig:
    path: str


@dataclass(frozen=True)
class WebConfig:
    listen: str
    token: str = field(repr=False)  # a secret: never in a repr, hence never in a log
    arr_path_map: tuple[tuple[str, str], ...] = ()
    arr_wait: float = 1800.0


@dataclass(frozen=True)
class AlertsConfig:
    urls: tuple[str, ...] = field(repr=False)  # Apprise URLs hold bot tokens
    events: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    paths: PathsConfig
    scan: ScanConfig
    rules: RulesConfig
    reconcile: ReconcileConfig
    mount: MountConfig
    drive: DriveConfig
    emby: EmbyConfig
    plex: PlexConfig
    log: LogConfig
    snapshot: SnapshotConfig
    web: WebConfig
    alerts: AlertsConfig
    file: str  # the INI file read, "" when configured by environment only

    def __repr__(self) -> str:  # secrets must never reach a log through a repr
        return f"Config(file={self.file!r}, source={self.paths.source!r}, target={self.paths.target!r})"

    @property
    def link_root(self) -> str:
        """The source as the media server sees it: where link targets point."""
        return self.paths.link_root or self.paths.source


_SECTION_TYPES: dict[str, type] = {
    "paths": PathsConfig,
    "scan": ScanConfig,
    "rules": RulesConfig,
    "reconcile": ReconcileConfig,
    "mount": MountConfig,
    "drive": DriveConfig,
    "emby": EmbyConfig,
    "plex": PlexConfig,
    "log": LogConfig,
    "snapshot": SnapshotConfig,
    "web": WebConfig,
    "alerts": AlertsConfig,
}


# ------------------------------------------------------------------- loading


def _scrubber(raw: Mapping[str, Mapping[str, str]]) -> Callable[[str], str]:
    """Hides every secret's value in a message (a key pasted into the wrong field shows up in its error)."""
    values = [raw.get(section, {}).get(key, "") for section, key in SECRET_KEYS]
    values = sorted((v for v in values if len(v.strip()) >= 4), key=len, reverse=True)

    def scrub(text: str) -> str:
        for value in values:
            text = text.replace(value, "***")
        return text

    return scrub


def _shows_any(message: str, secret: str) -> bool:
    """Whether ``message`` holds any word of a secret's value (then it is not shown)."""
    return any(word in message for word in re.split(r"[\s,]+", secret) if word)


def parse_raw(raw: Mapping[str, Mapping[str, str]], file: str = "") -> Config:
    scrub = _scrubber(raw)
    sections: dict[str, Any] = {}
    for section, keys in SCHEMA.items():
        values = {}
        for key, (parse, default) in keys.items():
            text = raw.get(section, {}).get(key, default)
            try:
                values[key] = parse(text)
            except ValueError as exc:
                detail = scrub(str(exc))
                if (section, key) in SECRET_KEYS and _shows_any(detail, text):
                    detail = "invalid value"
                raise ConfigError(f"[{section}] {key}: {detail}") from None
        sections[section] = _SECTION_TYPES[section](**values)
    config = Config(file=file, **sections)
    try:
        validate(config)
    except ConfigError as exc:
        raise ConfigError(scrub(str(exc))) from None
    return config


def load_config(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> Config:
    env = os.environ if environ is None else environ
    if explicit is None:
        explicit = env.get("GRAYLINK_CONFIG") or None
    path = find_config_file(explicit)
    return parse_raw(read_raw(path, env), file=path)


def _inside(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip("/") + "/")


def _real(path: str) -> str:
    # A path on a hung mount must not hang the loading of the config: resolved
    # under a deadline, it falls back to the path as written.
    from graylink.system.fsinfo import real

    return real(path)


def validate(config: Config) -> None:
    paths = config.paths
    if not paths.source:
        raise ConfigError("[paths] source is not set: name the folder (or rclone mount) to link from")
    if not paths.target:
        raise ConfigError("[paths] target is not set: name the folder where the links go")
    source, target = _real(paths.source), _real(paths.target)
    if _inside(target, source):
        raise ConfigError(f"[paths] target {paths.target} lies inside source {paths.source}")
    if _inside(source, target):
        raise ConfigError(f"[paths] source {paths.source} lies inside target {paths.target}")
    database = _real(paths.database)
    if _inside(database, target):
        raise ConfigError(f"[paths] database {paths.database} lies inside target {paths.target}")
    if _inside(database, source):
        raise ConfigError(f"[paths] database {paths.database} lies inside source {paths.source}")
    if paths.link_root and not paths.link_root.startswith("/"):
        raise ConfigError(f"[paths] link_root must be an absolute path: {paths.link_root!r}")
    anchor = config.mount.anchor
    if anchor and (anchor.startswith("/") or ".." in Path(anchor).parts):
        raise ConfigError(f"[mount] anchor must be a path relative to the source: {anchor!r}")
    if config.drive.enabled and not config.drive.remote:
        raise ConfigError("[drive] remote is not set: name the rclone remote of the mount (e.g. gdrive:)")
    _validate_web(config.web)
    _validate_alerts(config.alerts)


def _validate_web(web: WebConfig) -> None:
    from graylink.config.values import is_loopback, listen_address

    if not web.listen:
        return
    host, _ = listen_address(web.listen)
    if not web.token and not is_loopback(host):
        raise ConfigError(
            f"[web] listen = {web.listen} is not a loopback address and [web] token is not set: "
            "set a token (every request must then carry it) or listen on 127.0.0.1"
        )


def _validate_alerts(alerts: AlertsConfig) -> None:
    from graylink.config.alert_events import EVENTS

    unknown = [e for e in alerts.events if e not in EVENTS]
    if unknown:
        raise ConfigError(f"[alerts] events: unknown event {unknown[0]!r} (known: {', '.join(EVENTS)})")
