"""Who is asking: Bearer credentials, checked fail-closed and in constant time.

- The token is read from the raw header bytes: a header may carry any byte (obs-text), and
  nothing here decodes or encodes it, so no header can make authentication raise.
- An SDK route answers the same generic 401 for an unknown app, an app without ``api_key``
  and a wrong key, and compares against a dummy key when there is nothing to compare
  against: neither the answer nor its timing tells which apps exist. The real reason is
  logged (never the key).
- No ``api_key`` / ``admin_token`` configured means the door is shut, not open.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from .problems import Problem

log = logging.getLogger("ivr_engine.api")

_DUMMY_KEY = secrets.token_bytes(32)
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ivr-engine"'}


def bearer_token(request: web.Request) -> bytes | None:
    """The token of the request's single ``Authorization: Bearer`` header, or None (absent,
    repeated, another scheme, or empty)."""
    values = [v for k, v in request.raw_headers if k.lower() == b"authorization"]
    if len(values) != 1:
        return None
    scheme, _, token = values[0].partition(b" ")
    token = token.strip(b" \t")
    if scheme.lower() != b"bearer" or not token:
        return None
    return token


def key_matches(presented: bytes | None, secret: SecretStr | None) -> bool:
    """Constant time whatever is missing: a missing side is replaced by a dummy and still
    compared. Keys are compared as UTF-8 bytes (surrogatepass: a YAML escape cannot crash)."""
    expected = (secret.get_secret_value().encode("utf-8", "surrogatepass")
                if secret is not None else _DUMMY_KEY)
    same = hmac.compare_digest(presented if presented is not None else _DUMMY_KEY, expected)
    return same and presented is not None and secret is not None


def authenticate_app(cfg: Any, request: web.Request, name: object) -> str:
    """The app ``name`` if the request carries its api key; else the generic 401."""
    app = cfg.model.apps.get(name) if isinstance(name, str) else None
    ok = key_matches(bearer_token(request), app.api_key if app is not None else None)
    if ok and isinstance(name, str):
        return name
    if app is None:
        reason = "unknown app"
    elif app.api_key is None:
        reason = "the app has no api_key configured"
    else:
        reason = "missing or wrong api key"
    # names come from the client (the body, for devices): bounded in the log
    log.info("SDK request %s %.80r from %s refused: %s (app %.80r)", request.method,
             request.path, request.remote, reason, name)
    raise Problem(401, "Unauthorized", "a valid Bearer api key for this app is required",
                  headers=_CHALLENGE)


def require_admin(cfg: Any, request: web.Request) -> None:
    token = cfg.engine.api.admin_token
    if token is None:
        raise Problem(401, "Unauthorized",
                      "admin API disabled: engine.api.admin_token is not configured",
                      headers=_CHALLENGE)
    if not key_matches(bearer_token(request), token):
        raise Problem(401, "Unauthorized", "a valid admin Bearer token is required",
                      headers=_CHALLENGE)
