"""The admin console's session cookie and its CSRF token (what the door checks for the
``CONSOLE`` scheme; the console's login issues the cookie).

Stateless and keyed by the admin token: the cookie is ``base64url(expiry ‖ nonce ‖ MAC)``,
the MAC an HMAC-SHA256 under a key derived from ``engine.api.admin_token``. Every engine that
shares the config accepts it (nothing kept in one process's memory), it ends at its expiry
(:data:`SESSION_SECONDS`), and changing the admin token ends every console session at once.
A logout clears the cookie in the browser; a copy taken before stays valid until its expiry
(no server-side list of sessions to strike it from: say so in the README).

The CSRF token is an HMAC of the session's nonce under the same key: bound to the session,
never stored, compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from pydantic import SecretStr

COOKIE = "ivr_console"
SESSION_SECONDS = 8 * 3600
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
_NONCE, _EXPIRY, _MAC = 16, 8, 32
_LENGTH = _EXPIRY + _NONCE + _MAC
_PURPOSE = b"ivr-engine console session v1"


def _key(secret: SecretStr) -> bytes:
    raw = secret.get_secret_value().encode("utf-8", "surrogatepass")
    return hmac.new(raw, _PURPOSE, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: bytes) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def issue(secret: SecretStr, now: float) -> str:
    """A new session cookie's value, valid :data:`SESSION_SECONDS` from ``now``."""
    payload = int(now + SESSION_SECONDS).to_bytes(_EXPIRY, "big") + secrets.token_bytes(_NONCE)
    return _b64(payload + hmac.new(_key(secret), payload, hashlib.sha256).digest())


def verify(secret: SecretStr | None, value: bytes | None, now: float) -> bytes | None:
    """The session's nonce when ``value`` is a cookie this admin token issued and it has not
    expired; else None (no token configured, malformed, forged, expired)."""
    if secret is None or value is None or len(value) > 2 * _LENGTH:
        return None
    raw = _unb64(value)
    if raw is None or len(raw) != _LENGTH:
        return None
    payload, mac = raw[:-_MAC], raw[-_MAC:]
    if not hmac.compare_digest(mac, hmac.new(_key(secret), payload, hashlib.sha256).digest()):
        return None
    if int.from_bytes(payload[:_EXPIRY], "big") <= now:
        return None
    return payload[_EXPIRY:]


def csrf_token(secret: SecretStr, nonce: bytes) -> str:
    """The CSRF token of the session whose nonce is ``nonce``."""
    return _b64(hmac.new(_key(secret), b"csrf" + nonce, hashlib.sha256).digest())


def csrf_matches(secret: SecretStr, nonce: bytes, presented: str | None) -> bool:
    expected = csrf_token(secret, nonce).encode()
    given = (presented or "").encode("utf-8", "surrogatepass")[:128]
    return hmac.compare_digest(given, expected) and presented is not None
