"""The lifecycle's routes.

SDK (the app's api key; logout with the session token):
- ``POST /v1/apps/{app}/sessions``: login → session token (a new login ends the user's open
  session of the app and tells its device by push).
- ``DELETE /v1/apps/{app}/sessions/current``: logout (``Bearer <session token>``).

Admin (admin token):
- ``GET /v1/admin/apps/{app}/sessions[?user=]``: the open sessions (Login Info).
- ``POST /v1/admin/apps/{app}/releases``: publish (or re-publish) a release; notices go out.
- ``GET /v1/admin/apps/{app}/releases``, ``GET /v1/admin/releases/{id}/notices``.
- ``GET /v1/reports/logins`` (JSON) and ``/v1/reports/logins.csv``: the login report.
- App logs on request: ``logs_http.py``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..api.auth import authenticate_app, bearer_token, require_admin
from ..api.context import ApiContext
from ..api.guards import throttle_address, throttle_key
from ..api.input import is_text, read_model
from ..api.problems import Problem
from ..api.routes import ADMIN_TOKEN, RATE_LIMITED, SDK_KEY, ApiRoutes, Reply
from ..api.schemas import reply
from .logs_http import add_log_routes
from .problems import UPDATE_REQUIRED
from .releases import release_info
from .report import MAX_ROWS, RangeError, time_range, to_csv
from .schemas import (
    LoggedOut,
    LoginReport,
    LoginRequest,
    LoginResponse,
    LoginRow,
    NoticeInfo,
    NoticeList,
    PublishResponse,
    ReleaseList,
    ReleaseRequest,
    ReplacedSession,
    SessionInfo,
    SessionList,
)
from .service import lifecycle_of
from .sessions import looks_like_session_token

_MAX_ID = 2**31 - 1
_QUERY = ("from", "to", "app", "user")


def _app(cfg: Any, request: web.Request) -> str:
    name = request.match_info["app"]
    if name not in cfg.model.apps:
        raise Problem(404, "Unknown app", f"no app named {name[:80]!r}", field="app")
    return name


def _query(request: web.Request, key: str) -> str | None:
    value = request.query.get(key)
    if value is None:
        return None
    if not is_text(value, 128) or "\x00" in value:
        raise Problem(422, "Invalid request", f"{key}: at most 128 printable characters",
                      field=key)
    return value


def _row(s: Any) -> dict[str, Any]:
    return {"session_id": s.id, "app": s.app, "user": s.user, "platform": s.platform,
            "app_type": s.app_type, "app_version": s.app_version, "device_id": s.device_id,
            "device_model": s.device_model, "os": s.os, "os_version": s.os_version,
            "login_at": s.started_at, "logout_at": s.ended_at, "ended": s.end_reason}


def lifecycle_routes(ctx: ApiContext) -> ApiRoutes:
    routes = ApiRoutes("lifecycle")

    @routes.post("/v1/apps/{app}/sessions", summary="Log a user in (one open session per "
                 "user and app)", security=SDK_KEY, body=LoginRequest,
                 responses={201: LoginResponse},
                 problems={403: UPDATE_REQUIRED, 429: RATE_LIMITED})
    async def login(request: web.Request) -> web.Response:
        """With the app's api key. A login ends the user's open session of the app (any
        platform: mobile and desktop exclude each other), whose token stops working at once;
        that device is told by push. A version below a mandatory release is refused (403)."""
        throttle_address(ctx, request)
        cfg = ctx.config()
        name = authenticate_app(cfg, request, request.match_info["app"])
        throttle_key(ctx, name)
        req = await read_model(request, LoginRequest)
        life = lifecycle_of(ctx)
        token, session, told = await life.sessions.login(name, req)
        return reply(LoginResponse(
            session_id=session.id, token=token, user=session.user, app=name,
            started_at=session.started_at, idle_expiry_seconds=life.sessions.idle_seconds(),
            replaced=[ReplacedSession(session_id=old.id, device_id=old.device_id,
                                      platform=old.platform, notified=how)
                      for old, how in told]), status=201)

    @routes.route("DELETE", "/v1/apps/{app}/sessions/current", summary="Log out",
                  security=SDK_KEY, responses={200: LoggedOut},
                  problems={400: "the app's api key was sent: logging out needs the session "
                            "token", 403: UPDATE_REQUIRED, 429: RATE_LIMITED})
    async def logout(request: web.Request) -> web.Response:
        """`Authorization: Bearer <session token>`: the session ends (reason `logout`). A
        session that has already ended answers 401 saying how it ended."""
        throttle_address(ctx, request)
        cfg = ctx.config()
        name = request.match_info["app"]
        token = bearer_token(request)
        life = lifecycle_of(ctx)
        session = None
        if name in cfg.model.apps and looks_like_session_token(token):
            assert token is not None
            session = await life.sessions.check(token, name)
        if session is None:
            authenticate_app(cfg, request, name)  # a 401 unless it is the app's key
            raise Problem(400, "Session token required", "log out with the session token "
                          "the login answered, not the app's api key")
        throttle_key(ctx, name)
        at = await life.sessions.logout(session)
        return reply(LoggedOut(session_id=session.id, ended_at=at, end_reason="logout"))

    @routes.get("/v1/admin/apps/{app}/sessions", summary="The open sessions of an app's users",
                security=ADMIN_TOKEN, responses={200: SessionList},
                problems={404: "no such app", 422: "a bad query parameter (`field`)"},
                tag="admin")
    async def open_sessions(request: web.Request) -> web.Response:
        """Login Info: per user, the app type and version, OS, device model, platform and
        since when. `?user=` narrows to one user."""
        cfg = ctx.config()
        require_admin(cfg, request)
        name, user = _app(cfg, request), _query(request, "user")
        rows = await ctx.store.lifecycle.open_sessions(app=name, user=user)
        return reply(SessionList(sessions=[SessionInfo(
            session_id=s.id, app=s.app, user=s.user, platform=s.platform, app_type=s.app_type,
            app_version=s.app_version, os=s.os, os_version=s.os_version,
            device_model=s.device_model, device_id=s.device_id, since=s.started_at,
            last_seen_at=s.last_seen_at) for s in rows]))

    @routes.post("/v1/admin/apps/{app}/releases", summary="Publish a release: notices to the "
                 "devices still older", security=ADMIN_TOKEN, body=ReleaseRequest,
                 responses={200: PublishResponse}, problems={404: "no such app"}, tag="admin")
    async def publish(request: web.Request) -> web.Response:
        """Answers when every notice has been sent and recorded. Publishing the same app,
        platform and version again is a re-publication: it may change the kind, URL,
        messages and grace, and notifies only devices still older that were not yet sent
        this release. Mandatory: sessions below it end at the notice (or after
        `grace_seconds`) and logins below it are refused from now on."""
        cfg = ctx.config()
        require_admin(cfg, request)
        name = _app(cfg, request)
        req = await read_model(request, ReleaseRequest)
        return reply(await lifecycle_of(ctx).releases.publish(name, req))

    @routes.get("/v1/admin/apps/{app}/releases", summary="An app's releases",
                security=ADMIN_TOKEN, responses={200: ReleaseList},
                problems={404: "no such app"}, tag="admin")
    async def list_releases(request: web.Request) -> web.Response:
        """Every release of the app, oldest first, with its notices counted by result."""
        cfg = ctx.config()
        require_admin(cfg, request)
        name = _app(cfg, request)
        repo = ctx.store.lifecycle
        return reply(ReleaseList(releases=[release_info(r, await repo.notice_counts(r.id))
                                           for r in await repo.releases(name)]))

    @routes.get("/v1/admin/releases/{release}/notices", summary="A release's notices, per "
                "device", security=ADMIN_TOKEN, responses={200: NoticeList},
                problems={404: "no such release"}, tag="admin")
    async def notices(request: web.Request) -> web.Response:
        """Each device notified (at most 1000), with its delivery result."""
        require_admin(ctx.config(), request)
        raw = request.match_info["release"]
        rid = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 11 else 0
        release = await ctx.store.lifecycle.release(rid) if 0 < rid <= _MAX_ID else None
        if release is None:
            raise Problem(404, "Unknown release", f"no release {raw[:20]!r}", field="release")
        rows = await ctx.store.lifecycle.notices(rid)
        return reply(NoticeList(release_id=rid, notices=[NoticeInfo(
            device_id=n.device_id, user=n.user, device_version=n.device_version,
            result=n.result, reason=n.reason, sent_at=n.sent_at) for n in rows]))

    async def report_rows(request: web.Request) -> tuple[Any, Any, list, bool]:
        cfg = ctx.config()
        require_admin(cfg, request)
        q = {k: _query(request, k) for k in _QUERY}
        try:
            start, end = time_range(q["from"], q["to"], ctx.clock())
        except RangeError as exc:
            raise Problem(422, "Invalid request", str(exc), field=exc.field) from None
        rows = await ctx.store.lifecycle.report(start=start, end=end, app=q["app"],
                                                user=q["user"], limit=MAX_ROWS + 1)
        return start, end, [_row(s) for s in rows[:MAX_ROWS]], len(rows) > MAX_ROWS

    @routes.get("/v1/reports/logins", summary="The login/logout report (JSON)",
                security=ADMIN_TOKEN, responses={200: LoginReport},
                problems={422: "a bad query parameter (`field`)"}, tag="reports")
    async def report_json(request: web.Request) -> web.Response:
        """Query: `from`, `to` (ISO 8601; without an offset, UTC; default: the last 24
        hours), `app`, `user`. Sessions that began in [from, to), oldest first, at most
        10 000; `ended` is logout, replaced, mandatory_update or expired (null: open)."""
        start, end, rows, truncated = await report_rows(request)
        return reply(LoginReport(start=start, end=end, rows=[LoginRow(**r) for r in rows],
                                 truncated=truncated))

    @routes.get("/v1/reports/logins.csv", summary="The login/logout report (CSV)",
                security=ADMIN_TOKEN,
                responses={200: Reply(description="UTF-8 with BOM, CRLF, a header row",
                                      media_type="text/csv", schema={"type": "string"})},
                problems={422: "a bad query parameter (`field`)"}, tag="reports")
    async def report_csv(request: web.Request) -> web.Response:
        """The same rows as `/v1/reports/logins` (same query), as CSV a spreadsheet opens:
        UTF-8 with a byte-order mark, CRLF, a header row, times in UTC ISO 8601."""
        _, _, rows, _ = await report_rows(request)
        return web.Response(text=to_csv(rows), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition":
                                     'attachment; filename="logins.csv"'})

    add_log_routes(routes, ctx, _app, _query)
    return routes
