"""Google credentials for the Drive feed, taken from the user's rclone setup.

The remote comes from rclone.conf (:mod:`graylink.drive.remote`). Three sources give the
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
import json
import os
from dataclasses import dataclass
from typing import Any

from graylink.config import DriveConfig
from graylink.drive.remote import SCOPE_PREFIX, Remote, read_remote
from graylink.errors import ConfigError, GraylinkError

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - an endpoint, not a secret
GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/auth"
# What graylink asks for itself: read the feed, resolve item IDs to names.
GRAYLINK_SCOPES = (SCOPE_PREFIX + "drive.activity.readonly", SCOPE_PREFIX + "drive.metadata.readonly")

MISSING_SCOPE_HINT = (
    "the Drive token lacks the drive.activity scope that the Drive Activity API requires; fix it either with "
    "'graylink drive auth' (graylink's own token, using the remote's OAuth client), or by setting "
    "'scope = drive,drive.activity.readonly' on the rclone remote and running 'rclone config reconnect REMOTE:'"
)


class DriveAuthError(GraylinkError):
    """Credentials exist but cannot be used right now (expired, refused): a runtime failure."""


@dataclass
class DriveCredentials:
    """google-auth credentials plus where they came from (for status and doctor)."""

    credentials: Any  # google.auth.credentials.Credentials
    source: str  # "token_file" | "rclone" | "service_account"
    refreshable: bool

    def __repr__(self) -> str:
        return f"DriveCredentials(source={self.source!r})"


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
