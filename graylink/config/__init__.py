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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from graylink.config import named
from graylink.config.file import find_config_file, read_raw
from graylink.config.schema import (
    DEFAULT_CONFIG_PATHS,
    DEFAULT_DATABASE,
    ENV_PREFIX,
    NAMED_KINDS,
    SCHEMA,
    SECRET_KEYS,
    is_secret,
)
from graylink.config.sections import (
    DEFAULT_LIBRARY,
    AlertsConfig,
    DriveConfig,
    EmbyConfig,
    Library,
    LogConfig,
    MountConfig,
    PathsConfig,
    PlexConfig,
    ReconcileConfig,
    RulesConfig,
    ScanConfig,
    Server,
    SnapshotConfig,
    WebConfig,
)
from graylink.config.values import parse_duration
from graylink.errors import ConfigError
from graylink.system import secrets

__all__ = [
    "DEFAULT_CONFIG_PATHS",
    "DEFAULT_DATABASE",
    "DEFAULT_LIBRARY",
    "ENV_PREFIX",
    "SCHEMA",
    "SECRET_KEYS",
    "AlertsConfig",
    "Config",
    "ConfigError",
    "DriveConfig",
    "EmbyConfig",
    "Library",
    "LogConfig",
    "MountConfig",
    "PathsConfig",
    "PlexConfig",
    "ReconcileConfig",
    "RulesConfig",
    "ScanConfig",
    "Server",
    "SnapshotConfig",
    "WebConfig",
    "find_config_file",
    "load_config",
    "parse_duration",
    "parse_raw",
    "read_raw",
]


@dataclass(frozen=True)
class Config:
    """The whole configuration. ``paths``, ``scan``, ``rules``, ``mount`` and
    ``drive`` are the first library's (the default one when configured); in the
    view of one library (:meth:`library`) they are that library's, and
    ``servers`` holds only the servers that see it."""

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
    libraries: tuple[Library, ...]  # the default library (if configured) first, then [library NAME] in file order
    servers: tuple[Server, ...]  # every media server with a url: [emby], [emby NAME]..., [plex], [plex NAME]...
    named: bool = False  # the config has named sections (a server with a path_map then hears only what it maps)

    def __repr__(self) -> str:  # secrets must never reach a log through a repr
        return f"Config(file={self.file!r}, source={self.paths.source!r}, target={self.paths.target!r})"

    @property
    def link_root(self) -> str:
        """The source as the media server sees it: where link targets point."""
        return self.paths.link_root or self.paths.source

    @property
    def name(self) -> str:
        """The (first) library's name: ``default`` for the unnamed sections."""
        return self.libraries[0].name

    def library(self, name: str) -> Config:
        """The config as one library sees it: its paths, scan, rules, mount and
        drive, and only the servers that see it. Everything that runs on one
        library (a cycle, status, doctor, the loop's jobs) takes this view."""
        for library in self.libraries:
            if library.name == name:
                servers = tuple(server for server in self.servers if named.sees(server, library))
                return replace(
                    self,
                    paths=library.paths,
                    scan=library.scan,
                    rules=library.rules,
                    mount=library.mount,
                    drive=library.drive,
                    libraries=(library,),
                    servers=servers,
                )
        known = ", ".join(library.name for library in self.libraries)
        raise ConfigError(f"--library {name}: no such library (libraries: {known})")

    def each_library(self) -> list[Config]:
        """The view of every library, in config order."""
        return [self.library(library.name) for library in self.libraries]

    def server(self, key: str) -> Server:
        """The server whose queue place is ``key`` (``emby``, ``plex``, ``emby NAME``...)."""
        for server in self.servers:
            if server.key == key:
                return server
        raise KeyError(key)


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
    values = [value for section, keys in raw.items() for key, value in keys.items() if is_secret(section, key)]
    return secrets.masker(v.strip() for v in values)


def _shows_any(message: str, secret: str) -> bool:
    """Whether ``message`` holds any word of a secret's value (then it is not shown)."""
    return any(word in message for word in re.split(r"[\s,]+", secret) if word)


def parse_raw(raw: Mapping[str, Mapping[str, str]], file: str = "") -> Config:
    scrub = _scrubber(raw)

    def parse(section: str, key: str, parser: Callable[[str], Any], text: str) -> Any:
        try:
            return parser(text)
        except ValueError as exc:
            detail = scrub(str(exc))
            if is_secret(section, key) and _shows_any(detail, text):
                detail = "invalid value"
            raise ConfigError(f"[{section}] {key}: {detail}") from None

    sections: dict[str, Any] = {}
    for section, keys in SCHEMA.items():
        values = {
            key: parse(section, key, parser, raw.get(section, {}).get(key, default))
            for key, (parser, default) in keys.items()
        }
        sections[section] = _SECTION_TYPES[section](**values)
    try:
        libraries = named.build_libraries(raw, sections, parse)
        servers = named.build_servers(raw, sections, parse)
        first = libraries[0]
        # config.paths and the rest mean the first library: code that knows one library keeps working.
        sections.update(paths=first.paths, scan=first.scan, rules=first.rules, mount=first.mount, drive=first.drive)
        has_named = any(" " in place and place.partition(" ")[0] in NAMED_KINDS for place in raw)
        config = Config(file=file, libraries=libraries, servers=servers, named=has_named, **sections)
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
    for library in config.libraries:
        _validate_library(library)
    named.check_libraries(config.libraries, config.servers, _real)
    _validate_web(config.web)
    _validate_alerts(config.alerts)


def _validate_library(library: Library) -> None:
    paths, where = library.paths, library.section
    if library.name == DEFAULT_LIBRARY:
        where = "[paths]"
    if not paths.source:
        raise ConfigError(f"{where} source is not set: name the folder (or rclone mount) to link from")
    if not paths.target:
        raise ConfigError(f"{where} target is not set: name the folder where the links go")
    source, target = _real(paths.source), _real(paths.target)
    if _inside(target, source):
        raise ConfigError(f"{where} target {paths.target} lies inside source {paths.source}")
    if _inside(source, target):
        raise ConfigError(f"{where} source {paths.source} lies inside target {paths.target}")
    database = _real(paths.database)
    if _inside(database, target):
        raise ConfigError(f"{where} database {paths.database} lies inside target {paths.target}")
    if _inside(database, source):
        raise ConfigError(f"{where} database {paths.database} lies inside source {paths.source}")
    if paths.link_root and not paths.link_root.startswith("/"):
        raise ConfigError(f"{where} link_root must be an absolute path: {paths.link_root!r}")
    anchor = library.mount.anchor
    if anchor and (anchor.startswith("/") or ".." in Path(anchor).parts):
        raise ConfigError(
            f"{named.label(library, 'mount', 'anchor')} must be a path relative to the source: {anchor!r}"
        )
    if library.drive.enabled and not library.drive.remote:
        remote = named.label(library, "drive", "remote")
        raise ConfigError(f"{remote} is not set: name the rclone remote of the mount (e.g. gdrive:)")


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
