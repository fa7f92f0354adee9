"""The routes of app logs on request (registered by ``http.lifecycle_routes``).

- ``POST /v1/admin/apps/{app}/log-requests`` (admin): ask a user's devices for their logs.
- ``GET /v1/admin/apps/{app}/log-requests[?user=]`` (admin): the requests and their state.
- ``GET /v1/admin/log-requests/{id}/log`` (admin): download an upload.
- ``PUT /v1/log-requests/{id}/upload`` (the session of the user the request is for).
- ``POST /v1/apps/{app}/logs`` (the user's session): logs the app sends unasked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable

from aiohttp import web

from ..api.input import read_model
from ..api.principal import Principal
from ..api.problems import Problem
from ..api.routes import ADMIN, RATE_LIMITED, SESSION, ApiRoutes, Reply, query_of
from ..api.schemas import reply
from .logs import LOG_TYPES, info, send_log
from .schemas import LogQuery, LogRequestCreate, LogRequestList, LogUploaded

NO_SUCH_REQUEST = "no such log request for this session's user"


def add_log_routes(routes: ApiRoutes, config: Callable[[], Any], life: Any,
                   clock: Callable[[], dt.datetime],
                   known_app: Callable[[Callable[[], Any], web.Request], str]) -> None:
    """``known_app``: the admin routes' ``{app}`` check (http.py's)."""
    repo = life.repo.logs

    @routes.post("/v1/admin/apps/{app}/log-requests", summary="Ask a user's devices for "
                 "their logs", security=ADMIN, body=LogRequestCreate,
                 responses={201: LogRequestList},
                 problems={404: "no such app, or the user has no (such) device"})
    async def ask_logs(request: web.Request, who: Principal) -> web.Response:
        """One request per device, each asked by push (alert on iOS, data on Android) with
        its request id; the device uploads to `PUT /v1/log-requests/{id}/upload` before the
        request expires (`lifecycle.logs.request_ttl_seconds`)."""
        name = known_app(config, request)
        req = await read_model(request, LogRequestCreate)
        rows = await life.logs.ask(name, req.user, req.device)
        now = clock()
        return reply(LogRequestList(requests=[info(r, now) for r in rows]), status=201)

    @routes.get("/v1/admin/apps/{app}/log-requests", summary="An app's log requests and "
                "the logs its users sent unasked", security=ADMIN, query=LogQuery,
                responses={200: LogRequestList}, problems={404: "no such app"})
    async def list_logs(request: web.Request, who: Principal) -> web.Response:
        """Newest first, at most 1000; `?user=` narrows to one user, `?origin=admin` to the
        requests an admin made, `?origin=user` to the logs the app sent unasked."""
        name = known_app(config, request)
        now = clock()
        q = query_of(request)
        rows = await repo.for_app(name, q.user, origin=q.origin)
        return reply(LogRequestList(requests=[info(r, now) for r in rows]))

    @routes.get("/v1/admin/log-requests/{request}/log", summary="Download an uploaded log",
                security=ADMIN,
                responses={200: Reply(description="the upload as the device sent it",
                                      media_type="application/octet-stream",
                                      schema={"type": "string", "format": "binary"})},
                problems={404: "no such request, or nothing uploaded yet"})
    async def download(request: web.Request, who: Principal) -> web.StreamResponse:
        """The bytes the device uploaded, with the media type it declared in
        `X-Log-Content-Type` (the answer itself is `application/octet-stream`)."""
        return await send_log(request, repo, request.match_info["request"])

    @routes.put("/v1/log-requests/{request}/upload", summary="Upload the logs an admin asked "
                "for", security=SESSION, responses={201: LogUploaded},
                problems={404: NO_SUCH_REQUEST, 409: "uploaded already",
                          410: "the request has expired",
                          413: "larger than `lifecycle.logs.max_bytes`",
                          415: f"not one of {', '.join(LOG_TYPES)}"})
    async def upload(request: web.Request, who: Principal) -> web.Response:
        """The body is the log file (text/plain, application/gzip or application/zip), at
        most `lifecycle.logs.max_bytes`. `Authorization: Bearer <session token>` of the user
        the request is for: a request of another user or app answers 404, as an unknown one
        does."""
        row = await repo.get(request.match_info["request"])
        if row is None or row.app != who.app or row.user != who.user:
            raise Problem(404, "Unknown log request", NO_SUCH_REQUEST, field="request")
        size, mime, at = await life.logs.upload(row, request)
        return reply(LogUploaded(id=row.id, size=size, content_type=mime, uploaded_at=at),
                     status=201)

    @routes.post("/v1/apps/{app}/logs", summary="Send the app's logs to support, unasked",
                 security=SESSION, responses={201: LogUploaded},
                 problems={409: "the engine takes logs only when an admin asks "
                           "(`lifecycle.logs.user_uploads_per_day` is 0)",
                           413: "larger than `lifecycle.logs.max_bytes`",
                           415: f"not one of {', '.join(LOG_TYPES)}",
                           429: RATE_LIMITED})
    async def send_logs(request: web.Request, who: Principal) -> web.Response:
        """The body is the log file (text/plain, application/gzip or application/zip), at
        most `lifecycle.logs.max_bytes`, with `Authorization: Bearer <session token>`: kept
        for the session's user like a requested upload (listed with `origin: user`,
        downloaded by the admin, purged after `lifecycle.logs.retention_days`). At most
        `lifecycle.logs.user_uploads_per_day` (default 5) per user and app in 24 hours: past
        it, 429 with `Retry-After`."""
        assert who.app is not None and who.user is not None and who.session_id is not None
        row = await life.logs.send_own(who.app, who.user, who.session_id, request)
        assert row.size is not None and row.content_type is not None
        return reply(LogUploaded(id=row.id, size=row.size, content_type=row.content_type,
                                 uploaded_at=row.created_at), status=201)
