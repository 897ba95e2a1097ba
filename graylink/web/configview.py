"""The configuration page: every key's effective value, secrets masked, and where it came from.

Values are read from the running service's typed config (what it really
uses, SIGHUP's reload included): the unnamed sections, then each named
library and media server. Their origin -- the file, a ``GRAYLINK_*``
variable, or the default -- from the file and the environment as the config
reader takes them (a named library's key it does not set shows where the
unnamed section's value came from: that is the value it takes). A secret
shows only whether it is set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graylink.config import SCHEMA, Config
from graylink.config import values as v
from graylink.config.file import FROM_DEFAULT, origins
from graylink.config.schema import is_secret, named_keys
from graylink.errors import ConfigError

MASK = "••••••"
DURATIONS = {v.positive_duration, v.optional_duration, v.parse_duration}


@dataclass(frozen=True)
class Row:
    section: str  # as in the file: "scan", "emby tv", "library films"
    key: str
    value: str
    origin: str  # file | environment | default
    secret: bool


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _shown(value: object, parser: object) -> str:
    if value is None or value == "" or value == ():
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if parser in DURATIONS and isinstance(value, (int, float)):
        return _duration(float(value))
    if isinstance(value, tuple):
        return ", ".join("=".join(p) if isinstance(p, tuple) else str(p) for p in value)
    return str(value)


def _row(section: str, key: str, value: Any, parser: object, origin: str) -> Row:
    secret = is_secret(section, key)
    text = _shown(value, parser)
    return Row(section, key, MASK if secret and text else text, origin, secret)


def config_rows(config: Config, environ: Mapping[str, str] | None = None) -> tuple[list[Row], str]:
    """Every key in schema order, named sections after; and a note when the file can no longer be read."""
    note = ""
    try:
        where = origins(config.file, os.environ if environ is None else environ)
    except ConfigError as exc:
        # The file changed since the service loaded it (and has an error now): values are what runs.
        where, note = {}, str(exc)
    rows = []
    for section, keys in SCHEMA.items():
        for key, (parser, _default) in keys.items():
            value = getattr(getattr(config, section), key)
            rows.append(_row(section, key, value, parser, where.get((section, key), FROM_DEFAULT)))
    for library in config.libraries:
        if library.section.startswith("[library "):
            place = library.section.strip("[]").lower()
            for key, (section, schema_key) in named_keys("library").items():
                value = getattr(getattr(library, section), schema_key)
                origin = where.get((place, key)) or where.get((section, schema_key), FROM_DEFAULT)
                rows.append(_row(place, key, value, SCHEMA[section][schema_key][0], origin))
    for server in config.servers:
        if server.name:
            place = f"{server.kind} {server.name}"
            for key, (parser, _default) in SCHEMA[server.kind].items():
                value = getattr(server.settings, key)
                rows.append(_row(place, key, value, parser, where.get((place, key), FROM_DEFAULT)))
    return rows, note
