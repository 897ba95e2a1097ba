"""``graylink doctor``'s Drive checks: remote, credentials, root folder, feed scope."""

from __future__ import annotations

import time

from graylink.checks import Check
from graylink.config import Config
from graylink.drive.activity import fetch_activities
from graylink.drive.credentials import DriveAuthError, load_credentials, read_remote
from graylink.drive.google import build_clients, ensure_fresh, resolve_root, root_spec, runtime_error
from graylink.errors import ConfigError


def doctor_checks(config: Config) -> list[Check]:
    """Remote, credential refresh, activity scope, root folder: each with a hint, never a secret."""
    if not config.drive.enabled:
        return []
    checks: list[Check] = []
    try:
        remote = read_remote(config.drive)
    except ConfigError as exc:
        return [Check("drive remote", False, str(exc), "fix [drive] remote / rclone_config (see 'rclone listremotes')")]
    where = f"[{remote.name}]" + (f" path {remote.path!r}" if remote.path else "")
    checks.append(Check("drive remote", True, f"rclone remote {where} in {config.drive.rclone_config}"))
    try:
        creds = load_credentials(config.drive, remote)
    except (ConfigError, DriveAuthError) as exc:
        checks.append(Check("drive credentials", False, str(exc), "run 'graylink drive auth'"))
        return checks
    hint = "see docs/google-drive.md" if creds.source == "service_account" else "run 'graylink drive auth'"
    try:
        clients = build_clients(config.drive, creds)
        ensure_fresh(creds)
    except DriveAuthError as exc:
        checks.append(Check("drive credentials", False, str(exc), hint))
        return checks
    except Exception as exc:
        message, _ = runtime_error(exc, creds.source)
        checks.append(Check("drive credentials", False, message, hint))
        return checks
    checks.append(Check("drive credentials", True, f"token from {_SOURCE_NAMES[creds.source]} is valid"))
    try:
        start, path = root_spec(config.drive, remote)
        root_id = resolve_root(clients, remote, start, path)
        checks.append(Check("drive root folder", True, f"the mount root is Drive folder {root_id}"))
    except DriveAuthError as exc:
        checks.append(Check("drive root folder", False, str(exc), "check [drive] folder_id and the remote's path"))
        return checks
    except Exception as exc:
        message, _ = runtime_error(exc)
        checks.append(Check("drive root folder", False, message, "check [drive] folder_id and the remote's path"))
        return checks
    try:
        for _ in fetch_activities(clients, root_id, int(time.time() * 1000)):
            pass
        checks.append(Check("drive activity scope", True, "the Drive Activity API answers"))
    except Exception as exc:
        message, scope = runtime_error(exc)
        hint = "see docs/google-drive.md" if scope else "check the network and the Drive Activity API in the console"
        checks.append(Check("drive activity scope", False, message, hint))
    return checks


_SOURCE_NAMES = {
    "token_file": "graylink's token file",
    "rclone": "the rclone remote",
    "service_account": "the service account",
}
