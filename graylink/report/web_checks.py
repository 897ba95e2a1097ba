"""``graylink doctor`` for ``[web]`` and ``[alerts]``: the address is usable, the Apprise URLs parse.

Nothing is sent: an alert URL is only parsed by Apprise itself, and the web
address is bound for a moment (or, while the service runs, asked for its status).
"""

from __future__ import annotations

import errno
import socket

from graylink.checks import Check
from graylink.config import Config
from graylink.config.values import listen_address
from graylink.store.lock import holder


def web_checks(config: Config) -> list[Check]:
    if not config.web.listen:
        return []
    host, port = listen_address(config.web.listen)
    auth = "token required" if config.web.token else "no token: loopback only"
    if holder(config.paths.database) is not None:
        return [_ask_running(config, host, port, auth)]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            in_use = f"{config.web.listen} is in use by another program"
            return [Check("web", False, in_use, "pick another [web] listen")]
        reason = exc.strerror or str(exc)
        return [Check("web", False, f"cannot listen on {config.web.listen}: {reason}", "fix [web] listen")]
    return [Check("web", True, f"{config.web.listen} is free for the status page ({auth})")]


def _ask_running(config: Config, host: str, port: int, auth: str) -> Check:
    import requests

    from graylink.system.http_deadline import DeadlineSession

    shown = f"[{host}]" if ":" in host else host
    headers = {"Authorization": f"Bearer {config.web.token}"} if config.web.token else {}
    try:
        with DeadlineSession(5.0) as session:
            answer = session.get(f"http://{shown}:{port}/api/status", headers=headers, timeout=5)
    except requests.RequestException as exc:
        return Check(
            "web",
            False,
            f"the service runs but {config.web.listen} does not answer ({exc.__class__.__name__})",
            "the service reads [web] at start: restart it after changing [web] listen",
        )
    if answer.status_code == 401:
        refused = f"{config.web.listen} refuses this config's token"
        return Check("web", False, refused, "restart the service after a token change")
    return Check("web", answer.ok, f"the service answers on {config.web.listen} ({auth})")


def alert_checks(config: Config) -> list[Check]:
    if not config.alerts.urls:
        return []
    from graylink.alerts.deliver import masked, not_understood

    bad = not_understood(config.alerts.urls)
    if bad:
        shown = ", ".join(masked(url) for url in bad)
        return [
            Check(
                "alerts",
                False,
                f"Apprise does not understand {len(bad)} of the [alerts] urls ({shown})",
                "check each URL against https://github.com/caronc/apprise/wiki (e.g. tgram://BOT_TOKEN/CHAT_ID)",
            )
        ]
    events = ", ".join(config.alerts.events) if config.alerts.events else "every event"
    schemes = ", ".join(sorted({masked(url) for url in config.alerts.urls}))
    return [Check("alerts", True, f"{len(config.alerts.urls)} Apprise URLs ({schemes}) for {events}")]
