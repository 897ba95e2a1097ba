"""Reading the raw configuration: which INI file, its strings, and ``GRAYLINK_*`` on top.

Nothing is typed here: values stay strings until :func:`graylink.config.parse_raw`.
"""

from __future__ import annotations

import configparser
import difflib
import os
import re
from collections.abc import Mapping

from graylink.config.schema import (
    DEFAULT_CONFIG_PATHS,
    ENV_PREFIX,
    NAME_RE,
    NAME_RULE,
    NAMED_KINDS,
    RESERVED_NAMES,
    SCHEMA,
    named_keys,
)
from graylink.errors import ConfigError


def find_config_file(explicit: str | None) -> str:
    """The file to read: the one given, else the first default that exists, else ""."""
    if explicit:
        path = os.path.expanduser(explicit)
        # Not only regular files: /dev/null, or a pipe (-c <(...)) read as one.
        if not os.path.exists(path):
            raise ConfigError(f"config file not found: {explicit}")
        if os.path.isdir(path):
            raise ConfigError(f"config file {explicit} is a directory: name the INI file in it")
        return os.path.abspath(path)
    for candidate in DEFAULT_CONFIG_PATHS:
        path = os.path.expanduser(candidate)
        if os.path.isfile(path):
            return os.path.abspath(path)
    return ""


def read_raw(path: str, environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Raw strings by section and key: the file first, the environment on top."""
    raw: dict[str, dict[str, str]] = {section: {} for section in SCHEMA}
    if path:
        _read_file(path, raw)
    empty_file = bool(path) and not any(raw.values())
    for name, value in environ.items():
        place = environment_key(name)
        if place is not None:
            raw.setdefault(place[0], {})[place[1]] = value
    if empty_file and not raw["paths"].get("source"):
        # Said as it is: "source is not set" would send the user looking in the wrong file.
        raise ConfigError(
            f"config file {path} is empty: set [paths] source and target in it (graylink.ini.example lists every key)"
        )
    return raw


FROM_FILE, FROM_ENVIRONMENT, FROM_DEFAULT = "file", "environment", "default"


def origins(path: str, environ: Mapping[str, str]) -> dict[tuple[str, str], str]:
    """Where each value set comes from, as :func:`read_raw` takes it: the environment
    over the file, by (section, key), named sections (``emby tv``) included. A key
    that is in neither takes its default (or, in a named library, the unnamed
    section's value). The configuration page shows it beside the value."""
    raw: dict[str, dict[str, str]] = {section: {} for section in SCHEMA}
    if path:
        _read_file(path, raw)
    found = {(section, key): FROM_FILE for section, keys in raw.items() for key in keys}
    for name in environ:
        place = environment_key(name)
        if place is not None:
            found[place] = FROM_ENVIRONMENT
    return found


# GRAYLINK_* variables that are not config keys: each says what it is for.
NOT_CONFIG = {
    "GRAYLINK_CONFIG": "the config file to read",
    "GRAYLINK_CONFIG_DIR": "the container's config folder (docker/entrypoint.sh)",
    "GRAYLINK_PROGRESS_EVERY": "seconds between two progress lines off a terminal (graylink.system.progress)",
    "GRAYLINK_CRASH_SEED": "replays a crash test (tests/test_crash.py)",
    "GRAYLINK_PROP_EXAMPLES": "the number of property test examples (tests/test_properties.py)",
}


def environment_key(name: str) -> tuple[str, str] | None:
    """The (section, key) that environment variable ``name`` sets; None when it is no
    graylink config variable (another prefix, or one of NOT_CONFIG).

    Every other ``GRAYLINK_*`` name is refused like an unknown key in the file: a
    misspelled section (GRAYLINK_SCANS_INTERVAL, GRAYLINK_EMBYURL) would otherwise
    be ignored without a word, and a container configured only through its
    environment would run with the default. The one rule for these names lives
    here, so that named sections can extend it.
    """
    if not name.startswith(ENV_PREFIX) or name in NOT_CONFIG:
        return None
    section, _, key = name[len(ENV_PREFIX) :].lower().partition("_")
    if section in SCHEMA and key in SCHEMA[section]:
        return section, key
    if section in NAMED_KINDS:
        # GRAYLINK_LIBRARY_<NAME>_<KEY>, GRAYLINK_EMBY_<NAME>_<KEY>, GRAYLINK_PLEX_<NAME>_<KEY>:
        # a name holds no "_", so the first one after it ends the name. (No key of
        # [emby] or [plex] reads as NAME_KEY of another key, so GRAYLINK_EMBY_API_KEY
        # stays the unnamed section's api_key.)
        named, _, rest = key.partition("_")
        if rest and named and re.fullmatch(NAME_RE, named) and named not in RESERVED_NAMES:
            if rest in named_keys(section):
                return f"{section} {named}", rest
            keys = named_keys(section)
            close = difflib.get_close_matches(rest, list(keys), n=1, cutoff=0.75)
            hint = f" (did you mean {ENV_PREFIX}{section.upper()}_{named.upper()}_{close[0].upper()}?)" if close else ""
            return _refuse(name, f"unknown key '{rest}' in [{section} {named}]{hint}")
    known = [f"{ENV_PREFIX}{s.upper()}_{k.upper()}" for s in SCHEMA for k in SCHEMA[s]]
    close = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.75)
    hint = f" (did you mean {close[0]}?)" if close else ""
    if section == "library":
        return _refuse(name, f"a named library's variable is GRAYLINK_LIBRARY_<NAME>_<KEY> (NAME: {NAME_RULE}){hint}")
    if section not in SCHEMA:
        what = f"no section [{section}]" if key else "no GRAYLINK_<SECTION>_<KEY> form"
        return _refuse(name, f"{what}{hint}; sections: {', '.join(SCHEMA)}, library NAME, emby NAME, plex NAME")
    return _refuse(name, f"unknown key '{key}' in [{section}]{hint}")


def _refuse(name: str, why: str) -> tuple[str, str]:
    raise ConfigError(f"environment variable {name}: {why}")


# A comment may follow a value: "interval = 5m   ; note". Only after whitespace,
# so that a value keeps a "#" or ";" of its own ("url = http://h/#x", "a;b").
INLINE_COMMENT_PREFIXES = ("#", ";")


COMMAND_LINES = frozenset({("mount", "remount_command")})


def _read_file(path: str, raw: dict[str, dict[str, str]]) -> None:
    parser = configparser.ConfigParser(interpolation=None, strict=True, inline_comment_prefixes=INLINE_COMMENT_PREFIXES)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {_reason(exc)}") from None
    except configparser.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(f"{path}: {first}") from None
    for section in parser.sections():
        place, keys = _section_of(path, section)
        if place in raw and place not in SCHEMA:
            raise ConfigError(f"{path}: [{section}] appears twice (names are compared in lower case)")
        values = raw.setdefault(place, {})
        for key, value in parser.items(section):
            if key not in keys:
                raise ConfigError(f"{path}: unknown key '{key}' in [{section}]")
            # A command line keeps its quotes: they group its arguments (shlex).
            values[key] = value if keys[key] in COMMAND_LINES else unquoted(value)


def _section_of(path: str, section: str) -> tuple[str, Mapping[str, tuple[str, str]]]:
    """The raw place of a section header (``paths``, ``library films``) and the keys it takes."""
    if section in SCHEMA:
        return section, {key: (section, key) for key in SCHEMA[section]}
    kind, _, name = section.strip().partition(" ")
    kind, name = kind.lower(), name.strip()
    if kind not in NAMED_KINDS:
        known = ", ".join([*SCHEMA, "library NAME", "emby NAME", "plex NAME"])
        raise ConfigError(f"{path}: unknown section [{section}] (known: {known})")
    if not name:
        raise ConfigError(f"{path}: [{section}] needs a name: [{kind} NAME]")
    if not re.fullmatch(NAME_RE, name.lower()):
        raise ConfigError(f"{path}: [{section}]: bad name {name!r} ({NAME_RULE})")
    if name.lower() in RESERVED_NAMES:
        raise ConfigError(
            f"{path}: [{section}]: the name {name!r} is taken by the unnamed sections ([paths], [emby], ...)"
        )
    return f"{kind} {name.lower()}", named_keys(kind)


def unquoted(value: str) -> str:
    """A value wrapped in one pair of quotes (``api_key = "abc"``, as other INI
    readers and shell files take it) without them; anything else as written."""
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'" and text[0] not in text[1:-1]:
        return text[1:-1]
    return value


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
