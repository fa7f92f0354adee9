"""RFC 9457 problem documents, and the middleware that makes every error answer one.

Handlers and guards raise :class:`Problem` from any depth instead of threading responses
back up. The middleware also rewrites aiohttp's own errors (unknown route, wrong method,
oversized body) and, as a last resort, turns an unexpected exception into a logged 500: a
client never sees a traceback or a text/plain error page (the requests aiohttp's parser
refuses before any middleware are answered in ``listener.py``).

A path parameter that is a credential (an SMS provider's callback ``{token}``) never reaches
a log line: :func:`loggable_path` writes it as ``***``.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Awaitable, Callable, Mapping

from aiohttp import hdrs, web
from sqlalchemy import exc as db_errors

from .schemas import ProblemDocument, UpdateRequiredProblem

log = logging.getLogger("ivr_engine.api")

PROBLEM = "application/problem+json"

#: path parameters that are credentials (sms/webhooks.py: the providers' callback tokens) or
#: may carry one (sms/ucontact.py: SendSMS's parameters as a path segment)
SECRET_PARAMS = frozenset({"token", "form"})
#: a refusal for load (rate limits, caps, no capacity) closes the connection: a client told
#: to come back later does not keep a descriptor of the engine meanwhile
CLOSES_CONNECTION = frozenset({429, 503})

_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")  # a route template's {name} or {name:regex}

_AIOHTTP_DETAILS = {
    404: "no such resource (see the API routes in the README)",
    405: "this resource does not accept that method (see the Allow header)",
    413: "the request body is too large",
}


def problem_response(status: int, title: str, detail: str, instance: str, *,
                     field: str | None = None,
                     headers: Mapping[str, str] | None = None) -> web.Response:
    body = ProblemDocument.model_construct(title=title, status=status, detail=detail,
                                           instance=instance, field=field
                                           ).model_dump(exclude_none=True)
    # ensure_ascii (the default) escapes anything a client sent us, lone surrogates included
    return web.Response(status=status, text=json.dumps(body), content_type=PROBLEM,
                        headers=headers)


class Problem(Exception):
    """An error answer; ``field`` names the bad request field, ``headers`` go with it
    (``Retry-After``, ``WWW-Authenticate``)."""

    def __init__(self, status: int, title: str, detail: str, *, field: str | None = None,
                 headers: Mapping[str, str] | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.field = field
        self.headers = dict(headers or {})

    def response(self, request: web.Request) -> web.Response:
        resp = problem_response(self.status, self.title, self.detail, request.path,
                                field=self.field, headers=self.headers)
        if self.status in CLOSES_CONNECTION:
            resp.force_close()
        return resp


def loggable_path(request: web.BaseRequest, limit: int = 200) -> str:
    """The request's path for a log line: printable, at most ``limit`` characters, with every
    credential path parameter (:data:`SECRET_PARAMS`) written ``***``."""
    path = request.path
    info = getattr(request, "match_info", None)
    if info is not None and info.http_exception is None and SECRET_PARAMS & info.keys():
        # rebuilt from the route's template: the secret's segment, and only it, is ***
        path = _PARAM.sub(lambda m: "***" if m[1] in SECRET_PARAMS else info.get(m[1], ""),
                          info.route.resource.canonical)
    path = path if path.isprintable() else repr(path)[1:-1]
    return path if len(path) <= limit else path[:limit] + "…"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem as exc:
        return exc.response(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items()
                   if k not in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH)}
        return problem_response(exc.status, exc.reason,
                                _AIOHTTP_DETAILS.get(exc.status, exc.reason), request.path,
                                headers=headers)
    except Exception as exc:
        if not database_unavailable(exc):
            log.exception("unexpected error answering %s %s", request.method,
                          loggable_path(request))
            return problem_response(500, "Internal Server Error", "the engine failed to "
                                    "answer this request; the error is in its log",
                                    request.path)
        # the database is busy or away (SQLite locked past its busy timeout, PostgreSQL gone,
        # a statement past its timeout, no pooled connection): the client may retry
        log.warning("database unavailable answering %s %s: %s", request.method,
                    loggable_path(request), _first_line(exc))
        return problem_response(503, "Service Unavailable", "the database did not answer in "
                                "time; retry shortly", request.path,
                                headers={hdrs.RETRY_AFTER: "1"})


def database_unavailable(exc: BaseException) -> bool:
    """The database is busy or cannot be reached. SQLAlchemy wraps the driver's errors once
    connected; opening a connection, asyncpg raises the socket's own ``OSError`` (refused,
    no such socket, reset) through SQLAlchemy's pool unwrapped: an ``OSError`` is the
    database's when it was raised inside SQLAlchemy or the driver, not in a handler's own
    I/O (an outgoing HTTP request's refusal stays a 500)."""
    if isinstance(exc, (db_errors.OperationalError, db_errors.TimeoutError,
                        db_errors.InterfaceError)):
        return True
    if not isinstance(exc, OSError):
        return False
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_globals.get("__name__", "")
        if name.startswith(("sqlalchemy.", "asyncpg.", "aiosqlite.")):
            return True
        tb = tb.tb_next
    return False


def _first_line(exc: BaseException) -> str:
    """The driver's message without the SQL statement and parameters SQLAlchemy appends."""
    orig = getattr(exc, "orig", None)
    return (str(orig if orig is not None else exc).splitlines() or ["?"])[0][:200]


def invalid(detail: str, field: str | None) -> Problem:
    """422 for a field the request got wrong (named in ``field``)."""
    return Problem(422, "Invalid request", detail, field=field)


# ---------------------------------------------------------------- the session credential
# answered by the door on every route that accepts a session token, and by logins

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ivr-engine", error="invalid_token"'}


class UpdateRequired(Problem):
    """403: the device's version is below a mandatory release: login, calls and call plans
    are refused until it reports a version at or above ``minimum_version``."""

    def __init__(self, *, platform: str, version: str, minimum_version: str, store_url: str):
        super().__init__(403, "Update required",
                         f"version {version} of this app on {platform} is below the mandatory "
                         f"version {minimum_version}: update it from the store")
        self.platform, self.minimum_version, self.store_url = platform, minimum_version, store_url

    def response(self, request: web.Request) -> web.Response:
        doc = UpdateRequiredProblem(
            title=self.title, status=self.status, detail=self.detail, instance=request.path,
            reason="mandatory_update", minimum_version=self.minimum_version,
            store_url=self.store_url, platform=self.platform)
        return web.Response(status=self.status, content_type=PROBLEM,
                            text=json.dumps(doc.model_dump(exclude_none=True)))


def session_ended(reason: str) -> Problem:
    """401 for a session token whose session has ended (logout, replaced, expired)."""
    return Problem(401, "Unauthorized", f"this session has ended ({reason}): log in again",
                   headers=_CHALLENGE)
