"""Every configuration key: its section, its parser and its default.

The default is a string, parsed like a value from the file, so the example
config and this table say the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graylink.config import values as v

DEFAULT_CONFIG_PATHS = ("./graylink.ini", "~/.config/graylink/graylink.ini")
DEFAULT_DATABASE = "~/.local/share/graylink/graylink.db"
ENV_PREFIX = "GRAYLINK_"

Parser = Callable[[str], Any]
SCHEMA: dict[str, dict[str, tuple[Parser, str]]] = {
    "paths": {
        "source": (v.path, ""),
        "target": (v.path, ""),
        "database": (v.path, DEFAULT_DATABASE),
        "link_root": (v.text, ""),
        "relative_links": (v.yes_no, "no"),
    },
    "scan": {
        "interval": (v.positive_duration, "5m"),
        "full_verify": (v.positive_duration, "1d"),
        "workers": (v.positive_int, "4"),
        "trust_dir_mtime": (v.tristate, "auto"),
        "settle": (v.parse_duration, "1m"),
    },
    "rules": {
        "extensions": (v.extensions, ""),
        "exclude_dirs": (v.word_list, "BDMV"),
        "sidecars": (v.yes_no, "no"),
        "skip_samples": (v.yes_no, "yes"),
        "sample_size": (v.size, "300M"),
    },
    "reconcile": {
        "max_prune_fraction": (v.fraction, "0.2"),
    },
    "mount": {
        "check_interval": (v.positive_duration, "1m"),
        "anchor": (v.text, ""),
        "require_mountpoint": (v.yes_no, "no"),
        "remount_command": (v.text, ""),
        "remount_wait": (v.positive_duration, "30s"),
        "remount_timeout": (v.positive_duration, "60s"),
        "rclone_rc": (v.server_url("[mount] rclone_rc_user and rclone_rc_pass"), ""),
        "rclone_rc_user": (v.text, ""),
        "rclone_rc_pass": (v.text, ""),
    },
    "drive": {
        "enabled": (v.yes_no, "no"),
        "rclone_config": (v.path, ""),
        "remote": (v.text, ""),
        "folder_id": (v.text, ""),
        "feed": (v.choice("auto", "changes", "activity"), "auto"),
        "interval": (v.optional_duration, ""),
        "overlap": (v.parse_duration, "10m"),
        "token_file": (v.path, "~/.config/graylink/drive-token.json"),
        "client_id": (v.text, ""),
        "client_secret": (v.text, ""),
        "api_endpoint": (v.url, ""),
        "token_uri": (v.url, ""),
        "auth_uri": (v.url, ""),
    },
    "emby": {
        "url": (v.server_url("[emby] api_key (sent in a header)"), ""),
        "api_key": (v.text, ""),
        "server": (v.choice("auto", "emby", "jellyfin"), "auto"),
        "mode": (v.choice("targeted", "library"), "targeted"),
        "path_map": (v.path_map, ""),
        "collapse_threshold": (v.positive_int, "20"),
        "max_updates": (v.positive_int, "500"),
        "confirm_wait": (v.positive_duration, "10m"),
        "protect": (v.protect, ""),
        "libraries": (v.word_list, ""),
    },
    "plex": {
        "url": (v.server_url("[plex] token (sent in the X-Plex-Token header)"), ""),
        "token": (v.text, ""),
        "path_map": (v.path_map, ""),
        "collapse_threshold": (v.positive_int, "20"),
        "max_scans": (v.positive_int, "50"),
        "confirm_wait": (v.positive_duration, "10m"),
        "protect": (v.protect, ""),
        "libraries": (v.word_list, ""),
    },
    "log": {
        "level": (v.choice("debug", "info", "warning", "error"), "info"),
        "file": (v.path, ""),
        "format": (v.choice("text", "json"), "text"),
        "max_bytes": (v.positive_int, "10485760"),
        "backups": (v.positive_int, "5"),
    },
    "snapshot": {
        "path": (v.path, ""),
    },
    "web": {
        "listen": (v.listen, ""),
        "token": (v.text, ""),
        "arr_path_map": (v.arr_path_map, ""),
        "arr_wait": (v.positive_duration, "30m"),
    },
    "alerts": {
        "urls": (v.url_list, ""),
        "events": (v.word_list, ""),
    },
}

SECRET_KEYS = frozenset(
    {
        ("emby", "api_key"),
        ("plex", "token"),
        ("drive", "client_secret"),
        ("mount", "rclone_rc_pass"),
        ("web", "token"),
        ("alerts", "urls"),  # Apprise URLs carry bot tokens and passwords
    }
)


# ------------------------------------------------------------ named sections

# Sections that may be named: [library NAME], [emby NAME], [plex NAME].
NAMED_KINDS = ("library", "emby", "plex")
# A name: letters and digits (case-insensitive, kept in lower case), so that it
# can stand in an environment variable's name between two underscores.
NAME_RE = r"[a-z0-9]{1,32}"
NAME_RULE = "letters and digits only, at most 32"
RESERVED_NAMES = frozenset({"default"})  # the library of the unnamed sections

# The sections a [library NAME] gathers, and which of their keys it takes.
LIBRARY_SECTIONS = ("paths", "scan", "rules", "mount", "drive")
DRIVE_PREFIX = "drive_"  # [drive] interval would clash with [scan] interval: Drive keys carry the prefix


def _library_keys() -> dict[str, tuple[str, str]]:
    keys: dict[str, tuple[str, str]] = {}
    for section in LIBRARY_SECTIONS:
        for key in SCHEMA[section]:
            keys[DRIVE_PREFIX + key if section == "drive" else key] = (section, key)
    return keys


# Key of a [library NAME] -> the (section, key) it stands for.
LIBRARY_KEYS = _library_keys()
# Keys that belong to one library: a [library NAME] without them does NOT take
# the unnamed section's value (two libraries never share a source or a remote).
OWN_KEYS = frozenset(
    {
        ("paths", "source"),
        ("paths", "target"),
        ("paths", "database"),
        ("paths", "link_root"),
        ("mount", "anchor"),
        ("drive", "remote"),
        ("drive", "folder_id"),
    }
)


def named_keys(kind: str) -> dict[str, tuple[str, str]]:
    """The keys a section ``[kind NAME]`` takes -> the (section, key) each stands for."""
    if kind == "library":
        return LIBRARY_KEYS
    return {key: (kind, key) for key in SCHEMA[kind]}


def is_secret(section: str, key: str) -> bool:
    """Whether ``key`` of ``section`` (named or not) holds a secret."""
    kind, _, name = section.partition(" ")
    if name:
        place = named_keys(kind).get(key) if kind in NAMED_KINDS else None
        return place is not None and place in SECRET_KEYS
    return (section, key) in SECRET_KEYS
