"""Google credentials for the Drive feed, taken from the user's rclone setup.

rclone owns rclone.conf: it is only ever read here. Three sources give the
Drive Activity scope, tried in this order: graylink's own token file (written
by ``graylink drive auth``), the rclone remote's token when its ``scope`` lists
an activity scope, and a service account. A token without the activity scope
is still used (``files.get`` works with it) and the feed reports the missing
scope when Google refuses the query.

google-auth is imported only inside the functions that build credentials, so
that ``graylink --help`` does not pay for it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graylink.config import DriveConfig
from graylink.errors import ConfigError, GraylinkError
from graylink.rclone import conffile, encoder, fspath
from graylink.rclone.conffile import RcloneConfig
from graylink.rclone.fspath import RemotePath

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - an endpoint, not a secret
GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/auth"
SCOPE_PREFIX = "https://www.googleapis.com/auth/"
ACTIVITY_SCOPES = frozenset({SCOPE_PREFIX + "drive.activity", SCOPE_PREFIX + "drive.activity.readonly"})
# What graylink asks for itself: read the feed, resolve item IDs to names.
GRAYLINK_SCOPES = (SCOPE_PREFIX + "drive.activity.readonly", SCOPE_PREFIX + "drive.metadata.readonly")

MISSING_SCOPE_HINT = (
    "the Drive token lacks the drive.activity scope that the Drive Activity API requires; fix it either with "
    "'graylink drive auth' (graylink's own token, using the remote's OAuth client), or by setting "
    "'scope = drive,drive.activity.readonly' on the rclone remote and running 'rclone config reconnect REMOTE:'"
)

_ALIAS_DEPTH = 8


class DriveAuthError(GraylinkError):
    """Credentials exist but cannot be used right now (expired, refused): a runtime failure."""


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


@dataclass
class DriveCredentials:
    """google-auth credentials plus where they came from (for status and doctor)."""

    credentials: Any  # google.auth.credentials.Credentials
    source: str  # "token_file" | "rclone" | "service_account"
    refreshable: bool

    def __repr__(self) -> str:
        return f"DriveCredentials(source={self.source!r})"


# ----------------------------------------------------------------- rclone.conf


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


# ----------------------------------------------------------------- credentials


def token_uri(config: DriveConfig) -> str:
    return config.token_uri or GOOGLE_TOKEN_URI


def load_credentials(config: DriveConfig, remote: Remote) -> DriveCredentials:
    """Credentials for the feed, from the first source that exists (see the module doc)."""
    if config.token_file and os.path.exists(config.token_file):
        return _from_token_file(config)
    if remote.env_auth and not (remote.service_account_file or remote.service_account_credentials):
        # rclone then uses Google's Application Default Credentials and never refreshes the token
        # in rclone.conf (backend/drive createOAuthClient): there is none graylink could borrow.
        raise ConfigError(
            f"[drive] remote: [{remote.name}] has env_auth = true: rclone takes its credentials from the "
            "environment (Application Default Credentials), which graylink does not read; run 'graylink drive "
            "auth' for graylink's own token, or give the remote a service_account_file"
        )
    if remote.token is not None and remote.has_activity_scope:
        return _from_rclone_token(config, remote)
    if remote.service_account_file or remote.service_account_credentials:
        return _from_service_account(config, remote)
    if remote.token is not None:
        return _from_rclone_token(config, remote)  # lacks the scope: Google will say so, and we explain
    raise ConfigError(
        f"[drive] remote: [{remote.name}] has neither a token nor a service account; run "
        f"'rclone config reconnect {remote.name}:' or 'graylink drive auth'"
    )


def _from_token_file(config: DriveConfig) -> DriveCredentials:
    from google.oauth2.credentials import Credentials

    path = config.token_file
    try:
        with open(path, encoding="utf-8") as handle:
            info = json.load(handle)
    except OSError as exc:
        raise ConfigError(f"[drive] token_file: cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise ConfigError(f"[drive] token_file: {path} is not valid JSON; run 'graylink drive auth' again") from None
    if not isinstance(info, dict):
        raise ConfigError(f"[drive] token_file: {path} is not a token; run 'graylink drive auth' again")
    info = dict(info)
    if config.token_uri:
        info["token_uri"] = config.token_uri
    info.setdefault("token_uri", GOOGLE_TOKEN_URI)
    try:
        creds = Credentials.from_authorized_user_info(info)  # type: ignore[no-untyped-call]
    except (ValueError, KeyError):
        raise ConfigError(
            f"[drive] token_file: {path} lacks a refresh token or client; run 'graylink drive auth' again"
        ) from None
    return DriveCredentials(creds, "token_file", refreshable=True)


def _expiry(remote: Remote) -> dt.datetime | None:
    from graylink.rclone.token import parse_go_time

    try:
        return parse_go_time(str((remote.token or {}).get("expiry") or "0001-01-01T00:00:00Z"))
    except ValueError:
        raise ConfigError(f"[drive] remote: the token of [{remote.name}] has an unreadable expiry") from None


def _access_token(remote: Remote) -> str:
    return str((remote.token or {}).get("access_token", ""))


def _from_rclone_token(config: DriveConfig, remote: Remote) -> DriveCredentials:
    from google.oauth2.credentials import Credentials

    from graylink.rclone.token import BorrowedToken

    token = remote.token or {}
    expiry = _expiry(remote)
    if not remote.client_id:
        # rclone's built-in client: its secret is rclone's, so only the access
        # token is usable, until its real expiry; a running rclone rewrites it.
        def reread() -> tuple[str, dt.datetime | None]:
            fresh = read_remote(config)
            return _access_token(fresh), _expiry(fresh)

        borrowed = BorrowedToken(remote.name, str(token["access_token"]), expiry, reread)
        return DriveCredentials(borrowed, "rclone", refreshable=False)
    creds = Credentials(  # type: ignore[no-untyped-call]
        token=token["access_token"],
        refresh_token=token.get("refresh_token") or None,
        client_id=remote.client_id,
        client_secret=remote.client_secret,
        token_uri=token_uri(config),
        expiry=expiry,
        scopes=list(remote.scopes),
    )
    return DriveCredentials(creds, "rclone", refreshable=bool(token.get("refresh_token")))


def _from_service_account(config: DriveConfig, remote: Remote) -> DriveCredentials:
    from google.oauth2 import service_account

    # Name the file (or the inline option), never its content: it holds the private key.
    if remote.service_account_credentials:
        where = f"service_account_credentials of [{remote.name}]"
        try:
            info = json.loads(remote.service_account_credentials)
        except ValueError:
            raise ConfigError(f"[drive] remote: {where} is not valid JSON") from None
    else:
        where = f"service_account_file {remote.service_account_file}"
        try:
            with open(remote.service_account_file, encoding="utf-8") as handle:
                info = json.load(handle)
        except OSError as exc:
            raise ConfigError(f"[drive] remote: cannot read {where}: {exc.strerror}") from None
        except ValueError:
            raise ConfigError(f"[drive] remote: {where} is not valid JSON") from None
    hint = "download a JSON key of the service account in the Google Cloud console"
    if not isinstance(info, dict):
        raise ConfigError(f"[drive] remote: {where} is not a JSON object; {hint}")
    if info.get("type") != "service_account":
        kind = info.get("type")
        what = f"its type is {kind!r}" if isinstance(kind, str) else "it has no type"
        raise ConfigError(f"[drive] remote: {where} is not a service account key ({what}); {hint}")
    missing = [f for f in ("client_email", "private_key") if not isinstance(info.get(f), str) or not info[f].strip()]
    if missing:
        raise ConfigError(f"[drive] remote: {where} lacks {' and '.join(missing)}; {hint}")
    info = dict(info)
    if config.token_uri:
        info["token_uri"] = config.token_uri
    info.setdefault("token_uri", GOOGLE_TOKEN_URI)
    try:
        creds = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=list(GRAYLINK_SCOPES)
        )
    except (ValueError, TypeError):
        # The crypto library's reason may quote the key's framing; say only what is wrong.
        raise ConfigError(f"[drive] remote: the private_key in {where} is not a readable PEM RSA key; {hint}") from None
    if remote.impersonate:
        creds = creds.with_subject(remote.impersonate)
    return DriveCredentials(creds, "service_account", refreshable=True)
