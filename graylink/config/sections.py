"""The typed sections of the configuration, one frozen dataclass each.

A named library (``[library NAME]``) is a :class:`Library` of the same
sections; a media server (``[emby]``, ``[emby NAME]``, ``[plex]``,
``[plex NAME]``) is a :class:`Server`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    settle: float  # seconds a new or replaced file must hold still before the servers hear of it


@dataclass(frozen=True)
class RulesConfig:
    extensions: tuple[str, ...]
    exclude_dirs: tuple[str, ...]
    sidecars: bool = False  # link subtitles, .nfo and artwork that belong to a linked video
    skip_samples: bool = True  # leave out videos named like samples and smaller than sample_size
    sample_size: int = 300_000_000


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


@dataclass(frozen=True, kw_only=True)
class ServerKeys:
    """The keys every media server section has, [emby] and [plex] alike (named or not)."""

    confirm_wait: float = 600.0  # seconds a sent change may stay unconfirmed before one re-send, then "stuck"
    protect: str = ""  # "" scans only (no user setting changed) | yes (settings too) | no
    libraries: tuple[str, ...] = ()  # the libraries it is told about; () = every library it can see


@dataclass(frozen=True)
class EmbyConfig(ServerKeys):
    url: str
    api_key: str = field(repr=False)  # a secret: never in a repr, hence never in a log
    server: str
    mode: str
    path_map: tuple[tuple[str, str], ...]
    collapse_threshold: int
    max_updates: int


@dataclass(frozen=True)
class PlexConfig(ServerKeys):
    url: str
    token: str = field(repr=False)  # a secret: never in a repr, hence never in a log
    path_map: tuple[tuple[str, str], ...] = ()
    collapse_threshold: int = 20
    max_scans: int = 50  # partial scans per cycle and section; more become one section refresh


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


DEFAULT_LIBRARY = "default"  # the name of the library of the unnamed sections ([paths], [scan], ...)


@dataclass(frozen=True)
class Library:
    """One source and its link tree: the unnamed sections, or a ``[library NAME]``."""

    name: str
    paths: PathsConfig
    scan: ScanConfig
    rules: RulesConfig
    mount: MountConfig
    drive: DriveConfig

    @property
    def section(self) -> str:
        """How messages name it: ``[paths]`` for the default library, else ``[library NAME]``."""
        return "[paths]" if self.name == DEFAULT_LIBRARY else f"[library {self.name}]"


@dataclass(frozen=True)
class Server:
    """One media server: ``[emby]`` / ``[plex]`` (name "") or ``[emby NAME]`` / ``[plex NAME]``.

    ``key`` is its place in the durable queue and its label in status, metrics
    and alerts: ``emby`` and ``plex`` for the unnamed sections (as the queue
    always named them, so an existing database keeps its rows), ``emby NAME``
    and ``plex NAME`` for named ones.
    """

    kind: str  # emby (Emby or Jellyfin) | plex
    name: str
    settings: EmbyConfig | PlexConfig

    @property
    def key(self) -> str:
        return f"{self.kind} {self.name}" if self.name else self.kind

    @property
    def section(self) -> str:
        return f"[{self.key}]"

    @property
    def url(self) -> str:
        return self.settings.url

    @property
    def libraries(self) -> tuple[str, ...]:
        return self.settings.libraries

    @property
    def path_map(self) -> tuple[tuple[str, str], ...]:
        return self.settings.path_map

    @property
    def secret(self) -> str:
        return self.settings.token if isinstance(self.settings, PlexConfig) else self.settings.api_key

    @property
    def emby(self) -> EmbyConfig:
        assert isinstance(self.settings, EmbyConfig), self.key
        return self.settings

    @property
    def plex(self) -> PlexConfig:
        assert isinstance(self.settings, PlexConfig), self.key
        return self.settings
