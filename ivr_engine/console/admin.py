"""SMS and Apps pages, over the functions the admin JSON routes call.

SMS (``GET /v1/sms/monitor``, ``POST /v1/sms/dialers/{name}/start|stop``,
``POST /v1/sms/uploads``): the dialers (enabled, running, inside their schedule) with
start/stop buttons, the campaigns' counts (processed, not processed, other, blocked,
failed, rates), and a CSV upload whose answer lists the refused lines. The monitor is
``sms.monitor.monitor``, a switch ``sms.http.switch_dialer`` (404, and 409 for a dialer
disabled in the configuration), an upload ``uploads.receive``; the login report is
``lifecycle.http.login_report`` — what the JSON routes call.

Apps (``GET /v1/admin/apps/{app}/sessions``, ``/releases``, ``/v1/reports/logins[.csv]``):
open sessions counted by app, platform and version; each release's roll-out (notices sent,
failed, tokens removed; reminders and devices that updated since); the login report of a
range as a table, and the same rows as CSV.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from aiohttp import web

from ..api.principal import Principal
from ..api.problems import Problem
from ..api.routes import CONSOLE, ApiRoutes, Reply, query_of
from ..lifecycle.http import login_report
from ..lifecycle.releases import describe
from ..lifecycle.report import to_csv
from ..lifecycle.schemas import ReportQuery
from ..sms.http import switch_dialer as sms_switch
from ..sms.monitor import monitor as sms_monitor
from ..sms.schemas import SmsMonitor
from ..sms.uploads import READ_BYTES, TooLarge, receive
from .pages import HEADERS, page

HTML = Reply(description="an HTML page or fragment", media_type="text/html",
             schema={"type": "string"})
CSV = Reply(description="UTF-8 with BOM, CRLF, a header row", media_type="text/csv",
            schema={"type": "string"})


def _htmx(request: web.Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def add_admin_pages(routes: ApiRoutes, parts: Any) -> None:
    config, clock, repo = parts.config, parts.clock, parts.store.sms

    async def sms_context() -> dict[str, Any]:
        cfg = config()
        monitor = SmsMonitor(**await sms_monitor(cfg, repo, clock()))
        dialer_of = {n: c.dialer for n, c in cfg.model.sms.campaigns.items()}
        return {"monitor": monitor, "dialer_of": dialer_of}

    @routes.get("/console/sms", summary="SMS dialers and campaigns", security=CONSOLE,
                responses={200: HTML})
    async def sms_page(request: web.Request, who: Principal) -> web.Response:
        return page("sms.html", who=who, active="sms", upload=None, **await sms_context())

    @routes.post("/console/sms/dialers/{name}/{action:start|stop}",
                 summary="Start or stop a dialer", security=CONSOLE,
                 responses={200: HTML, 303: HTML},
                 problems={404: "no such dialer", 409: "the dialer is disabled in the "
                           "configuration (enabled: false)"})
    async def switch_dialer(request: web.Request, who: Principal) -> web.Response:
        name, action = request.match_info["name"], request.match_info["action"]
        await sms_switch(config().model.sms, repo, name, action == "start", clock())
        if not _htmx(request):  # a plain form: back to the page
            return web.Response(status=303, headers={"Location": "/console/sms", **HEADERS})
        return page("_dialers.html", who=who, **await sms_context())

    @routes.post("/console/sms/uploads", summary="Upload a spool or do-not-contact CSV",
                 security=CONSOLE, responses={200: HTML},
                 problems={413: "past sms.uploads limits", 415: "not a multipart form"})
    async def upload(request: web.Request, who: Principal) -> web.Response:
        """A ``multipart/form-data`` form: ``kind`` (spool or dnc), then ``file``."""
        if request.content_type != "multipart/form-data":
            raise Problem(415, "Unsupported Media Type", "send the form as multipart/form-data")
        sms, kind, result, error = config().model.sms, "spool", None, None
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if part.name == "kind":  # type: ignore[union-attr]
                kind = "dnc" if (await part.text()).strip() == "dnc" else "spool"  # type: ignore[union-attr]
            elif part.name == "file":  # type: ignore[union-attr]
                try:
                    result = await receive(kind, repo, sms, _chunks(part), clock())
                except TooLarge as exc:
                    error = f"{exc}; nothing was imported"
                break
        if result is None and error is None:
            error = "no file in the form"
        return page("_upload.html", kind=kind, result=result, error=error)

    async def report(q: ReportQuery) -> tuple[dt.datetime, dt.datetime, list, bool]:
        return await login_report(parts.lifecycle.repo, q, clock())

    @routes.get("/console/apps", summary="App sessions, releases and the login report",
                security=CONSOLE, query=ReportQuery, responses={200: HTML})
    async def apps_page(request: web.Request, who: Principal) -> web.Response:
        q: ReportQuery = query_of(request)
        cfg, life = config(), parts.lifecycle
        sessions = await life.repo.open_sessions()
        by_version = Counter((s.app, s.platform, s.os or "", s.app_version or "")
                             for s in sessions)
        releases = [await describe(life.repo, r, cfg.model.lifecycle)
                    for r in await life.repo.releases()]
        start, end, rows, truncated = await report(q)
        return page("apps.html", who=who, active="apps", apps=sorted(cfg.model.apps),
                    versions=sorted(by_version.items()), open_sessions=len(sessions),
                    releases=releases, rows=rows, truncated=truncated, start=start, end=end,
                    query=q, csv_query=request.query_string)

    @routes.get("/console/apps/logins.csv", summary="The login report (CSV)",
                security=CONSOLE, query=ReportQuery, responses={200: CSV})
    async def logins_csv(request: web.Request, who: Principal) -> web.Response:
        _, _, rows, _ = await report(query_of(request))
        return web.Response(text=to_csv(rows), content_type="text/csv", charset="utf-8",
                            headers={**HEADERS, "Content-Disposition":
                                     'attachment; filename="logins.csv"'})


async def _chunks(part: Any) -> Any:
    while chunk := await part.read_chunk(READ_BYTES):
        yield chunk
