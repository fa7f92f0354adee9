"""What a customer's backend does for the tests: sign user assertions (PyJWT), as the README's
ten lines show. The fixtures' apps verify HS256 assertions with these secrets (their
``user_assertion`` defaults), issued by ``ISSUER``."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

ISSUER = "https://backend.test"
SECRETS = {app: f"{app}-backend-secret-{'0' * (24 - len(app))}"
           for app in ("customer", "staff", "field", "mobileapp", "shop")}


def assertion(app: str, user: str, *, secret: str | None = None, algorithm: str = "HS256",
              key: Any = None, issuer: str = ISSUER, iat: float | None = None,
              lifetime: float = 120, jti: str | None = None, audience: str | None = None,
              headers: dict | None = None, drop: tuple[str, ...] = (), **extra: Any) -> str:
    """A signed assertion that ``user`` is logged in to ``app`` (what the customer's backend
    answers its app before the app logs in to the engine)."""
    now = time.time() if iat is None else iat
    claims = {"sub": user, "aud": audience or app, "iss": issuer, "iat": int(now),
              "exp": int(now + lifetime), "jti": jti or uuid.uuid4().hex, **extra}
    for name in drop:
        claims.pop(name, None)
    signing = key if key is not None else (secret or SECRETS[app]).encode()
    return jwt.encode(claims, signing, algorithm=algorithm, headers=headers)
