"""The loopback Google's OAuth 2.0 endpoints: consent (``/auth``), and ``/token`` for the
authorization-code (with PKCE), refresh-token and service-account JWT-bearer grants.

It follows Google's "Using OAuth 2.0 for Web Server Applications" and "Using
OAuth 2.0 for Server to Server Applications" pages and RFC 7523 as Google runs
it: an RS256 assertion signed with the account's key, ``aud`` Google's token
URI, errors as ``{"error": ..., "error_description": ...}``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass(frozen=True)
class JwtGrant:
    """What a service account asked for in one accepted assertion."""

    email: str
    scopes: frozenset[str]
    subject: str


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _verified_claims(assertion: str, accounts: dict[str, Any]) -> dict[str, Any]:
    """The claims of a service account's assertion, once its signature and times check out."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    parts = assertion.split(".")
    if len(parts) != 3:
        raise ValueError("Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.")
    try:
        header = json.loads(_b64url(parts[0]))
        claims = json.loads(_b64url(parts[1]))
        signature = _b64url(parts[2])
    except ValueError:
        raise ValueError("Invalid JWT: cannot be decoded.") from None
    if header.get("alg") != "RS256" or not isinstance(claims, dict):
        raise ValueError("Invalid JWT: the signing algorithm must be RS256.")
    account = accounts.get(str(claims.get("iss", "")))
    if account is None:
        raise ValueError("Invalid grant: account not found")
    if header.get("kid") not in (None, account.key_id):
        raise ValueError("Invalid JWT Signature.")
    key = serialization.load_pem_public_key(account.public_key_pem)
    assert isinstance(key, rsa.RSAPublicKey)
    try:
        key.verify(signature, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise ValueError("Invalid JWT Signature.") from None
    now = time.time()
    if claims.get("aud") != GOOGLE_TOKEN_AUDIENCE:
        raise ValueError("Invalid JWT: audience must be the token endpoint.")
    if not (float(claims.get("iat", 0)) - 300 <= now < float(claims.get("exp", 0))):
        raise ValueError("Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.")
    return claims


class OAuthRoutes:
    """Handler methods for the OAuth routes (mixed into the loopback's request handler)."""

    google: Any

    # -- OAuth

    def _auth(self, query: dict[str, str]) -> None:
        state = self.google.state
        if query.get("client_id") not in state.clients or query.get("response_type") != "code":
            self._send(400, {"error": "invalid_request"})
            return
        code = f"fake-code-{next(self.google._ids)}"
        state.codes[code] = {
            "client_id": query["client_id"],
            "redirect_uri": query.get("redirect_uri", ""),
            "scopes": set(query.get("scope", "").split()),
            "challenge": query.get("code_challenge", ""),
        }
        params = {"state": query.get("state", ""), "code": code, "scope": query.get("scope", "")}
        location = query.get("redirect_uri", "") + "?" + urllib.parse.urlencode(params)
        self._send(302, None, {"Location": location})

    def _client_credentials(self, form: dict[str, str]) -> tuple[str, str | None]:
        """RFC 6749 2.3.1: HTTP Basic (client_secret_basic) or the form (client_secret_post);
        Google's token endpoint takes both (its discovery document's token_endpoint_auth_methods_supported)."""
        header = str(getattr(self, "headers", {}).get("Authorization", ""))
        if header.startswith("Basic "):
            raw = base64.b64decode(header[len("Basic ") :]).decode()
            client, _, secret = raw.partition(":")
            return urllib.parse.unquote_plus(client), urllib.parse.unquote_plus(secret)
        return form.get("client_id", ""), form.get("client_secret")

    def _token(self, form: dict[str, str]) -> None:
        if form.get("grant_type") == JWT_BEARER:
            self._jwt_grant(form.get("assertion", ""))
            return
        state = self.google.state
        client, secret = self._client_credentials(form)
        if state.clients.get(client) != secret or not client:
            self._send(401, {"error": "invalid_client", "error_description": "The OAuth client was not found."})
            return
        grant = form.get("grant_type")
        if grant == "refresh_token":
            scopes = state.refresh_tokens.get(form.get("refresh_token", ""))
            if scopes is None:
                self._send(400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
                return
            refresh = None
        elif grant == "authorization_code":
            code = state.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if code is None or code["redirect_uri"] != form.get("redirect_uri") or code["challenge"] != challenge:
                self._send(400, {"error": "invalid_grant", "error_description": "Bad Request"})
                return
            scopes = code["scopes"]
            refresh = f"fake-refresh-{next(self.google._ids)}"
            state.refresh_tokens[refresh] = scopes
        else:
            self._send(400, {"error": "unsupported_grant_type"})
            return
        access = self.google.issue_access_token(sorted(scopes))
        payload = {
            "access_token": access,
            "expires_in": 3599,
            "scope": " ".join(sorted(scopes)),
            "token_type": "Bearer",
        }
        if refresh:
            payload["refresh_token"] = refresh
        self._send(200, payload)

    def _jwt_grant(self, assertion: str) -> None:
        """RFC 7523 as Google runs it for service accounts: an RS256 JWT signed with the
        account's key, ``iss`` the account, ``aud`` Google's token URI, ``scope`` what it wants."""
        try:
            claims = _verified_claims(assertion, self.google.state.service_accounts)
        except ValueError as exc:
            self._send(400, {"error": "invalid_grant", "error_description": str(exc)})
            return
        scopes = frozenset(str(claims.get("scope", "")).split())
        if not scopes:
            self._send(
                400,
                {"error": "invalid_scope", "error_description": "Invalid OAuth scope or ID token audience provided."},
            )
            return
        self.google.state.jwt_grants.append(JwtGrant(str(claims["iss"]), scopes, str(claims.get("sub", ""))))
        access = self.google.issue_access_token(sorted(scopes))
        self._send(200, {"access_token": access, "expires_in": 3599, "token_type": "Bearer"})
