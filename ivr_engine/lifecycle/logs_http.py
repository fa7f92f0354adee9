"""The routes of app logs on request (registered by ``http.lifecycle_routes``).

- ``POST /v1/admin/apps/{app}/log-requests`` (admin): ask a user's devices for their logs.
- ``GET /v1/admin/apps/{app}/log-requests[?user=]`` (admin): the requests and their state.
- ``GET /v1/admin/log-requests/{id}/log`` (admin): download an upload.
- ``PUT /v1/log-requests/{id}/upload`` (the app's api key, or the user's session token).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..api.auth import authenticate_app, bearer_token, key_matches, require_admin
from ..api.guards import throttle_address, throttle_key
from ..api.input import read_model
from ..api.problems import Problem
from ..api.routes import ADMIN_TOKEN, RATE_LIMITED, SDK_KEY, ApiRoutes, Reply
from ..api.schemas import reply
from .auth import authenticate_sdk
from .logs import LOG_TYPES, info, send_log
from .problems import UPDATE_REQUIRED
from .schemas import LogRequestCreate, LogRequestList, LogUploaded
from .service import lifecycle_of


def add_log_routes(routes: ApiRoutes, ctx: Any, app_of: Any, query: Any) -> None:
    @routes.post("/v1/admin/apps/{app}/log-requests", summary="Ask a user's devices for "
                 "their logs", security=ADMIN_TOKEN, body=LogRequestCreate,
                 responses={201: LogRequestList},
                 problems={404: "no such app, or the user has no (such) device"}, tag="admin")
    async def ask_logs(request: web.Request) -> web.Response:
        """One request per device, each asked by push (alert on iOS, data on Android) with
        its request id; the device uploads to `PUT /v1/log-requests/{id}/upload` before the
        request expires (`lifecycle.logs.request_ttl_seconds`)."""
        cfg = ctx.config()
        require_admin(cfg, request)
        name = app_of(cfg, request)
        req = await read_model(request, LogRequestCreate)
        life = lifecycle_of(ctx)
        rows = await life.logs.ask(name, req.user, req.device)
        now = ctx.clock()
        return reply(LogRequestList(requests=[info(r, now) for r in rows]), status=201)

    @routes.get("/v1/admin/apps/{app}/log-requests", summary="An app's log requests",
                security=ADMIN_TOKEN, responses={200: LogRequestList},
                problems={404: "no such app", 422: "a bad query parameter (`field`)"},
                tag="admin")
    async def list_logs(request: web.Request) -> web.Response:
        """Newest first, at most 1000; `?user=` narrows to one user."""
        cfg = ctx.config()
        require_admin(cfg, request)
        name, user = app_of(cfg, request), query(request, "user")
        now = ctx.clock()
        rows = await ctx.store.lifecycle.logs.for_app(name, user)
        return reply(LogRequestList(requests=[info(r, now) for r in rows]))

    @routes.get("/v1/admin/log-requests/{request}/log", summary="Download an uploaded log",
                security=ADMIN_TOKEN,
                responses={200: Reply(description="the upload as the device sent it",
                                      media_type="application/octet-stream",
                                      schema={"type": "string", "format": "binary"})},
                problems={404: "no such request, or nothing uploaded yet"}, tag="admin")
    async def download(request: web.Request) -> web.StreamResponse:
        """The bytes the device uploaded, with the media type it declared in
        `X-Log-Content-Type` (the answer itself is `application/octet-stream`)."""
        require_admin(ctx.config(), request)
        return await send_log(request, ctx.store.lifecycle.logs, request.match_info["request"])

    @routes.route("PUT", "/v1/log-requests/{request}/upload", summary="Upload the logs an "
                  "admin asked for", security=SDK_KEY, responses={201: LogUploaded},
                  problems={403: UPDATE_REQUIRED, 404: "no such request (to an app key; "
                            "401 otherwise)", 409: "uploaded already",
                            410: "the request has expired",
                            413: "larger than `lifecycle.logs.max_bytes`",
                            415: f"not one of {', '.join(LOG_TYPES)}", 429: RATE_LIMITED})
    async def upload(request: web.Request) -> web.Response:
        """The body is the log file (text/plain, application/gzip or application/zip), at
        most `lifecycle.logs.max_bytes`. Authorization: the app's api key, or the session
        token of the user the request is for. An unknown request id answers 404 to an app's
        api key, 401 to anything else."""
        throttle_address(ctx, request)
        cfg = ctx.config()
        rid = request.match_info["request"]
        row = await ctx.store.lifecycle.logs.get(rid)
        if row is None:
            token = bearer_token(request)
            if not any([key_matches(token, app.api_key) for app in cfg.model.apps.values()]):
                authenticate_app(cfg, request, None)  # the generic 401
            raise Problem(404, "Unknown log request", "no such log request", field="request")
        name = await authenticate_sdk(ctx, request, row.app, row.user)
        throttle_key(ctx, name)
        size, mime, at = await lifecycle_of(ctx).logs.upload(row, request)
        return reply(LogUploaded(id=row.id, size=size, content_type=mime, uploaded_at=at),
                     status=201)
