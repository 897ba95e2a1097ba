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
    },
    "rules": {
        "extensions": (v.extensions, ""),
        "exclude_dirs": (v.word_list, "BDMV"),
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
    },
    "plex": {
        "url": (v.server_url("[plex] token (sent in the X-Plex-Token header)"), ""),
        "token": (v.text, ""),
        "path_map": (v.path_map, ""),
        "collapse_threshold": (v.positive_int, "20"),
        "max_scans": (v.positive_int, "50"),
        "confirm_wait": (v.positive_duration, "10m"),
        "protect": (v.protect, ""),
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
