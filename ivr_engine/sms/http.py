"""The SMS routes (admin token, except the providers' delivery reports).

- ``POST /v1/sms``: SendSMS — one message in the single lane; 202 queued (or 200 with the
  outcome when ``wait_seconds`` is given and it came in time), JSON or form-encoded; at
  uContact's paths too (``ucontact.py``). ``GET /v1/sms/messages/{id}``; the sent-message
  search ``GET /v1/sms/messages`` and ``/v1/sms/messages.csv`` (``searchhttp.py``).
- ``POST /v1/sms/uploads``, ``POST /v1/sms/dnc/uploads``: the CSV files (``text/csv``
  body, spooled and checked, then imported in one transaction: ``uploads.py``), all or
  nothing; 422 lists every bad line, 413 past ``sms.uploads`` limits.
- ``GET /v1/sms/monitor``; ``POST /v1/sms/dialers/{name}/start|stop``;
  ``DELETE /v1/sms/campaigns/{campaign}/unprocessed``.
- ``POST /v1/sms/reports/{provider}/{token}``: a provider's delivery report, proven by the
  door's PROVIDER check (``webhooks.py``): the provider's ``callback_token`` in the path.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable

from aiohttp import web

from ..api.principal import Principal
from ..api.problems import Problem
from ..api.routes import ADMIN, PROVIDER, ApiRoutes, Reply
from ..api.schemas import reply
from .linkhttp import add_link_routes
from .single import send_single
from .models import STATE_NAMES, TO_PROCESS, SpoolRow
from .monitor import monitor as monitor_of
from .overview import DISABLED
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
from .searchhttp import add_search_routes
from .spool import SpoolError, single_row
from .ucontact import SEND_PROBLEMS, SendSmsForm, add_ucontact_routes, read_send
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


async def switch_dialer(sms: Any, repo: Any, name: str, start: bool,
                        now: dt.datetime) -> None:
    """Start or stop dialer ``name`` on demand (every worker sees it within a second): 404
    when ``sms.dialers`` has no such dialer, 409 to start one disabled in the configuration."""
    dialer = sms.dialers.get(name)
    if dialer is None:
        raise Problem(404, "Not found", f"no dialer {name!r}", field="name")
    if start and not dialer.enabled:
        raise Problem(409, "Dialer disabled", DISABLED.format(name=name), field="name")
    await repo.set_dialer(name, start, now)


def sms_routes(config: Callable[[], Any], repo: Any, service: Any,
               clock: Callable[[], dt.datetime]) -> ApiRoutes:
    """``repo``: the SmsRepo; ``service``: the SmsService when the dialers run in the engine
    (it is woken at once), else None (``ivr-engine sms dialer`` serves the spool)."""
    routes = ApiRoutes("sms")

    def settings() -> Any:
        return config().model.sms

    async def accept(req: SendSmsRequest) -> web.Response:
        try:
            row = single_row(settings(), clock(), req.destination, req.message,
                             campaign=req.campaign, agent=req.agent, provider=req.provider)
        except SpoolError as exc:
            raise Problem(422, "Invalid request", str(exc), field=exc.field) from None
        except LookupError as exc:
            raise Problem(409, "No provider", exc.args[0], field="provider") from None
        got, done = await send_single(repo, service, row, req.wait_seconds)
        return reply(status_of(got), status=200 if done else 202)

    @routes.post("/v1/sms", summary="SendSMS: send one message (single lane)",
                 security=ADMIN, body=SendSmsRequest, form=SendSmsForm,
                 responses={200: SmsStatus, 202: SmsStatus}, problems=SEND_PROBLEMS)
    async def send_sms(request: web.Request, who: Principal) -> web.Response:
        """Spools the message in the single lane, which the dialer serves before any bulk
        campaign. The body is JSON or a form (`application/x-www-form-urlencoded`, as
        uContact integrations send it). The number is normalised to E.164 and checked
        against the provider's `number_regexp`, the encoding chosen (GSM-7 or UCS-2) and
        the segments counted before anything is queued; a refusal is a 422 naming the
        field."""
        return await accept(await read_send(request))

    @routes.get("/v1/sms/messages/{id}", summary="One message and where it stands",
                security=ADMIN, responses={200: SmsStatus},
                problems={404: "no such message"})
    async def get_sms(request: web.Request, who: Principal) -> web.Response:
        """Its status (queued, sending, sent, failed, blocked, other), the provider's id
        and answer, and the delivery report's status when one came."""
        raw = request.match_info["id"]
        row = (await repo.get(int(raw)) if raw.isascii() and raw.isdigit()
               and len(raw) < 10 else None)
        if row is None:
            raise Problem(404, "Not found", "no such message", field="id")
        return reply(status_of(row))

    @routes.post("/v1/sms/uploads", summary="Upload a campaign;destiny;message;priority CSV",
                 security=ADMIN, responses={200: UploadAccepted},
                 problems=UPLOAD_PROBLEMS)
    async def upload_spool(request: web.Request, who: Principal) -> web.Response:
        """The body is the file (`Content-Type: text/csv`), spooled to a temporary file
        while every line is checked (campaign exists, four columns, number, priority, no
        blank lines, no forbidden characters, `sms.uploads.max_line_bytes`), then imported
        in one transaction, all or nothing."""
        return await http_upload(request, "spool", repo, settings(), clock())

    @routes.post("/v1/sms/dnc/uploads", summary="Upload a number;campaign; do-not-contact CSV",
                 security=ADMIN, responses={200: UploadAccepted},
                 problems=UPLOAD_PROBLEMS)
    async def upload_dnc(request: web.Request, who: Principal) -> web.Response:
        """An empty campaign lists the number for every campaign. All or nothing."""
        return await http_upload(request, "dnc", repo, settings(), clock())

    @routes.get("/v1/sms/monitor", summary="The dialers and campaigns monitor",
                security=ADMIN, responses={200: SmsMonitor})
    async def monitor(request: web.Request, who: Principal) -> web.Response:
        """Per campaign: processed, not processed, other (bad number format), blocked,
        failed, messages and segments per second; per dialer: enabled, running, inside its
        schedule."""
        return reply(SmsMonitor(**await monitor_of(config(), repo, clock())))

    for action in ("start", "stop"):
        def make(action: str) -> Any:
            async def switch(request: web.Request, who: Principal) -> web.Response:
                name = request.match_info["name"]
                await switch_dialer(settings(), repo, name, action == "start", clock())
                return reply(DialerSwitched(name=name, running=action == "start"))
            switch.__name__ = f"{action}_dialer"
            switch.__doc__ = (f"{action.capitalize()} the dialer on demand (every worker "
                              "sees it within a second)." + (
                                  " A dialer disabled in the configuration (`enabled: false`) "
                                  "is not started: 409." if action == "start" else ""))
            return switch
        problems = {404: "no such dialer"}
        if action == "start":
            problems[409] = "the dialer is disabled in the configuration (enabled: false)"
        routes.post(f"/v1/sms/dialers/{{name}}/{action}", summary=f"{action.capitalize()} a "
                    "dialer", security=ADMIN, responses={200: DialerSwitched},
                    problems=problems)(make(action))

    @routes.route("DELETE", "/v1/sms/campaigns/{campaign}/unprocessed",
                  summary="Delete a campaign's unprocessed rows", security=ADMIN,
                  responses={200: CampaignDeleted})
    async def delete_unprocessed(request: web.Request, who: Principal) -> web.Response:
        """Rows not sent (waiting, blocked, failed, bad number format) are deleted; sent
        rows and sends in flight stay."""
        campaign = request.match_info["campaign"]
        try:
            campaign.encode("utf-8")
        except UnicodeEncodeError:  # a percent-escaped lone surrogate: no such campaign
            return reply(CampaignDeleted(campaign=campaign.encode("utf-8", "replace")
                                         .decode(), deleted=0))
        n = await repo.delete_unprocessed(campaign)
        return reply(CampaignDeleted(campaign=campaign, deleted=n))

    @routes.post("/v1/sms/reports/{provider}/{token}", summary="A provider's delivery report",
                 security=PROVIDER, responses={200: ReportAccepted},
                 problems={403: "the provider signs its reports (`verify_signature`) and "
                           "this one carries no valid signature",
                           422: "not a delivery report this provider sends"})
    async def delivery_report(request: web.Request, who: Principal) -> web.Response:
        """The URL the engine gives Twilio (StatusCallback), Vonage (callback) and Infobip
        (notifyUrl) when the provider has `status_callback_url` and `callback_token`."""
        name = who.provider
        spec = next(p for p in settings().providers if p.name == name)
        body = await request.read()
        try:
            updates = parse_report(spec.type, request.content_type, body, request.query)
        except ReportError as exc:
            raise Problem(422, "Invalid report", str(exc)) from None
        n = 0
        for u in updates:
            n += await repo.delivery_report(name, u.status, message_id=u.message_id,
                                                     key=u.key)
        return reply(ReportAccepted(updated=n))

    add_ucontact_routes(routes, accept)
    add_search_routes(routes, config, repo, clock, status_of)
    add_link_routes(routes, config, repo, service, clock, status_of)
    return routes
