"""Named sections: the libraries (``[library NAME]``) and media servers (``[emby NAME]``, ``[plex NAME]``).

The unnamed sections stay what they always were: ``[paths]`` with ``[scan]``,
``[rules]``, ``[mount]``, ``[drive]`` is the library named ``default`` (left
out when a config sets only named libraries), ``[emby]`` and ``[plex]`` are
servers keyed ``emby`` and ``plex``. A ``[library NAME]`` key it does not set
takes the unnamed section's value, except the keys that belong to one library
(:data:`~graylink.config.schema.OWN_KEYS`); its database defaults to
``NAME.db`` beside ``[paths] database``. A named server takes nothing from the
unnamed one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from graylink.config.schema import DRIVE_PREFIX, LIBRARY_KEYS, LIBRARY_SECTIONS, OWN_KEYS, SCHEMA
from graylink.config.sections import (
    DEFAULT_LIBRARY,
    DriveConfig,
    EmbyConfig,
    Library,
    MountConfig,
    PathsConfig,
    PlexConfig,
    RulesConfig,
    ScanConfig,
    Server,
)
from graylink.errors import ConfigError

# (label of the section, key, parser, raw text) -> the typed value; raises ConfigError in one line.
ParseValue = Callable[[str, str, Callable[[str], Any], str], Any]

_LIBRARY_TYPES: dict[str, type] = {
    "paths": PathsConfig,
    "scan": ScanConfig,
    "rules": RulesConfig,
    "mount": MountConfig,
    "drive": DriveConfig,
}


def named_sections(raw: Mapping[str, Mapping[str, str]], kind: str) -> list[tuple[str, Mapping[str, str]]]:
    """(name, its raw keys) of every ``[kind NAME]``, in the order they were read."""
    return [(place.partition(" ")[2], keys) for place, keys in raw.items() if place.startswith(kind + " ")]


def build_libraries(
    raw: Mapping[str, Mapping[str, str]], unnamed: Mapping[str, Any], parse: ParseValue
) -> tuple[Library, ...]:
    """The default library (when configured, or when nothing else is), then each ``[library NAME]``."""
    named = named_sections(raw, "library")
    libraries: list[Library] = []
    paths_raw = raw.get("paths", {})
    if not named or paths_raw.get("source") or paths_raw.get("target"):
        libraries.append(Library(DEFAULT_LIBRARY, *(unnamed[section] for section in LIBRARY_SECTIONS)))
    beside = os.path.dirname(unnamed["paths"].database)
    for name, own in named:
        label = f"library {name}"
        values: dict[str, dict[str, Any]] = {section: {} for section in LIBRARY_SECTIONS}
        for key, (section, schema_key) in LIBRARY_KEYS.items():
            parser, default = SCHEMA[section][schema_key]
            if key in own:
                values[section][schema_key] = parse(label, key, parser, own[key])
            elif (section, schema_key) in OWN_KEYS:
                if schema_key == "database":
                    default = os.path.join(beside, f"{name}.db")
                values[section][schema_key] = parse(label, key, parser, default)
            else:
                values[section][schema_key] = getattr(unnamed[section], schema_key)
        typed = [_LIBRARY_TYPES[section](**values[section]) for section in LIBRARY_SECTIONS]
        libraries.append(Library(name, *typed))
    return tuple(libraries)


def build_servers(
    raw: Mapping[str, Mapping[str, str]], unnamed: Mapping[str, Any], parse: ParseValue
) -> tuple[Server, ...]:
    """``[emby]`` and ``[plex]`` when they have a url, then each named one (which must have one)."""
    servers: list[Server] = []
    for kind, typed in (("emby", EmbyConfig), ("plex", PlexConfig)):
        if unnamed[kind].url:
            servers.append(Server(kind, "", unnamed[kind]))
        for name, own in named_sections(raw, kind):
            label = f"{kind} {name}"
            values = {
                key: parse(label, key, parser, own.get(key, default)) for key, (parser, default) in SCHEMA[kind].items()
            }
            server = Server(kind, name, typed(**values))
            if not server.url:
                raise ConfigError(f"[{label}] url is not set: name the server's address (e.g. http://127.0.0.1:8096)")
            servers.append(server)
    return tuple(servers)


def label(library: Library, section: str, key: str) -> str:
    """How an error names a key of ``library``: ``[mount] anchor`` or ``[library films] anchor``."""
    if library.name == DEFAULT_LIBRARY:
        return f"[{section}] {key}"
    return f"[library {library.name}] {DRIVE_PREFIX + key if section == 'drive' else key}"


# ------------------------------------------------------------------ seeing


def _overlaps(a: str, b: str) -> bool:
    a, b = a.rstrip("/") or "/", b.rstrip("/") or "/"
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/") or "/" in (a, b)


def sees(server: Server, library: Library) -> bool:
    """Whether ``server`` is told about ``library``: named in its ``libraries``,
    else when its ``path_map`` covers part of the link tree, else always."""
    if server.libraries:
        return library.name in server.libraries
    if server.path_map:
        return any(_overlaps(prefix, library.paths.target) for prefix, _ in server.path_map)
    return True


# ---------------------------------------------------------------- checking


def check_libraries(libraries: tuple[Library, ...], servers: tuple[Server, ...], real: Callable[[str], str]) -> None:
    """Two libraries must not share or nest their folders or databases; a server's
    ``libraries`` must name libraries that exist. One line each, before anything is written."""
    seen: list[tuple[Library, str, str, str]] = []
    for library in libraries:
        source, target, database = (
            real(p) for p in (library.paths.source, library.paths.target, library.paths.database)
        )
        for other, o_source, o_target, o_database in seen:
            pair = f"{library.section} and {other.section}"
            if _overlaps(source, o_source):
                raise ConfigError(f"{pair} overlap: source {library.paths.source} and source {other.paths.source}")
            if _overlaps(target, o_target):
                raise ConfigError(f"{pair} overlap: target {library.paths.target} and target {other.paths.target}")
            if _overlaps(source, o_target) or _overlaps(target, o_source):
                raise ConfigError(f"{pair} overlap: one's link tree and the other's source share folders")
            if database == o_database:
                raise ConfigError(f"{pair} share the database {library.paths.database}: give each its own")
            if _overlaps(database, o_source) or _overlaps(database, o_target):
                raise ConfigError(f"{library.section} database {library.paths.database} lies inside {other.section}")
        seen.append((library, source, target, database))
    names = [library.name for library in libraries]
    for server in servers:
        unknown = [name for name in server.libraries if name not in names]
        if unknown:
            raise ConfigError(
                f"{server.section} libraries: no library named {unknown[0]!r} (libraries: {', '.join(names)})"
            )
