"""Configuration: an INI file plus ``GRAYLINK_<SECTION>_<KEY>`` overrides.

The file and the environment are parsed once, into frozen dataclasses. Every
problem is reported as a :class:`ConfigError` with one line that names the
section and key, so the CLI can print it and exit 2 before touching anything.
"""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graylink.errors import ConfigError

DEFAULT_CONFIG_PATHS = ("./graylink.ini", "~/.config/graylink/graylink.ini")
DEFAULT_DATABASE = "~/.local/share/graylink/graylink.db"
ENV_PREFIX = "GRAYLINK_"

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


# ---------------------------------------------------------------- value parsers


def parse_duration(text: str) -> float:
    """Parse ``90s``, ``5m``, ``1h``, ``1d``, ``1h30m`` or plain seconds."""
    compact = text.strip().replace(" ", "")
    if not compact:
        raise ValueError("empty duration")
    total = 0.0
    pos = 0
    for match in _DURATION_RE.finditer(compact):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
        pos = match.end()
    if pos != len(compact):
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 5m, 1h, 1d)")
    return total


def _positive_duration(text: str) -> float:
    value = parse_duration(text)
    if value <= 0:
        raise ValueError(f"must be longer than zero: {text!r}")
    return value


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"not a yes/no value: {text!r}")


def _tristate(text: str) -> str:
    low = text.strip().lower()
    if low == "auto":
        return "auto"
    return "yes" if _bool(low) else "no"


def _positive_int(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise ValueError(f"must be at least 1: {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"must be between 0 and 1: {text!r}")
    return value


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        low = text.strip().lower()
        if low not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return low

    return parse


def _text(text: str) -> str:
    return text.strip()


def _path(text: str) -> str:
    stripped = text.strip()
    if not stripped:
        return ""
    return os.path.normpath(os.path.abspath(os.path.expanduser(stripped)))


def _word_list(text: str) -> tuple[str, ...]:
    return tuple(w for w in re.split(r"[\s,]+", text.strip()) if w)


def _extensions(text: str) -> tuple[str, ...]:
    out = []
    for word in _word_list(text):
        ext = word.lower()
        if not ext.startswith("."):
            ext = "." + ext
        if len(ext) < 2 or "/" in ext:
            raise ValueError(f"not a file extension: {word!r}")
        out.append(ext)
    return tuple(out)


def _path_map(text: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        if "=" not in item:
            raise ValueError(f"path_map entry {item!r} is not of the form /from=/to")
        src, _, dst = item.partition("=")
        src, dst = src.strip().rstrip("/") or "/", dst.strip().rstrip("/") or "/"
        if not src.startswith("/") or not dst.startswith("/"):
            raise ValueError(f"path_map entry {item!r}: both sides must be absolute paths")
        pairs.append((src, dst))
    return tuple(pairs)


def _url(text: str) -> str:
    stripped = text.strip().rstrip("/")
    if stripped and not re.match(r"^https?://[^/\s]+", stripped):
        raise ValueError(f"not an http(s) URL: {stripped!r}")
    return stripped


# ------------------------------------------------------------------- the schema

# section -> key -> (parser, default). The default is a string, parsed like a
# value from the file, so the example config and this table say the same thing.
Parser = Callable[[str], Any]
SCHEMA: dict[str, dict[str, tuple[Parser, str]]] = {
    "paths": {
        "source": (_path, ""),
        "target": (_path, ""),
        "database": (_path, DEFAULT_DATABASE),
        "link_root": (_text, ""),
        "relative_links": (_bool, "no"),
    },
    "scan": {
        "interval": (_positive_duration, "5m"),
        "full_verify": (_positive_duration, "1d"),
        "workers": (_positive_int, "4"),
        "trust_dir_mtime": (_tristate, "auto"),
    },
    "rules": {
        "extensions": (_extensions, ""),
        "exclude_dirs": (_word_list, "BDMV"),
    },
    "reconcile": {
        "max_prune_fraction": (_fraction, "0.2"),
    },
    "mount": {
        "check_interval": (_positive_duration, "1m"),
        "anchor": (_text, ""),
        "require_mountpoint": (_bool, "no"),
        "remount_command": (_text, ""),
        "remount_wait": (_positive_duration, "30s"),
        "remount_timeout": (_positive_duration, "60s"),
        "rclone_rc": (_url, ""),
        "rclone_rc_user": (_text, ""),
        "rclone_rc_pass": (_text, ""),
    },
    "drive": {
        "enabled": (_bool, "no"),
        "rclone_config": (_path, "~/.config/rclone/rclone.conf"),
        "remote": (_text, ""),
        "folder_id": (_text, ""),
        "interval": (_positive_duration, "1h"),
        "overlap": (parse_duration, "10m"),
        "token_file": (_path, "~/.config/graylink/drive-token.json"),
        "client_id": (_text, ""),
        "client_secret": (_text, ""),
        "api_endpoint": (_url, ""),
        "token_uri": (_url, ""),
        "auth_uri": (_url, ""),
    },
    "emby": {
        "url": (_url, ""),
        "api_key": (_text, ""),
        "server": (_choice("auto", "emby", "jellyfin"), "auto"),
        "mode": (_choice("targeted", "library"), "targeted"),
        "path_map": (_path_map, ""),
        "collapse_threshold": (_positive_int, "20"),
        "max_updates": (_positive_int, "500"),
    },
    "log": {
        "level": (_choice("debug", "info", "warning", "error"), "info"),
        "file": (_path, ""),
        "format": (_choice("text", "json"), "text"),
        "max_bytes": (_positive_int, "10485760"),
        "backups": (_positive_int, "5"),
    },
    "snapshot": {
        "path": (_path, ""),
    },
}

SECRET_KEYS = frozenset({("emby", "api_key"), ("drive", "client_secret"), ("mount", "rclone_rc_pass")})


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
    interval: float
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
class Config:
    paths: PathsConfig
    scan: ScanConfig
    rules: RulesConfig
    reconcile: ReconcileConfig
    mount: MountConfig
    drive: DriveConfig
    emby: EmbyConfig
    log: LogConfig
    snapshot: SnapshotConfig
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
    "log": LogConfig,
    "snapshot": SnapshotConfig,
}


# ------------------------------------------------------------------- loading


def find_config_file(explicit: str | None) -> str:
    """The file to read: the one given, else the first default that exists, else ""."""
    if explicit:
        path = os.path.expanduser(explicit)
        if not os.path.isfile(path):
            raise ConfigError(f"config file not found: {explicit}")
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
        parser = configparser.ConfigParser(interpolation=None, strict=True)
        try:
            with open(path, encoding="utf-8") as handle:
                parser.read_file(handle)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {_reason(exc)}") from None
        except configparser.Error as exc:
            first = str(exc).strip().splitlines()[0]
            raise ConfigError(f"{path}: {first}") from None
        for section in parser.sections():
            if section not in SCHEMA:
                raise ConfigError(f"{path}: unknown section [{section}] (known: {', '.join(SCHEMA)})")
            for key, value in parser.items(section):
                if key not in SCHEMA[section]:
                    raise ConfigError(f"{path}: unknown key '{key}' in [{section}]")
                raw[section][key] = value
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("_")
        if section not in SCHEMA:
            continue  # e.g. GRAYLINK_CONFIG, which names the file itself
        if key not in SCHEMA[section]:
            raise ConfigError(f"environment variable {name}: unknown key '{key}' in [{section}]")
        raw[section][key] = value
    return raw


def _scrubber(raw: Mapping[str, Mapping[str, str]]) -> Callable[[str], str]:
    """Hides every secret's value in a message (a key pasted into the wrong field shows up in its error)."""
    values = [raw.get(section, {}).get(key, "") for section, key in SECRET_KEYS]
    values = sorted((v for v in values if len(v.strip()) >= 4), key=len, reverse=True)

    def scrub(text: str) -> str:
        for value in values:
            text = text.replace(value, "***")
        return text

    return scrub


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
                shown = "***" if (section, key) in SECRET_KEYS else None
                detail = scrub(str(exc)) if shown is None else "invalid value"
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
    return os.path.realpath(path)


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


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
