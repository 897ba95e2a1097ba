"""The checks every request passes before a route runs: its Host, its origin, its token.

One place, so that every route -- the *arr webhooks, the triggers, and the
management routes to come -- is held to the same rules (docs/web.md, Security):

- **Host** (DNS rebinding): a face without a token answers only a ``Host``
  that is a loopback name or address, or the configured listen host, on the
  listen port. A page on ``attacker.example`` whose name was rebound to
  127.0.0.1 sends ``Host: attacker.example`` and is refused.
- **Cross-site** (CSRF): a request that changes something (any method but
  GET, HEAD, OPTIONS) must be JSON (``Content-Type: application/json``: a page
  can send ``text/plain`` or a form to another origin without asking, but
  not JSON), and when it carries ``Origin`` or ``Sec-Fetch-Site`` -- every
  browser sends them on such a request, Sonarr, Radarr, curl and scripts do
  not -- they must name this very origin. So basic authentication the browser
  cached for the status page never authorises a request from another page.
- **Token**: ``Authorization: Bearer``, ``X-Api-Key``, or basic auth with the
  token as the password.
"""

from __future__ import annotations

import base64
import hmac
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from graylink.config.values import is_loopback, listen_address

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
JSON = "application/json"


class Headers(Protocol):
    """What is read of a request's headers (werkzeug's ``Headers``: case-insensitive)."""

    def get(self, key: str, default: str) -> str: ...


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str


def _wire(text: str) -> bytes:
    """A header value as the bytes on the wire (the server decoded them ISO-8859-1)."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def presented_token(headers: Headers) -> bytes:
    header = headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return _wire(value.strip())
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except ValueError:
            return b""
        return decoded.partition(b":")[2]  # the password; Sonarr / Radarr send the token there
    return _wire(headers.get("X-Api-Key", ""))


def token_forms(token: str) -> list[bytes]:
    """The token as clients encode it: UTF-8 (browsers, curl), ISO-8859-1 (Sonarr / Radarr's
    basic auth, ``ManagedHttpDispatcher.cs``: a token with non-ASCII letters differs)."""
    forms = [token.encode("utf-8")]
    if all(ord(c) < 256 for c in token):  # else the *arr sends '?' for a letter: no form of it can match
        forms.append(token.encode("latin-1"))
    return forms


def authorized(headers: Headers, token: str) -> bool:
    if not token:
        return True  # no token: the server listens on loopback only (the config refuses the rest)
    presented = presented_token(headers)
    return any([hmac.compare_digest(presented, form) for form in token_forms(token)])


def _split_host(value: str) -> tuple[str, int | None] | None:
    """``name``, ``name:port``, ``[v6]:port`` as (lower-case name, port); None when malformed."""
    try:
        parts = urlsplit(f"//{value}")
        port = parts.port
    except ValueError:
        return None
    if parts.hostname is None or parts.username is not None or parts.path or parts.query or parts.fragment:
        return None
    return parts.hostname.rstrip(".").lower(), port


def host_refusal(host: str | None, listen: str, token: str) -> Refusal | None:
    """With no token, only loopback names and the listen host, on the listen port."""
    if token or host is None:  # no Host at all: HTTP/1.0 from a script; no browser sends that
        return None
    listen_host, listen_port = listen_address(listen)
    split = _split_host(host)
    if split is not None:
        name, port = split
        local = name == "localhost" or name.endswith(".localhost") or is_loopback(name)
        if (local or name == listen_host.lower()) and port in (None, listen_port):
            return None
    return Refusal(
        403,
        f"Host {host[:100]!r} is not this server's name: without [web] token the face answers only "
        f"loopback names and {listen} (a guard against DNS rebinding; set a token to serve other names)",
    )


def cross_site_refusal(method: str, headers: Headers, host: str | None, mimetype: str) -> Refusal | None:
    """A state-changing request from another origin, or one a page could forge, is refused."""
    if method in SAFE_METHODS:
        return None
    fetch_site = headers.get("Sec-Fetch-Site", "").lower()
    if fetch_site and fetch_site not in ("same-origin", "none"):
        return Refusal(403, f"a {fetch_site} request from a browser page cannot change anything here")
    origin = headers.get("Origin", "") or None
    if origin is not None:
        own = _split_host(host or "")
        try:
            theirs = _split_host(urlsplit(origin).netloc) if origin != "null" else None
        except ValueError:
            theirs = None
        if own is None or theirs is None or theirs != own:
            return Refusal(403, f"a request from another origin ({origin[:100]}) cannot change anything here")
    if mimetype != JSON:
        return Refusal(415, f"send the body as JSON, with Content-Type: {JSON}")
    return None
