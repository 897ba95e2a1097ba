"""The ``alerts`` command group: ``alerts test`` sends one message through ``[alerts] urls``."""

from __future__ import annotations

import click

from graylink.cli.app import AppContext, fail, handle_errors
from graylink.errors import ConfigError


@click.group()
def alerts() -> None:
    """Alerts through Apprise ([alerts] urls)."""


@alerts.command("test")
@click.pass_obj
@handle_errors
def alerts_test(app: AppContext) -> None:
    """Send one test message through every [alerts] url now; exit 1 when one fails."""
    from graylink.alerts.trial import send_test

    urls = app.config.alerts.urls
    if not urls:
        raise ConfigError("alerts test: no [alerts] urls configured (or GRAYLINK_ALERTS_URLS): nothing to send")
    result = send_test(urls)
    services = "service" if result.total == 1 else "services"
    line = f"alerts test: sent to {result.sent} of {result.total} {services}"
    if result.ok:
        app.say(line)
        return
    fail(f"{line}; failed: {', '.join(result.failed)}", 1)
