"""The lifecycle's routes.

SDK:
- ``POST /v1/apps/{app}/sessions`` (the app's key + an assertion signed by the customer's
  backend naming the user): login → session token (a new login ends the user's open session
  of the app and tells its device by push; with ``confirm_takeover``, it asks first: 409).
- ``DELETE /v1/apps/{app}/sessions/current`` (the session): logout.

Admin (admin token):
- ``GET /v1/admin/apps/{app}/sessions[?user=]``: the open sessions (Login Info).
- ``POST /v1/admin/apps/{app}/releases``: publish (or re-publish) a release; notices go out.
- ``GET /v1/admin/apps/{app}/releases``, ``GET /v1/admin/releases/{id}/notices``.
- ``GET /v1/reports/logins`` (JSON) and ``/v1/reports/logins.csv``: the login report.
- App logs on request: ``logs_http.py``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable

from aiohttp import web

from ..api.input import read_model
from ..api.principal import Principal
from ..api.problems import Problem
from ..api.routes import ADMIN, APP_KEY, SESSION, UPDATE_REQUIRED, ApiRoutes, Reply, query_of
from ..api.schemas import reply
from .logs_http import add_log_routes
from .releases import describe
from .report import MAX_ROWS, RangeError, report_row, time_range, to_csv
from .schemas import (
    HandoverProblem,
    LoggedOut,
    LoginReport,
    LoginRequest,
    LoginResponse,
    LoginRow,
    NoticeInfo,
    NoticeList,
    OfflineSecret,
    PublishResponse,
    ReleaseList,
    ReleaseRequest,
    ReplacedSession,
    ReportQuery,
    SessionInfo,
    SessionList,
    UserQuery,
)
from .service import Lifecycle

_MAX_ID = 2**31 - 1
HANDOVER = Reply(HandoverProblem, "`reason: session_takeover`: the login would end the "
                 "user's open session on another device (`session`); repeat with `force: "
                 "true`. No `reason`: logins are not configured for the app",
                 media_type="application/problem+json")


def known_app(config: Callable[[], Any], request: web.Request) -> str:
    """The ``{app}`` of an admin route: 404 when the config has no such app."""
    name = request.match_info["app"]
    if name not in config().model.apps:
        raise Problem(404, "Unknown app", f"no app named {name[:80]!r}", field="app")
    return name


def offline_secret(fallback: Any, session: Any) -> OfflineSecret | None:
    """What the app keeps to call the fallback number with no data path."""
    if session.fallback_secret is None:
        return None
    number = fallback.number
    return OfflineSecret(secret=session.fallback_secret, digits=fallback.offline.digits,
                         counter=session.fallback_counter,
                         look_ahead=fallback.offline.look_ahead, number=number,
                         dial=f"{number},,{session.id}*{{code}}#" if number else None)


async def login_report(repo: Any, q: ReportQuery, now: dt.datetime
                       ) -> tuple[dt.datetime, dt.datetime, list[dict[str, Any]], bool]:
    """The login report of ``q`` (its range, at most ``MAX_ROWS`` rows, whether there were
    more), for ``GET /v1/reports/logins[.csv]`` and the console; a bad range is a 422."""
    try:
        start, end = time_range(q.start, q.end, now)
    except RangeError as exc:
        raise Problem(422, "Invalid request", str(exc), field=exc.field) from None
    rows = await repo.report(start=start, end=end, app=q.app, user=q.user, limit=MAX_ROWS + 1)
    return start, end, [report_row(s) for s in rows[:MAX_ROWS]], len(rows) > MAX_ROWS


def lifecycle_routes(config: Callable[[], Any], life: Lifecycle,
                     clock: Callable[[], dt.datetime]) -> ApiRoutes:
    routes = ApiRoutes("lifecycle")
    repo = life.repo

    @routes.post("/v1/apps/{app}/sessions", summary="Log a user in (one open session per "
                 "user and app)", security=APP_KEY, body=LoginRequest,
                 responses={201: LoginResponse},
                 problems={403: UPDATE_REQUIRED, 409: HANDOVER})
    async def login(request: web.Request, who: Principal) -> web.Response:
        """With the app's api key. A login ends the user's open session of the app (any
        platform: mobile and desktop exclude each other), whose token stops working at once;
        that device is told by push. A version below a mandatory release is refused (403).
        With `confirm_takeover` on for the app, a login that would end the session of another
        device is answered 409 (`reason: session_takeover`, the `session` it would end: its
        platform, app type, OS and device); the app asks its user and repeats the login with
        `force: true` (the same assertion may be sent again)."""
        req = await read_model(request, LoginRequest)
        assert who.app is not None
        token, session, told = await life.sessions.login(who.app, req)
        return reply(LoginResponse(
            session_id=session.id, token=token, user=session.user, app=who.app,
            started_at=session.started_at, idle_expiry_seconds=life.sessions.idle_seconds(),
            replaced=[ReplacedSession(session_id=old.id, device_id=old.device_id,
                                      platform=old.platform, notified=how)
                      for old, how in told],
            offline=offline_secret(config().model.apps[who.app].fallback, session)),
            status=201)

    @routes.delete("/v1/apps/{app}/sessions/current", summary="Log out", security=SESSION,
                   responses={200: LoggedOut})
    async def logout(request: web.Request, who: Principal) -> web.Response:
        """`Authorization: Bearer <session token>`: the session ends (reason `logout`). A
        session that has already ended answers 401 saying how it ended."""
        assert who.session_id is not None
        at = await life.sessions.logout(who.session_id, who.user)
        return reply(LoggedOut(session_id=who.session_id, ended_at=at, end_reason="logout"))

    @routes.get("/v1/admin/apps/{app}/sessions", summary="The open sessions of an app's users",
                security=ADMIN, query=UserQuery, responses={200: SessionList},
                problems={404: "no such app"})
    async def open_sessions(request: web.Request, who: Principal) -> web.Response:
        """Login Info: per user, the app type and version, OS, device model, platform and
        since when. `?user=` narrows to one user."""
        name, q = known_app(config, request), query_of(request)
        rows = await repo.open_sessions(app=name, user=q.user)
        return reply(SessionList(sessions=[SessionInfo(
            session_id=s.id, app=s.app, user=s.user, platform=s.platform, app_type=s.app_type,
            app_version=s.app_version, os=s.os, os_version=s.os_version,
            device_model=s.device_model, device_id=s.device_id, since=s.started_at,
            last_seen_at=s.last_seen_at) for s in rows]))

    @routes.post("/v1/admin/apps/{app}/releases", summary="Publish a release: notices to the "
                 "devices still older", security=ADMIN, body=ReleaseRequest,
                 responses={200: PublishResponse}, problems={404: "no such app"})
    async def publish(request: web.Request, who: Principal) -> web.Response:
        """Answers when every notice has been sent and recorded. Publishing the same app,
        platform and version again is a re-publication: it may change the kind, URL,
        messages and grace, and notifies only devices still older that were not yet sent
        this release. Mandatory: sessions below it end at the notice (or after
        `grace_seconds`) and logins below it are refused from now on."""
        name = known_app(config, request)
        req = await read_model(request, ReleaseRequest)
        return reply(await life.releases.publish(name, req))

    @routes.get("/v1/admin/apps/{app}/releases", summary="An app's releases",
                security=ADMIN, responses={200: ReleaseList},
                problems={404: "no such app"})
    async def list_releases(request: web.Request, who: Principal) -> web.Response:
        """Every release of the app, oldest first, with its notices counted by result and,
        for a recommended one, its reminder policy and the reminders sent."""
        name = known_app(config, request)
        settings = config().model.lifecycle
        return reply(ReleaseList(releases=[await describe(repo, r, settings)
                                           for r in await repo.releases(name)]))

    @routes.get("/v1/admin/releases/{release}/notices", summary="A release's notices, per "
                "device", security=ADMIN, responses={200: NoticeList},
                problems={404: "no such release"})
    async def notices(request: web.Request, who: Principal) -> web.Response:
        """Each device notified (at most 1000), with its delivery result and the reminders
        it was sent since."""
        raw = request.match_info["release"]
        rid = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 11 else 0
        release = await repo.release(rid) if 0 < rid <= _MAX_ID else None
        if release is None:
            raise Problem(404, "Unknown release", f"no release {raw[:20]!r}", field="release")
        rows = await repo.notices(rid)
        return reply(NoticeList(release_id=rid, notices=[NoticeInfo(
            device_id=n.device_id, user=n.user, device_version=n.device_version,
            result=n.result, reason=n.reason, sent_at=n.sent_at, reminders=n.reminders,
            reminded_at=n.reminded_at, reminder_result=n.reminder_result) for n in rows]))

    async def report_rows(request: web.Request) -> tuple[Any, Any, list, bool]:
        return await login_report(repo, query_of(request), clock())

    @routes.get("/v1/reports/logins", summary="The login/logout report (JSON)",
                security=ADMIN, query=ReportQuery, responses={200: LoginReport})
    async def report_json(request: web.Request, who: Principal) -> web.Response:
        """Query: `from`, `to` (ISO 8601; without an offset, UTC; default: the last 24
        hours), `app`, `user`. Sessions that began in [from, to), oldest first, at most
        10 000; `ended` is logout, replaced, mandatory_update or expired (null: open)."""
        start, end, rows, truncated = await report_rows(request)
        return reply(LoginReport(start=start, end=end, rows=[LoginRow(**r) for r in rows],
                                 truncated=truncated))

    @routes.get("/v1/reports/logins.csv", summary="The login/logout report (CSV)",
                security=ADMIN, query=ReportQuery,
                responses={200: Reply(description="UTF-8 with BOM, CRLF, a header row",
                                      media_type="text/csv", schema={"type": "string"})})
    async def report_csv(request: web.Request, who: Principal) -> web.Response:
        """The same rows as `/v1/reports/logins` (same query), as CSV a spreadsheet opens:
        UTF-8 with a byte-order mark, CRLF, a header row, times in UTC ISO 8601."""
        _, _, rows, _ = await report_rows(request)
        return web.Response(text=to_csv(rows), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition":
                                     'attachment; filename="logins.csv"'})

    add_log_routes(routes, config, life, clock, known_app)
    return routes
