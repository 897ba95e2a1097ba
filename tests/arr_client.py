"""Sonarr / Radarr's webhook connection, as their source sends a call and judges the answer.

Follows Sonarr ``develop`` (Radarr's files are the same):
``src/NzbDrone.Core/Notifications/Webhook/WebhookProxy.cs`` (the method is the
connection's ``WebhookMethod``: ``POST`` or ``PUT``; ``Content-Type:
application/json``, ``Accept: application/json``; basic credentials when a
user name or password is set), ``src/NzbDrone.Common/Http/Dispatchers/
ManagedHttpDispatcher.cs`` (the ``Authorization: Basic`` value is
``user:password`` encoded ISO-8859-1, a character outside it sent as ``?``),
``src/NzbDrone.Common/Http/HttpClient.cs`` and ``HttpResponse.cs`` (any status
of 400 or more is an ``HttpException``: the call failed),
``src/NzbDrone.Core/Notifications/NotificationStatusService.cs`` with
``ThingiProvider/Status/ProviderStatusServiceBase.cs`` and
``EscalationBackOff.cs`` (each failure is recorded; once failures have gone on
for ``MinimumTimeSinceInitialFailure``, 5 minutes, the connection is disabled
for the next escalation period, up to an hour, and its events are dropped).

So the one thing graylink must never do to an authorised call is answer it
with 400 or more: :attr:`ArrWebhook.failures` counts what Sonarr would hold
against the connection.
"""

from __future__ import annotations

import base64

import requests

ESCALATION_S = (0, 60, 5 * 60, 15 * 60, 30 * 60, 60 * 60)  # EscalationBackOff.Periods up to MaximumEscalationLevel 5


class ArrWebhook:
    def __init__(self, url: str, password: str, username: str = "graylink", method: str = "POST") -> None:
        self.url, self.password, self.username, self.method = url, password, username, method
        self.failures = 0
        self.answers: list[int] = []

    def headers(self) -> dict[str, str]:
        credentials = f"{self.username}:{self.password}".encode("latin-1", errors="replace")
        return {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Authorization": "Basic " + base64.b64encode(credentials).decode("ascii"),
        }

    def send(self, body: bytes | str) -> requests.Response:
        data = body.encode("utf-8") if isinstance(body, str) else body
        answer = requests.request(self.method, self.url, data=data, headers=self.headers(), timeout=60)
        self.answers.append(answer.status_code)
        if answer.status_code >= 400:  # HttpResponse.HasHttpError → HttpException → a recorded failure
            self.failures += 1
        return answer
