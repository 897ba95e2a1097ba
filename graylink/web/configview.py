"""The configuration page: every key's effective value, secrets masked, and where it came from.

Values are read from the running service's typed config (what it really
uses, SIGHUP's reload included); their origin -- the file, a ``GRAYLINK_*``
variable, or the default -- from the file and the environment as the config
reader takes them. A secret shows only whether it is set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from graylink.config import SCHEMA, SECRET_KEYS, Config
from graylink.config import values as v
from graylink.config.file import FROM_DEFAULT, origins
from graylink.errors import ConfigError

MASK = "••••••"
DURATIONS = {v.positive_duration, v.optional_duration, v.parse_duration}


@dataclass(frozen=True)
class Row:
    section: str
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


def config_rows(config: Config, environ: Mapping[str, str] | None = None) -> tuple[list[Row], str]:
    """Every key in schema order, and a note when the file can no longer be read as it was loaded."""
    note = ""
    try:
        where = origins(config.file, os.environ if environ is None else environ)
    except ConfigError as exc:
        # The file changed since the service loaded it (and has an error now): values are what runs.
        where, note = {}, str(exc)
    rows = []
    for section, keys in SCHEMA.items():
        for key, (parser, _default) in keys.items():
            secret = (section, key) in SECRET_KEYS
            value = _shown(getattr(getattr(config, section), key), parser)
            if secret and value:
                value = MASK
            rows.append(Row(section, key, value, where.get((section, key), FROM_DEFAULT), secret))
    return rows, note
