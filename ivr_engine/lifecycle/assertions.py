"""User assertions: how a login proves its user (issue 16).

The app's SDK key ships inside every copy of the app, so it proves the app and never a user.
A user is proven by the customer's own backend, which knows who is logged in to its app: it
signs a short-lived JWT ``{sub: <user>, aud: <app>, iss, iat, exp, jti}`` and the app sends
it with its login. The engine verifies it with the one algorithm the app's
``user_assertion`` pins (``alg: none`` and every other algorithm refused before any key is
used), within a bounded clock skew, for this app (``aud``) and issuer, and accepts each
``jti`` once while the assertion is valid (``assertion_jtis``).

Keys: HS256 uses the shared ``secret``; RS256, ES256 and EdDSA a PEM public key or a JWKS
file, read off the event loop and cached until the file changes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable

import jwt

from ..api.problems import Problem

log = logging.getLogger("ivr_engine.lifecycle")

MAX_ASSERTION = 8192
REQUIRED = ("sub", "aud", "iss", "iat", "exp", "jti")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ivr-engine", error="invalid_token"'}


class AssertionRefused(Problem):
    """401: the assertion does not prove the user; ``detail`` says why (what the app sent
    is the app's own: telling it what is wrong reveals nothing it does not hold)."""

    def __init__(self, why: str):
        super().__init__(401, "Invalid user assertion", f"the user assertion is refused: {why}",
                         field="assertion", headers=_CHALLENGE)


@dataclass(frozen=True, slots=True)
class Asserted:
    user: str
    jti: str
    expires_at: dt.datetime


class _Keys:
    """Public keys read from files off the loop, cached by (path, mtime, size)."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple[int, int], Any]] = {}

    async def get(self, path: str, algorithm: str, jwks: bool) -> Any:
        stat = await asyncio.to_thread(os.stat, path)
        stamp = (stat.st_mtime_ns, stat.st_size)
        hit = self._cache.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        loaded = await asyncio.to_thread(_load, path, algorithm, jwks)
        self._cache[path] = (stamp, loaded)
        return loaded


def _load(path: str, algorithm: str, jwks: bool) -> Any:
    with open(path, "rb") as f:
        raw = f.read(1 << 20)
    if jwks:
        return {k.key_id: k.key for k in jwt.PyJWKSet.from_json(raw.decode()).keys}
    return jwt.get_algorithm_by_name(algorithm).prepare_key(raw)


class Assertions:
    """Verify an app's user assertions; ``jtis`` records each accepted one (the lifecycle
    repository: ``use_jti``)."""

    def __init__(self, config: Callable[[], Any], jtis: Any,
                 clock: Callable[[], dt.datetime]):
        self._config, self._jtis, self._clock = config, jtis, clock
        self._keys = _Keys()

    async def verify(self, app: str, token: str) -> Asserted:
        """The user ``token`` proves, its ``jti`` used up (:meth:`check`, then :meth:`use`)."""
        asserted = await self.check(app, token)
        await self.use(app, asserted)
        return asserted

    async def use(self, app: str, asserted: Asserted) -> None:
        """Record the assertion's ``jti``: refused (401) when it was used already."""
        if not await self._jtis.use_jti(app, asserted.jti, asserted.expires_at):
            log.warning("app %s: assertion %.40r for %.80r presented again (replay refused)",
                        app, asserted.jti, asserted.user)
            raise AssertionRefused("it was used already (jti)")

    async def check(self, app: str, token: str) -> Asserted:
        """The user ``token`` proves (signature, claims), its ``jti`` not yet used up: a
        login that stops before opening a session (the hand-over question) leaves it
        usable for the repeat."""
        spec = self._config().model.apps[app].user_assertion
        if spec is None or (spec.algorithm == "HS256" and spec.secret is None):
            raise Problem(409, "Logins not configured", f"app {app!r} has no user_assertion "
                          "(or its secret is not set): a login needs an assertion signed by "
                          "your backend (see docs/security.md, users and sessions)")
        if len(token) > MAX_ASSERTION or not token.isascii():
            raise AssertionRefused("not a compact JWT")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AssertionRefused("not a compact JWT") from None
        if header.get("alg") != spec.algorithm:
            raise AssertionRefused(f"algorithm {str(header.get('alg'))[:16]!r} is not the "
                                   f"app's ({spec.algorithm})")
        key = await self._key(app, spec, header)
        try:
            claims = jwt.decode(
                token, key, algorithms=[spec.algorithm], audience=app, issuer=spec.issuer,
                options={"require": list(REQUIRED), "verify_exp": False,
                         "verify_iat": False, "verify_nbf": False})
        except jwt.InvalidAudienceError:
            raise AssertionRefused(f"it is not for app {app!r} (aud)") from None
        except jwt.InvalidIssuerError:
            raise AssertionRefused("wrong issuer (iss)") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AssertionRefused(f"claim {exc.claim} is missing") from None
        except jwt.InvalidSignatureError:
            raise AssertionRefused("bad signature") from None
        except jwt.PyJWTError as exc:
            raise AssertionRefused(type(exc).__name__) from None
        asserted = self._check_claims(claims, spec)
        if await self._jtis.jti_used(app, asserted.jti):
            raise AssertionRefused("it was used already (jti)")
        return asserted

    async def _key(self, app: str, spec: Any, header: dict) -> Any:
        if spec.algorithm == "HS256":
            return spec.secret.get_secret_value().encode("utf-8", "surrogatepass")
        path = spec.jwks_file or spec.public_key_file
        try:
            keys = await self._keys.get(path, spec.algorithm, jwks=spec.jwks_file is not None)
        except (OSError, ValueError, jwt.PyJWTError, json.JSONDecodeError) as exc:
            log.error("app %s: the user assertion key %s cannot be used: %s", app, path, exc)
            raise Problem(503, "Logins unavailable", "the app's assertion key cannot be read; "
                          "the error is in the engine's log") from None
        if spec.jwks_file is None:
            return keys
        kid = header.get("kid")
        if kid is None and len(keys) == 1:
            return next(iter(keys.values()))
        if not isinstance(kid, str) or kid not in keys:
            raise AssertionRefused("no key of the app's JWKS has this kid")
        return keys[kid]

    def _check_claims(self, claims: dict, spec: Any) -> Asserted:
        now = self._clock().timestamp()
        skew, max_age = spec.leeway_seconds, spec.max_age_seconds
        iat, exp = claims.get("iat"), claims.get("exp")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (iat, exp)):
            raise AssertionRefused("iat and exp must be numbers (seconds)")
        if iat > now + skew:
            raise AssertionRefused("it is issued in the future (iat)")
        if exp <= now - skew:
            raise AssertionRefused("it has expired (exp)")
        if exp - iat > max_age or now - iat > max_age + skew:
            raise AssertionRefused(f"it lives longer than max_age_seconds ({max_age})")
        sub, jti = claims.get("sub"), claims.get("jti")
        if not isinstance(sub, str) or not 0 < len(sub) <= 128 or not sub.isprintable():
            raise AssertionRefused("sub must be the user's id: 1 to 128 printable characters")
        if not isinstance(jti, str) or not 0 < len(jti) <= 128 or not jti.isprintable():
            raise AssertionRefused("jti must be 1 to 128 printable characters")
        expires = dt.datetime.fromtimestamp(exp + skew, dt.timezone.utc)
        return Asserted(sub, jti, expires)
