"""The rclone remote behind ``[drive] remote``, found in the user's rclone setup as rclone finds it.

rclone owns rclone.conf: it is only ever read here. ``[drive] remote`` is
followed through aliases and at most one crypt layer to its ``type = drive``
section, whose options (client, scope, token, root folder, shared drive,
service account, name encoding) the Drive feed's credentials
(:mod:`graylink.drive.credentials`) and names use. Options that make the
mount show something other than a folder's tree are refused here.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graylink.config import DriveConfig
from graylink.errors import ConfigError
from graylink.rclone import conffile, encoder, fspath
from graylink.rclone.conffile import RcloneConfig
from graylink.rclone.fspath import RemotePath

SCOPE_PREFIX = "https://www.googleapis.com/auth/"
ACTIVITY_SCOPES = frozenset({SCOPE_PREFIX + "drive.activity", SCOPE_PREFIX + "drive.activity.readonly"})

_ALIAS_DEPTH = 8


@dataclass(frozen=True)
class CryptLayer:
    """A ``type = crypt`` remote between ``[drive] remote`` and the Drive: names on the Drive are encrypted."""

    spec: str  # the crypt remote as rclone's command line names it, e.g. "secret:"
    path: str  # the plain path inside the crypt remote ("" for its root)
    conf_path: str = ""  # the rclone config that defines it, for rclone's own use
    # A digest of the options that decide its names (passwords among them): decoded names are
    # remembered across polls under it, so a changed password never reuses them. Never shown.
    fingerprint: str = field(default="", repr=False)


@dataclass(frozen=True)
class Remote:
    """The ``type = drive`` section behind ``[drive] remote``, with the path inside it."""

    name: str  # the drive section finally reached (after aliases)
    path: str  # folder path inside the remote, "" for its root
    client_id: str
    client_secret: str
    scopes: tuple[str, ...]
    token: dict[str, Any] | None
    root_folder_id: str
    team_drive: str
    service_account_file: str
    service_account_credentials: str
    impersonate: str
    encoding: str = encoder.DRIVE_DEFAULT  # the remote's rclone name encoding (option "encoding")
    crypt: CryptLayer | None = None
    conf_path: str = ""  # the rclone config it was read from ("" = the environment only)
    skip_shortcuts: bool = False  # option skip_shortcuts: the mount shows no shortcut at all
    env_auth: bool = False  # option env_auth (rclone >= 1.66): rclone's credentials come from the environment

    def __repr__(self) -> str:  # the token and secret must never reach a log
        return f"Remote(name={self.name!r}, path={self.path!r})"

    @property
    def has_activity_scope(self) -> bool:
        return any(s in ACTIVITY_SCOPES for s in self.scopes)


def _hop(conf: RcloneConfig, where: RemotePath) -> tuple[str, Callable[[str], str]]:
    """One remote's type and option reader: connection-string parameters first, then rclone's order."""
    backend = where.on_the_fly
    kind = backend or conf.remote_type(where.name)

    def option(key: str) -> str:
        if key in where.params:
            return where.params[key].strip()
        if backend:
            return conf.env.get(conffile.option_env(backend, key), "").strip()
        return conf.get(where.name, key, kind).strip()

    return kind, option


def _parse_spec(text: str, what: str) -> RemotePath:
    try:
        return fspath.parse(text)
    except fspath.RemotePathError as exc:
        raise ConfigError(f"[drive] remote: {what} {text!r} is not an rclone remote ({exc})") from None


def read_remote(config: DriveConfig, env: Mapping[str, str] | None = None) -> Remote:
    """Find ``[drive] remote`` as rclone would, through aliases and a crypt layer; ConfigError if unusable."""
    if not config.remote:
        raise ConfigError("[drive] remote is not set: name the rclone remote of the mount (e.g. gdrive:)")
    conf = conffile.load(config.rclone_config, env)
    where = _parse_spec(config.remote, "")
    if not where.name:
        if ":" in config.remote or "/" in config.remote:
            raise ConfigError(f"[drive] remote: {config.remote!r} is a local path, not an rclone remote (name:path)")
        where = fspath.RemotePath(config.remote.strip(), "")  # a bare section name
    crypt: CryptLayer | None = None
    seen: list[str] = []
    in_file = f"in {conf.path}" if conf.path else "(rclone would use no config file)"
    while True:
        if not where.on_the_fly and not conf.has_remote(where.name):
            raise ConfigError(f"[drive] remote: no remote [{where.name}] {in_file} nor in the environment")
        if where.name in seen or len(seen) >= _ALIAS_DEPTH:
            raise ConfigError(f"[drive] remote: aliases loop through [{where.name}] {in_file}")
        seen.append(where.name)
        kind, option = _hop(conf, where)
        if kind in ("alias", "crypt"):
            target = option("remote")
            if not target:
                raise ConfigError(f"[drive] remote: {kind} [{where.name}] has no 'remote = NAME:path'")
            if kind == "crypt":
                if crypt is not None:
                    raise ConfigError(f"[drive] remote: [{where.name}] is a crypt remote over another crypt remote")
                crypt = CryptLayer(_spec_text(where), where.path, conf.path, _crypt_fingerprint(option))
            inner = _parse_spec(target, f"the 'remote' of [{where.name}],")
            if not inner.name:
                raise ConfigError(f"[drive] remote: {kind} [{where.name}] points at a local path, not a Drive")
            # Below a crypt remote the path is encrypted: the crypt layer keeps the plain one.
            sub = "" if kind == "crypt" else where.path
            where = fspath.RemotePath(inner.name, _join_remote_path(inner.path, sub), inner.params)
            continue
        if kind != "drive":
            raise ConfigError(f"[drive] remote: [{where.name}] has type {kind or '(none)'!r}, not 'drive'")
        return _drive_remote(where, option, conf.path, crypt, config.folder_id)


# backend/crypt options that change what a stored name decrypts to.
_CRYPT_NAME_OPTIONS = (
    "remote", "password", "password2", "filename_encryption", "directory_name_encryption",
    "filename_encoding", "suffix",
)  # fmt: skip


def _crypt_fingerprint(option: Callable[[str], str]) -> str:
    digest = hashlib.sha256()
    for key in _CRYPT_NAME_OPTIONS:
        digest.update(f"{key}\0{option(key)}\0".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _spec_text(where: RemotePath) -> str:
    """The remote as a command-line argument for rclone (path left out)."""
    if not where.params:
        return where.name + ":"
    params = ",".join(f"{k}='" + v.replace("'", "''") + "'" for k, v in where.params.items())
    return f"{where.name},{params}:"


def _join_remote_path(base: str, sub: str) -> str:
    return "/".join(p for p in (base.strip("/"), sub.strip("/")) if p)


def parse_scopes(text: str) -> tuple[str, ...]:
    """rclone's ``scope`` option: comma-separated short names or full URLs; default ``drive``."""
    words = [w.strip() for w in (text or "drive").split(",") if w.strip()]
    return tuple(w if w.startswith("https://") else SCOPE_PREFIX + w for w in words)


def _drive_remote(
    where: RemotePath, option: Callable[[str], str], conf_path: str, crypt: CryptLayer | None, folder_id: str = ""
) -> Remote:
    token: dict[str, Any] | None = None
    raw_token = option("token")
    name = where.name
    where_from = conf_path or "the environment"
    if raw_token:
        try:
            parsed = json.loads(raw_token)
        except ValueError:
            raise ConfigError(f"[drive] remote: the token of [{name}] in {where_from} is not valid JSON") from None
        if not isinstance(parsed, dict) or not parsed.get("access_token"):
            raise ConfigError(f"[drive] remote: the token of [{name}] in {where_from} has no access_token")
        token = parsed
    _refuse_views(name, option, folder_id)
    encoding = option("encoding") or encoder.DRIVE_DEFAULT
    try:
        encoder.parse_mask(encoding)
    except ValueError as exc:
        raise ConfigError(f"[drive] remote: the encoding of [{name}]: {exc}") from None
    return Remote(
        name=name,
        path=where.path,
        client_id=option("client_id"),
        client_secret=option("client_secret"),
        scopes=parse_scopes(option("scope")),
        token=token,
        root_folder_id=option("root_folder_id"),
        team_drive=option("team_drive"),
        service_account_file=os.path.expanduser(option("service_account_file")),
        service_account_credentials=option("service_account_credentials"),
        impersonate=option("impersonate"),
        encoding=encoding,
        crypt=crypt,
        conf_path=conf_path,
        skip_shortcuts=_true(option("skip_shortcuts")),
        env_auth=_true(option("env_auth")),
    )


def _true(text: str) -> bool:
    """An rclone boolean option (Go's strconv.ParseBool); anything else is rclone's default, false."""
    return text.strip() in ("1", "t", "T", "TRUE", "true", "True")


def _refuse_views(name: str, option: Callable[[str], str], folder_id: str) -> None:
    """backend/drive options that make the mount show something other than a folder's tree.

    ``shared_with_me`` / ``starred_only`` replace the root's listing by a search
    (``sharedWithMe=true`` / ``starred=true``, no parent: rclone drive.go ``list``):
    the mount's root is no folder the feed can watch, unless ``[drive] folder_id``
    names the folder the source shows. ``trashed_only`` shows the trash: changes
    there mean the opposite of what the feed reads."""
    if _true(option("trashed_only")):
        raise ConfigError(
            f"[drive] remote: [{name}] has trashed_only = true: the mount shows the Drive's trash, which the feed "
            "does not follow; mount a remote without it, or turn the feed off ([drive] enabled = no)"
        )
    for key, what in (("shared_with_me", "'Shared with me'"), ("starred_only", "the starred items")):
        if _true(option(key)) and not folder_id:
            raise ConfigError(
                f"[drive] remote: [{name}] has {key} = true: the mount's root is {what}, a search and not a folder "
                "the feed can watch; set [drive] folder_id to the ID of the folder that [paths] source shows, "
                "or turn the feed off ([drive] enabled = no)"
            )
