"""The one door every request comes through: rate limits, the credential the route declares,
its query parameters — then the handler, given the principal.

In order, for every route:

1. **per address** (the TCP peer; before anything is looked at): public, SDK, admin and
   provider routes alike;
2. **credential**, as the route declares it (``routes.Security``; alternatives tried in the
   order declared, the kind of token deciding which applies; a route that declares
   ``adminBasic`` also takes the admin token as an HTTP Basic password). A route behind a
   credential first checks the address's budget of failed credentials: an address that keeps
   presenting wrong keys gets 429 before anything is compared. Every refusal is the same
   generic 401 (the reason is logged, never a credential), compared in constant time, so
   neither the answer nor its timing tells which apps, users or sessions exist. The admin
   console's routes take its session cookie (``cookies.py``; a request that changes
   something also its CSRF token: 403 otherwise) and its login the admin token as a form
   field; a refused console page (GET) is redirected to the login form (303);
3. **per principal**: a user's session per user; an app key per app and address (the key
   ships in every copy of the app: one client cannot spend another's budget); every
   request of an app against the app's ceiling;
4. **path and query parameters**: path parameters printable (no NUL, control character or
   lone surrogate: 422 naming it), the query through the route's ``query`` model (422
   naming the parameter);
5. the handler, called with the :class:`Principal`.

Log lines never carry a credential (a provider's callback ``{token}`` is written ``***``,
``problems.loggable_path``); refusals for load (429) are logged at most once per 10 s per
kind (``ratelimit.QuietLog``), with a count of those left out.

The door knows no feature: the session check and the provider check are handed to it
(``SessionCheck``, ``ProviderCheck``) by the composition root.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Awaitable, Callable, Protocol

from aiohttp import web
from pydantic import BaseModel, ValidationError

from . import cookies
from .auth import (
    ProvenSession,
    app_for_key,
    basic_password,
    bearer_token,
    key_matches,
    looks_like_session,
    MAX_TOKEN,
)
from .input import check_path, first_problem
from .principal import Principal
from .problems import Problem, loggable_path
from .ratelimit import QuietLog, TokenBuckets, retry_after
from .routes import (
    ADMIN,
    ADMIN_BASIC,
    ADMIN_FORM,
    APP_KEY,
    CONSOLE,
    CSRF_REFUSED,
    PRINCIPAL,
    PROVIDER,
    PUBLIC,
    QUERY,
    SAFE_METHODS,
    SESSION,
    RouteSpec,
    spec_of,
)

log = logging.getLogger("ivr_engine.api")
quiet = QuietLog(log)

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ivr-engine"'}
MAX_QUERY_VALUE = 1024


class SessionCheck(Protocol):
    async def __call__(self, token: bytes) -> ProvenSession | None:
        """The open session ``token`` stands for; None when it is no session's token; raises
        a Problem for a session that has ended (how it ended)."""


ProviderCheck = Callable[[web.Request], Awaitable[str | None]]  # the provider, or None


class _Refused(Exception):
    """A credential was presented and is wrong: the reason goes to the log only."""


def _unauthorized(basic: bool = False) -> Problem:
    challenge = ({"WWW-Authenticate": CHALLENGE["WWW-Authenticate"] + ', Basic realm='
                  '"ivr-engine"'} if basic else CHALLENGE)
    return Problem(401, "Unauthorized", "a valid credential for this route is required "
                   "(see the route's security in /openapi.json)", headers=challenge)


def _too_many(scope: str, wait: float) -> Problem:
    return Problem(429, "Too Many Requests", f"too many requests for this {scope}; retry "
                   "after the Retry-After delay", headers={"Retry-After": retry_after(wait)})


class Door:
    """The middleware (``door.middleware``) and its buckets. ``config`` returns the current
    Config (reloads swap it: new limits and keys apply at once)."""

    def __init__(self, config: Callable[[], Any], *, sessions: SessionCheck | None = None,
                 providers: ProviderCheck | None = None,
                 buckets: TokenBuckets | None = None) -> None:
        self._config = config
        self._sessions = sessions
        self._providers = providers
        self.buckets = buckets if buckets is not None else TokenBuckets()

    # ------------------------------------------------------------------ the middleware

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        limits = self._config().engine.api.rate_limit
        address = request.remote or "unknown"
        self._take(f"addr|{address}", limits.per_address, "client address")
        if request.match_info.http_exception is not None:  # no such route or method
            return await handler(request)
        spec = spec_of(request.match_info.handler)
        if spec is None:
            log.error("route %s %s has no declaration: refused", request.method,
                      request.match_info.route.resource)
            raise Problem(500, "Internal Server Error", "this route is not declared")
        if spec.public:
            who = Principal(PUBLIC, address)
        else:
            who = await self._authenticate(request, spec, address)
            self._limit(who)
        check_path(request.match_info)
        if spec.query is not None:
            request[QUERY] = read_query(request, spec.query)
        request[PRINCIPAL] = who
        return await handler(request)

    # ------------------------------------------------------------------ credentials

    async def _authenticate(self, request: web.Request, spec: RouteSpec,
                            address: str) -> Principal:
        fails = self._config().engine.api.rate_limit.failed_credentials
        wait = self.buckets.wait(f"fail|{address}", fails.rate, fails.burst)
        if wait:
            quiet(logging.INFO, "failed credentials", "%s %s from %s refused: too many "
                  "failed credentials from this address", request.method,
                  loggable_path(request, 80), address)
            raise _too_many("client address (failed credentials)", wait)
        if CONSOLE in spec.security:
            token = console_cookie(request)
        elif ADMIN_FORM in spec.security:
            token = await form_field(request, "token")
        else:
            token = bearer_token(request)
            if token is None and ADMIN_BASIC in spec.security:
                token = basic_password(request)  # the admin token as a Basic password
        try:
            return await self._prove(request, spec, token, address)
        except _Refused as exc:
            if token is not None:  # a wrong credential (none at all is not a guess)
                self.buckets.take(f"fail|{address}", fails.rate, fails.burst)
            log.info("%s %s from %s refused: %s", request.method, loggable_path(request, 80),
                     address, exc)
            if spec.login is not None and (request.method in SAFE_METHODS
                                           or ADMIN_FORM in spec.security):
                # a browser page: to the login form (which says a login failed)
                failed = "?failed=1" if ADMIN_FORM in spec.security else ""
                raise web.HTTPSeeOther(spec.login + failed) from None
            raise _unauthorized(ADMIN_BASIC in spec.security) from None

    async def _prove(self, request: web.Request, spec: RouteSpec, token: bytes | None,
                     address: str) -> Principal:
        cfg = self._config()
        named = request.match_info.get("app")  # the route names its app: {app}
        accepted = spec.security
        if SESSION in accepted and looks_like_session(token):
            assert token is not None
            if self._sessions is None:
                raise _Refused("sessions are not available in this process")
            session = await self._sessions(token)
            if session is None:
                raise _Refused("no such session")
            if named is not None and session.app != named:
                raise _Refused(f"a session of app {session.app!r} on app {named[:80]!r}")
            return Principal(SESSION, address, app=session.app, user=session.user,
                             session_id=session.id)
        if APP_KEY in accepted:
            app = app_for_key(cfg.model.apps, token, named)
            if app is None:
                raise _Refused(self._key_reason(cfg, named))
            return Principal(APP_KEY, address, app=app)
        if CONSOLE in accepted:
            return await self._console(request, cfg.engine.api.admin_token, token, address)
        if ADMIN in accepted or ADMIN_FORM in accepted:
            secret = cfg.engine.api.admin_token
            if not key_matches(token, secret):
                raise _Refused("admin API disabled: engine.api.admin_token is not configured"
                               if secret is None else "missing or wrong admin token")
            return Principal(ADMIN if ADMIN in accepted else ADMIN_FORM, address)
        if PROVIDER in accepted:
            provider = await self._providers(request) if self._providers else None
            if provider is None:
                raise _Refused("no such provider callback, or its secret is wrong")
            return Principal(PROVIDER, address, provider=provider)
        raise _Refused("a session token is required" if SESSION in accepted else
                       f"no credential this route accepts ({', '.join(accepted)})")

    @staticmethod
    async def _console(request: web.Request, secret: Any, cookie: bytes | None,
                       address: str) -> Principal:
        """The console's session cookie; a request that changes something must also carry
        the session's CSRF token (403 otherwise: the cookie alone may be a forged request)."""
        nonce = cookies.verify(secret, cookie, time.time())
        if nonce is None:
            raise _Refused("console disabled: engine.api.admin_token is not configured"
                           if secret is None else "no console session, or it has expired")
        if request.method not in SAFE_METHODS:
            presented = request.headers.get(cookies.CSRF_HEADER)
            if presented is None:
                raw = await form_field(request, cookies.CSRF_FIELD)
                presented = raw.decode("ascii", "replace") if raw is not None else None
            if not cookies.csrf_matches(secret, nonce, presented):
                log.info("%s %s from %s refused: CSRF token missing or wrong", request.method,
                         loggable_path(request, 80), address)
                raise Problem(403, "Forbidden", CSRF_REFUSED)
        return Principal(CONSOLE, address, csrf=cookies.csrf_token(secret, nonce))

    @staticmethod
    def _key_reason(cfg: Any, named: str | None) -> str:
        if named is None:
            return "no app has this api key"
        app = cfg.model.apps.get(named)
        if app is None:
            return f"unknown app {named[:80]!r}"
        if app.api_key is None:
            return f"app {named!r} has no api_key configured"
        return f"missing or wrong api key for app {named!r}"

    # ------------------------------------------------------------------ limits

    def _take(self, key: str, limit: Any, scope: str) -> None:
        wait = self.buckets.take(key, limit.rate, limit.burst)
        if wait:
            quiet(logging.INFO, scope, "rate limit per %s: %.120s over %g/s (burst %d)", scope,
                  key, limit.rate, limit.burst)
            raise _too_many(scope, wait)

    def _limit(self, who: Principal) -> None:
        limits = self._config().engine.api.rate_limit
        if who.scheme is SESSION:
            self._take(f"user|{who.app}|{who.user}", limits.per_user, "user")
        elif who.scheme is APP_KEY:
            self._take(f"client|{who.app}|{who.address}", limits.per_client,
                       "app key from this address")
        if who.app is not None:
            self._take(f"app|{who.app}", limits.per_app, "app")


def console_cookie(request: web.Request) -> bytes | None:
    """The console's session cookie, as ASCII bytes (None: absent or not ASCII)."""
    value = request.cookies.get(cookies.COOKIE)
    if not value or not value.isascii():
        return None
    return value.encode()


async def form_field(request: web.Request, name: str) -> bytes | None:
    """A field of a urlencoded form body (aiohttp keeps the parsed form for the handler);
    None for another body, a missing field or one that is not UTF-8."""
    if request.content_type != "application/x-www-form-urlencoded":
        return None
    try:
        form = await request.post()
    except (ValueError, UnicodeDecodeError):
        return None
    value = form.get(name)
    if not isinstance(value, str) or not value:
        return None
    raw = value.encode("utf-8", "surrogatepass")
    return raw if len(raw) <= MAX_TOKEN else None


def read_query(request: web.Request, model: type[BaseModel]) -> BaseModel:
    """The query string through ``model``: each parameter at most once, printable text of at
    most 1 KiB; then the model's own rules. A 422 names the parameter."""
    values: dict[str, str] = {}
    for key, value in request.query.items():
        if key in values:
            raise Problem(422, "Invalid request", f"{key[:40]}: given more than once",
                          field=key[:40])
        if len(value) > MAX_QUERY_VALUE or not value.isprintable():
            raise Problem(422, "Invalid request", f"{key[:40]}: at most {MAX_QUERY_VALUE} "
                          "printable characters", field=key[:40])
        values[key] = value
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise first_problem(exc) from None

