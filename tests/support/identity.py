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


LOGIN_DEVICE = {"platform": "mobile", "app_type": "Mobile", "app_version": "2.0.0",
                "os": "android", "os_version": "14"}


async def open_session(http: Any, api_url: str, app: str, api_key: str, user: str,
                       **fields: Any) -> str:
    """Log ``user`` in to ``app`` over HTTP (an aiohttp ClientSession) as the SDK does: the
    assertion from the app's backend, the app's key; the session token."""
    body = {**LOGIN_DEVICE, "device_id": f"dev-{user}", "assertion": assertion(app, user),
            **fields}
    async with http.post(f"{api_url}/v1/apps/{app}/sessions", json=body,
                         headers={"Authorization": f"Bearer {api_key}"}) as r:
        if r.status != 201:
            raise AssertionError(f"login of {user!r} to {app!r}: {r.status} {await r.text()}")
        return (await r.json())["token"]
