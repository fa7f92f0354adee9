"""The SMS routes (admin token, except the providers' delivery reports).

- ``POST /v1/sms``: SendSMS — one message in the single lane; 202 queued (or 200 with the
  outcome when ``wait_seconds`` is given and it came in time). ``GET /v1/sms/messages/{id}``.
- ``POST /v1/sms/uploads``, ``POST /v1/sms/dnc/uploads``: the CSV files (``text/csv``
  body, spooled and checked, then imported in one transaction: ``uploads.py``), all or
  nothing; 422 lists every bad line, 413 past ``sms.uploads`` limits.
- ``GET /v1/sms/monitor``; ``POST /v1/sms/dialers/{name}/start|stop``;
  ``DELETE /v1/sms/campaigns/{campaign}/unprocessed``.
- ``POST /v1/sms/reports/{provider}/{token}``: a provider's delivery report; the token is
  the provider's ``callback_token`` (404 when it does not match: nothing to guess from).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..api.auth import key_matches, require_admin
from ..api.context import ApiContext
from ..api.input import read_model
from ..api.problems import Problem
from ..api.routes import ADMIN_TOKEN, PUBLIC, ApiRoutes, Reply
from ..api.schemas import reply
from .linkhttp import add_link_routes
from .single import enqueue_single
from .models import STATE_NAMES, TO_PROCESS, SpoolRow
from .monitor import report as monitor_report
from .reports import ReportError, parse_report
from .schemas import (
    CampaignDeleted,
    DialerSwitched,
    ReportAccepted,
    SendSmsRequest,
    SmsMonitor,
    SmsStatus,
    UploadAccepted,
    UploadProblem,
)
from .spool import SpoolError, single_row
from .uploads import http_upload

UPLOAD_PROBLEMS = {
    413: "larger than `sms.uploads.max_bytes`, or more rows than `sms.uploads.max_rows`",
    415: "the body is not sent as Content-Type: text/csv (UTF-8)",
    422: Reply(UploadProblem, "the file is refused and nothing was imported; `errors` lists "
               "every bad line with its reason"),
}


def status_of(row: SpoolRow) -> SmsStatus:
    state = "queued" if row.state == TO_PROCESS else STATE_NAMES[row.state]
    return SmsStatus(id=row.id, status=state, destination=row.destination,
                     campaign=row.campaign, segments=row.segments, encoding=row.encoding,
                     provider=row.provider, message_id=row.provider_message_id,
                     answer=row.provider_answer, delivery_status=row.delivery_status,
                     created_at=row.created_at, done_at=row.done_at)


def sms_routes(ctx: ApiContext) -> ApiRoutes:
    routes = ApiRoutes("sms")

    def admin(request: web.Request) -> Any:
        cfg = ctx.config()
        require_admin(cfg, request)
        return cfg.model.sms

    @routes.post("/v1/sms", summary="SendSMS: send one message (single lane)",
                 security=ADMIN_TOKEN, body=SendSmsRequest,
                 responses={200: SmsStatus, 202: SmsStatus},
                 problems={409: "no SMS provider is configured, or not the one named"})
    async def send_sms(request: web.Request) -> web.Response:
        """Spools the message in the single lane, which the dialer serves before any bulk
        campaign. The number is normalised to E.164 and checked against the provider's
        `number_regexp`, the encoding chosen (GSM-7 or UCS-2) and the segments counted
        before anything is queued; a refusal is a 422 naming the field."""
        sms = admin(request)
        req = await read_model(request, SendSmsRequest)
        try:
            row = single_row(sms, ctx.clock(), req.destination, req.message,
                             campaign=req.campaign, agent=req.agent, provider=req.provider)
        except SpoolError as exc:
            raise Problem(422, "Invalid request", str(exc), field=exc.field) from None
        except LookupError as exc:
            raise Problem(409, "No provider", exc.args[0], field="provider") from None
        got, done = await enqueue_single(ctx, row, req.wait_seconds)
        return reply(status_of(got), status=200 if done else 202)

    @routes.get("/v1/sms/messages/{id}", summary="One message and where it stands",
                security=ADMIN_TOKEN, responses={200: SmsStatus},
                problems={404: "no such message"})
    async def get_sms(request: web.Request) -> web.Response:
        """Its status (queued, sending, sent, failed, blocked, other), the provider's id
        and answer, and the delivery report's status when one came."""
        admin(request)
        raw = request.match_info["id"]
        row = (await ctx.store.sms.get(int(raw)) if raw.isascii() and raw.isdigit()
               and len(raw) < 10 else None)
        if row is None:
            raise Problem(404, "Not found", "no such message", field="id")
        return reply(status_of(row))

    @routes.post("/v1/sms/uploads", summary="Upload a campaign;destiny;message;priority CSV",
                 security=ADMIN_TOKEN, responses={200: UploadAccepted},
                 problems=UPLOAD_PROBLEMS)
    async def upload_spool(request: web.Request) -> web.Response:
        """The body is the file (`Content-Type: text/csv`), spooled to a temporary file
        while every line is checked (campaign exists, four columns, number, priority, no
        blank lines, no forbidden characters, `sms.uploads.max_line_bytes`), then imported
        in one transaction, all or nothing."""
        sms = admin(request)
        return await http_upload(request, "spool", ctx.store.sms, sms, ctx.clock())

    @routes.post("/v1/sms/dnc/uploads", summary="Upload a number;campaign; do-not-contact CSV",
                 security=ADMIN_TOKEN, responses={200: UploadAccepted},
                 problems=UPLOAD_PROBLEMS)
    async def upload_dnc(request: web.Request) -> web.Response:
        """An empty campaign lists the number for every campaign. All or nothing."""
        sms = admin(request)
        return await http_upload(request, "dnc", ctx.store.sms, sms, ctx.clock())

    @routes.get("/v1/sms/monitor", summary="The dialers and campaigns monitor",
                security=ADMIN_TOKEN, responses={200: SmsMonitor})
    async def monitor(request: web.Request) -> web.Response:
        """Per campaign: processed, not processed, other (bad number format), blocked,
        failed, messages and segments per second; per dialer: enabled, running, inside its
        schedule."""
        from .dialer import schedule_open

        sms = admin(request)
        now = ctx.clock()
        running = {n: await ctx.store.sms.dialer_running(n) for n in sms.dialers}
        cfg = ctx.config()
        open_now = {n: schedule_open(cfg, d, now) for n, d in sms.dialers.items()}
        return reply(SmsMonitor(**monitor_report(sms, await ctx.store.sms.counts(now),
                                                 running, open_now)))

    for action in ("start", "stop"):
        def make(action: str) -> Any:
            async def switch(request: web.Request) -> web.Response:
                sms = admin(request)
                name = request.match_info["name"]
                if name not in sms.dialers:
                    raise Problem(404, "Not found", f"no dialer {name!r}", field="name")
                await ctx.store.sms.set_dialer(name, action == "start", ctx.clock())
                return reply(DialerSwitched(name=name, running=action == "start"))
            switch.__name__ = f"{action}_dialer"
            switch.__doc__ = (f"{action.capitalize()} the dialer on demand (every worker "
                              "sees it within a second).")
            return switch
        routes.post(f"/v1/sms/dialers/{{name}}/{action}", summary=f"{action.capitalize()} a "
                    "dialer", security=ADMIN_TOKEN, responses={200: DialerSwitched},
                    problems={404: "no such dialer"})(make(action))

    @routes.route("DELETE", "/v1/sms/campaigns/{campaign}/unprocessed",
                  summary="Delete a campaign's unprocessed rows", security=ADMIN_TOKEN,
                  responses={200: CampaignDeleted})
    async def delete_unprocessed(request: web.Request) -> web.Response:
        """Rows not sent (waiting, blocked, failed, bad number format) are deleted; sent
        rows and sends in flight stay."""
        admin(request)
        campaign = request.match_info["campaign"]
        try:
            campaign.encode("utf-8")
        except UnicodeEncodeError:  # a percent-escaped lone surrogate: no such campaign
            return reply(CampaignDeleted(campaign=campaign.encode("utf-8", "replace")
                                         .decode(), deleted=0))
        n = await ctx.store.sms.delete_unprocessed(campaign)
        return reply(CampaignDeleted(campaign=campaign, deleted=n))

    @routes.post("/v1/sms/reports/{provider}/{token}", summary="A provider's delivery report",
                 security=PUBLIC, responses={200: ReportAccepted},
                 problems={404: "no such provider, or the token is wrong",
                           422: "not a delivery report this provider sends"})
    async def delivery_report(request: web.Request) -> web.Response:
        """The URL the engine gives Twilio (StatusCallback), Vonage (callback) and Infobip
        (notifyUrl) when the provider has `status_callback_url` and `callback_token`."""
        sms = ctx.config().model.sms
        name = request.match_info["provider"]
        spec = next((p for p in sms.providers if p.name == name), None)
        token = request.match_info["token"].encode("utf-8", "surrogatepass")
        if not key_matches(token, spec.callback_token if spec is not None else None):
            raise Problem(404, "Not found", "no such report address")
        body = await request.read()
        try:
            updates = parse_report(spec.type, request.content_type, body, request.query)
        except ReportError as exc:
            raise Problem(422, "Invalid report", str(exc)) from None
        n = 0
        for u in updates:
            n += await ctx.store.sms.delivery_report(name, u.status, message_id=u.message_id,
                                                     key=u.key)
        return reply(ReportAccepted(updated=n))

    add_link_routes(routes, ctx, status_of)
    return routes
