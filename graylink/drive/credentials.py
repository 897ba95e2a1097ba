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

import configparser
import datetime as dt
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from graylink.config import DriveConfig
from graylink.errors import ConfigError, GraylinkError

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


def _read_rclone_conf(path: str) -> configparser.ConfigParser:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise ConfigError(f"[drive] rclone_config: {path} does not exist (run 'rclone config' first)") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not readable text"
        raise ConfigError(f"[drive] rclone_config: cannot read {path}: {reason}") from None
    if text.lstrip().startswith("RCLONE_ENCRYPT_V0:"):
        raise ConfigError(
            f"[drive] rclone_config: {path} is encrypted with a password; graylink cannot read it "
            "(point [drive] rclone_config at an unencrypted copy, or use 'graylink drive auth')"
        )
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(f"[drive] rclone_config: {path} is not a valid rclone config: {first}") from None
    return parser


def _split_remote(spec: str) -> tuple[str, str]:
    name, _, path = spec.strip().partition(":")
    return name.strip(), path.strip().strip("/")


def _join_remote_path(base: str, sub: str) -> str:
    return "/".join(p for p in (base.strip("/"), sub.strip("/")) if p)


def parse_scopes(text: str) -> tuple[str, ...]:
    """rclone's ``scope`` option: comma-separated short names or full URLs; default ``drive``."""
    words = [w.strip() for w in (text or "drive").split(",") if w.strip()]
    return tuple(w if w.startswith("https://") else SCOPE_PREFIX + w for w in words)


def parse_go_time(text: str) -> dt.datetime | None:
    """A Go ``time.Time`` as JSON (RFC 3339, up to nanoseconds) → naive UTC, as google-auth wants.

    Go's zero time (``0001-01-01T00:00:00Z``) means "no expiry" and gives None.
    """
    match = re.fullmatch(
        r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text.strip(), flags=re.IGNORECASE
    )
    if not match:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    base, frac, zone = match.groups()
    stamp = dt.datetime.fromisoformat(base).replace(microsecond=int((frac or "0")[:6].ljust(6, "0")))
    if stamp.year <= 1:
        return None
    if zone.upper() != "Z":
        sign = 1 if zone[0] == "+" else -1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        stamp -= sign * dt.timedelta(hours=hours, minutes=minutes)
    return stamp


def read_remote(config: DriveConfig) -> Remote:
    """Find ``[drive] remote`` in rclone.conf, following aliases; ConfigError for anything unusable."""
    if not config.remote:
        raise ConfigError("[drive] remote is not set: name the rclone remote of the mount (e.g. gdrive:)")
    parser = _read_rclone_conf(config.rclone_config)
    name, path = _split_remote(config.remote)
    seen: list[str] = []
    while True:
        if not name:
            raise ConfigError(f"[drive] remote: {config.remote!r} does not name an rclone remote")
        if not parser.has_section(name):
            raise ConfigError(f"[drive] remote: no remote [{name}] in {config.rclone_config}")
        if name in seen or len(seen) >= _ALIAS_DEPTH:
            raise ConfigError(f"[drive] remote: aliases loop through [{name}] in {config.rclone_config}")
        seen.append(name)
        section = parser[name]
        kind = section.get("type", "").strip()
        if kind == "alias":
            target_name, target_path = _split_remote(section.get("remote", ""))
            if not target_name:
                raise ConfigError(f"[drive] remote: alias [{name}] has no 'remote = NAME:path'")
            name, path = target_name, _join_remote_path(target_path, path)
            continue
        if kind == "crypt":
            raise ConfigError(
                f"[drive] remote: [{name}] is a crypt remote; its names on the Drive are encrypted, so the feed "
                "cannot be matched to the mount's paths (set [drive] enabled = no and rely on the walk)"
            )
        if kind != "drive":
            raise ConfigError(f"[drive] remote: [{name}] has type {kind or '(none)'!r}, not 'drive'")
        return _drive_remote(name, path, section, config.rclone_config)


def _drive_remote(name: str, path: str, section: configparser.SectionProxy, conf_path: str) -> Remote:
    token: dict[str, Any] | None = None
    raw_token = section.get("token", "").strip()
    if raw_token:
        try:
            parsed = json.loads(raw_token)
        except ValueError:
            raise ConfigError(f"[drive] remote: the token of [{name}] in {conf_path} is not valid JSON") from None
        if not isinstance(parsed, dict) or not parsed.get("access_token"):
            raise ConfigError(f"[drive] remote: the token of [{name}] in {conf_path} has no access_token")
        token = parsed
    return Remote(
        name=name,
        path=path,
        client_id=section.get("client_id", "").strip(),
        client_secret=section.get("client_secret", "").strip(),
        scopes=parse_scopes(section.get("scope", "")),
        token=token,
        root_folder_id=section.get("root_folder_id", "").strip(),
        team_drive=section.get("team_drive", "").strip(),
        service_account_file=os.path.expanduser(section.get("service_account_file", "").strip()),
        service_account_credentials=section.get("service_account_credentials", "").strip(),
        impersonate=section.get("impersonate", "").strip(),
    )


# ----------------------------------------------------------------- credentials


def token_uri(config: DriveConfig) -> str:
    return config.token_uri or GOOGLE_TOKEN_URI


def load_credentials(config: DriveConfig, remote: Remote) -> DriveCredentials:
    """Credentials for the feed, from the first source that exists (see the module doc)."""
    if config.token_file and os.path.exists(config.token_file):
        return _from_token_file(config)
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


def _from_rclone_token(config: DriveConfig, remote: Remote) -> DriveCredentials:
    from google.oauth2.credentials import Credentials

    token = remote.token or {}
    try:
        expiry = parse_go_time(str(token.get("expiry") or "0001-01-01T00:00:00Z"))
    except ValueError:
        raise ConfigError(f"[drive] remote: the token of [{remote.name}] has an unreadable expiry") from None
    if not remote.client_id:
        # rclone's built-in client: its secret is rclone's, so only the access
        # token is usable, and only while a running rclone keeps it fresh.
        if expiry is not None and expiry <= dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=60):
            raise DriveAuthError(
                f"the access token of rclone remote [{remote.name}] has expired and graylink cannot refresh "
                "tokens of rclone's built-in client; keep the rclone mount running (it refreshes the token), "
                "or set your own client_id/client_secret on the remote and run 'graylink drive auth'"
            )
        creds = Credentials(  # type: ignore[no-untyped-call]
            token=token["access_token"], expiry=expiry, scopes=list(remote.scopes)
        )
        return DriveCredentials(creds, "rclone", refreshable=False)
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
