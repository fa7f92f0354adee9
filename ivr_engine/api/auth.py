"""Credentials as the door reads them: Bearer tokens (and, for the routes that accept it, the
admin token as an HTTP Basic password), compared fail-closed and in constant time.

- The token is read from the raw header bytes: a header may carry any byte (obs-text), and
  nothing here decodes or encodes it, so no header can make authentication raise.
- A key is compared against a dummy when there is nothing to compare against (unknown app,
  app without ``api_key``): neither the answer nor its timing tells which apps exist.
- No ``api_key`` / ``admin_token`` configured means the door is shut, not open.
"""

from __future__ import annotations

import binascii
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Mapping

from aiohttp import web
from pydantic import SecretStr

_DUMMY_KEY = secrets.token_bytes(32)
SESSION_TOKEN_PREFIX = b"ivs_"  # lifecycle/sessions.py makes them
MAX_TOKEN = 512


@dataclass(frozen=True, slots=True)
class ProvenSession:
    """An open session, as the session check found it for the door."""

    id: int
    app: str
    user: str


def bearer_token(request: web.Request) -> bytes | None:
    """The token of the request's single ``Authorization: Bearer`` header, or None (absent,
    repeated, another scheme, empty, or longer than any credential the engine issues)."""
    values = [v for k, v in request.raw_headers if k.lower() == b"authorization"]
    if len(values) != 1:
        return None
    scheme, _, token = values[0].partition(b" ")
    token = token.strip(b" \t")
    if scheme.lower() != b"bearer" or not token or len(token) > MAX_TOKEN:
        return None
    return token


def basic_password(request: web.Request) -> bytes | None:
    """The password of the request's single ``Authorization: Basic`` header (RFC 7617:
    base64 of ``user:password``; the user is not a credential here), or None (absent,
    repeated, another scheme, not base64, no colon, empty, or too long)."""
    values = [v for k, v in request.raw_headers if k.lower() == b"authorization"]
    if len(values) != 1:
        return None
    scheme, _, encoded = values[0].partition(b" ")
    encoded = encoded.strip(b" \t")
    if scheme.lower() != b"basic" or not encoded or len(encoded) > 2 * MAX_TOKEN:
        return None
    try:
        decoded = binascii.a2b_base64(encoded, strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    _, colon, password = decoded.partition(b":")
    if not colon or not password or len(password) > MAX_TOKEN:
        return None
    return password


def looks_like_session(token: bytes | None) -> bool:
    return token is not None and token.startswith(SESSION_TOKEN_PREFIX) and len(token) <= 128


def key_matches(presented: bytes | None, secret: SecretStr | None) -> bool:
    """Constant time whatever is missing: a missing side is replaced by a dummy and still
    compared. Keys are compared as UTF-8 bytes (surrogatepass: a YAML escape cannot crash)."""
    expected = (secret.get_secret_value().encode("utf-8", "surrogatepass")
                if secret is not None else _DUMMY_KEY)
    same = hmac.compare_digest(presented if presented is not None else _DUMMY_KEY, expected)
    return same and presented is not None and secret is not None


def app_for_key(apps: Mapping[str, Any], token: bytes | None, named: str | None) -> str | None:
    """The app whose ``api_key`` the token is: ``named`` only when the route names its app,
    else whichever app (every key compared, so the time does not depend on which)."""
    if named is not None:
        app = apps.get(named)
        return named if key_matches(token, app.api_key if app is not None else None) else None
    found = None
    for name, app in apps.items():
        if key_matches(token, app.api_key):
            found = name
    return found
