"""Failure alerts (异常通知): one message per state change, delivered through Apprise.

The service hands every job's outcome to :class:`Alerts` as an
:class:`Observation`; :func:`evaluate` (pure) decides what is worth a message.
"""

from graylink.alerts.deliver import Alerts, apprise_sender, masked
from graylink.alerts.observe import from_crash, from_cycle, from_feed, from_mount
from graylink.alerts.rules import Alert, Observation, ServerSeen, State, evaluate

__all__ = [
    "Alert",
    "Alerts",
    "Observation",
    "ServerSeen",
    "State",
    "apprise_sender",
    "evaluate",
    "from_crash",
    "from_cycle",
    "from_feed",
    "from_mount",
    "masked",
]
