"""``graylink doctor``'s Drive checks: remote, credentials, root folder, and the feed that runs."""

from __future__ import annotations

import time

from graylink.checks import N_, Check, said
from graylink.config import Config
from graylink.drive.activity import fetch_activities
from graylink.drive.changes import start_token
from graylink.drive.credentials import DriveAuthError, DriveCredentials, load_credentials
from graylink.drive.feed import choose_feed
from graylink.drive.google import DriveClients, build_clients, ensure_fresh, resolve_root, root_spec, runtime_error
from graylink.drive.mountmatch import mount_check
from graylink.drive.names import names_for, root_path
from graylink.drive.remote import Remote, read_remote
from graylink.errors import ConfigError

BORROWED_HINT = said(
    N_(
        "the remote uses rclone's built-in client, whose token only rclone refreshes: keep the rclone mount "
        "running (with --poll-interval it uses the Drive every minute), or set your own client_id/client_secret "
        "on the remote and run 'graylink drive auth'"
    )
)


def doctor_checks(config: Config) -> list[Check]:
    """Remote, credential refresh, activity scope, root folder: each with a hint, never a secret."""
    if not config.drive.enabled:
        return []
    from graylink.rclone.token import BorrowedTokenExpired  # google-auth: only when the feed is on

    checks: list[Check] = []
    try:
        remote = read_remote(config.drive)
    except ConfigError as exc:
        hint = said(N_("fix [drive] remote / rclone_config (see 'rclone listremotes')"))
        return [Check("drive remote", False, str(exc), hint)]
    where = f"rclone remote [{remote.name}]" + (f" path {remote.path!r}" if remote.path else "")
    if remote.crypt is not None:
        where = f"crypt remote {remote.crypt.spec} over [{remote.name}]"
    conf = remote.conf_path or said(N_("the environment"))
    checks.append(Check("drive remote", True, said(N_("%(remote)s in %(conf)s"), remote=where, conf=conf)))
    served = mount_check(config, remote)
    if served is not None:
        checks.append(served)
    try:
        names = names_for(remote)
    except ConfigError as exc:
        checks.append(Check("drive names", False, str(exc), said(N_("install rclone (see docs/rclone.md)"))))
        return checks
    try:
        creds = load_credentials(config.drive, remote)
    except (ConfigError, DriveAuthError) as exc:
        checks.append(Check("drive credentials", False, str(exc), said(N_("run 'graylink drive auth'"))))
        return checks
    hint = said(
        N_("see docs/google-drive.md") if creds.source == "service_account" else N_("run 'graylink drive auth'")
    )
    try:
        clients = build_clients(config.drive, creds)
        ensure_fresh(clients)
    except BorrowedTokenExpired as exc:
        checks.append(Check("drive credentials", False, f"{exc} and rclone has not refreshed it", BORROWED_HINT))
        return checks
    except DriveAuthError as exc:
        checks.append(Check("drive credentials", False, str(exc), hint))
        return checks
    except Exception as exc:
        message, _ = runtime_error(exc, creds.source)
        checks.append(Check("drive credentials", False, message, hint))
        return checks
    valid = said(N_("token from %(source)s is valid"), source=_SOURCE_NAMES[creds.source])
    checks.append(Check("drive credentials", True, valid))
    try:
        start, path = root_spec(config.drive, remote)
        path = root_path(remote, names, path, config.drive.folder_id)
        root_id = resolve_root(clients, remote, start, path, names)
        checks.append(Check("drive root folder", True, said(N_("the mount root is Drive folder %(id)s"), id=root_id)))
    except DriveAuthError as exc:
        checks.append(Check("drive root folder", False, str(exc), ROOT_HINT))
        return checks
    except Exception as exc:
        message, _ = runtime_error(exc)
        checks.append(Check("drive root folder", False, message, ROOT_HINT))
        return checks
    checks.append(_feed_check(config, clients, creds, remote, root_id))
    return checks


def _feed_check(config: Config, clients: DriveClients, creds: DriveCredentials, remote: Remote, root_id: str) -> Check:
    choice = choose_feed(config.drive, creds, remote)
    api = "Drive Changes API" if choice.kind == "changes" else "Drive Activity API"
    try:
        if choice.kind == "changes":
            start_token(clients, remote.team_drive)
        else:
            for _ in fetch_activities(clients, root_id, int(time.time() * 1000)):
                pass
    except Exception as exc:
        message, scope = runtime_error(exc)
        hint = said(N_("see docs/google-drive.md"))
        if not scope:
            hint = said(N_("check the network and the %(api)s in the Cloud console"), api=api)
        return Check("drive feed", False, f"{api} ({choice.reason}): {message}", hint)
    return Check("drive feed", True, said(N_("the %(api)s answers (%(reason)s)"), api=api, reason=choice.reason))


_SOURCE_NAMES = {
    "token_file": said(N_("graylink's token file")),
    "rclone": said(N_("the rclone remote")),
    "service_account": said(N_("the service account")),
}
ROOT_HINT = said(N_("check [drive] folder_id and the remote's path"))
