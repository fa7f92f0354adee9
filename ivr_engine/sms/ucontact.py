"""SendSMS as uContact integrations call it (its Integra web service), so they only change the
host they point at:

- ``POST /v1/sms`` and ``POST /Integra/resources/SMS/SendSMS``: the JSON body, or the
  form-encoded one (``application/x-www-form-urlencoded``; uContact's ``@FormParam``
  ``destination``, ``message``, ``campaign``, ``agent``);
- ``GET /Integra/resources/SMS/SendSMS?destination=…&message=…&api=…`` and the form the
  uContact manual shows, the parameters as the last path segment:
  ``GET /Integra/resources/SMS/SendSMS/destination=099635199&message=Hola&api=dongle``.

``api`` names the provider (as ``provider`` does). In a URL or a form ``+`` is a space: a
destination written ``+59899635199`` unencoded arrives as `` 59899635199`` and is read back
as ``+59899635199``. Every variant goes through the door like any route: the admin token as
Bearer, or as the password of HTTP Basic (uContact's Integra credentials); a credential in
the URL is never accepted (an unknown parameter is a 422 naming it, never its value) and the
path segment is written ``***`` in log lines (``problems.SECRET_PARAMS``). A HEAD on the GET
forms is refused (405): it would send.
"""

from __future__ import annotations

import urllib.parse
from typing import Any, Awaitable, Callable, Mapping

from aiohttp import web
from pydantic import Field, ValidationError

from ..api.input import MAX_BODY_BYTES, check_values, first_problem, read_model
from ..api.principal import Principal
from ..api.problems import Problem, invalid
from ..api.routes import ADMIN, ADMIN_BASIC, ApiRoutes, query_of
from ..api.schemas import QueryModel, Text
from .schemas import SendSmsRequest, SmsStatus

FORM = "application/x-www-form-urlencoded"
INTEGRA = "/Integra/resources/SMS/SendSMS"
MAX_FIELDS = 16
SEND_PROBLEMS = {
    409: "no SMS provider is configured, or not the one named",
    415: "the body is neither JSON (application/json) nor a form "
         "(application/x-www-form-urlencoded), in UTF-8",
}

Accept = Callable[[SendSmsRequest], Awaitable[web.Response]]


class SendSmsForm(SendSmsRequest):
    """SendSMS form-encoded (what the OpenAPI document shows; read by :func:`read_send`)."""

    api: str | None = Field(None, max_length=128, description="the provider's name "
                            "(uContact: the SMS API), as `provider`")


class IntegraQuery(QueryModel):
    """uContact's SendSMS parameters in the URL (values of at most 1 024 printable
    characters: a message with line breaks goes in a POST)."""

    destination: Text(64, "the number; national numbers are read in sms.default_region")
    message: Text(1024)
    campaign: Text(128) | None = None
    agent: Text(128) | None = None
    api: Text(128, "the provider's name (uContact: the SMS API)") | None = None
    provider: Text(128, "the provider's name (as `api`)") | None = None
    wait_seconds: float = Field(0, ge=0, le=30)


def send_request(values: Mapping[str, Any]) -> SendSmsRequest:
    """uContact's fields → the SendSMS request (422 naming the field)."""
    fields = dict(values)
    if "api" in fields:
        if fields.get("provider") is not None:
            raise invalid("api and provider both name the provider: give one", "api")
        fields["provider"] = fields.pop("api")
    dest = fields.get("destination")
    if isinstance(dest, str) and dest[:1] == " " and dest[1:2].isdigit():
        fields["destination"] = "+" + dest[1:]  # an unencoded + read as a space
    try:  # form and URL values are text: "5" is a number here
        return SendSmsRequest.model_validate(fields, strict=False)
    except ValidationError as exc:
        raise first_problem(exc) from None


def form_fields(text: str) -> dict[str, str]:
    """``a=1&b=2`` (form or URL encoding, UTF-8) → its fields, each at most once."""
    try:
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, encoding="utf-8",
                                       errors="strict", max_num_fields=MAX_FIELDS)
    except UnicodeDecodeError:
        raise Problem(400, "Malformed form", "the form is not valid UTF-8") from None
    except ValueError:
        raise Problem(400, "Malformed form", f"more than {MAX_FIELDS} fields") from None
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            raise invalid(f"{key[:40]}: given more than once", key[:40])
        out[key] = value
    check_values(out)  # no NUL, no lone surrogate (keys included)
    return out


async def read_send(request: web.Request) -> SendSmsRequest:
    """The SendSMS body: JSON, or a UTF-8 form."""
    if request.content_type != FORM:
        return await read_model(request, SendSmsRequest)
    charset = request.charset
    if charset is not None and charset.lower() != "utf-8":
        raise Problem(415, "Unsupported Media Type", "a form is read as UTF-8: charset must "
                      "be utf-8 or absent")
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise Problem(413, "Payload Too Large",
                      f"the request body is limited to {MAX_BODY_BYTES} bytes")
    try:
        raw = await request.read()
        text = raw.decode("ascii")  # a form is percent-encoded ASCII
    except web.HTTPRequestEntityTooLarge:
        raise Problem(413, "Payload Too Large",
                      f"the request body is limited to {MAX_BODY_BYTES} bytes") from None
    except UnicodeDecodeError:
        raise Problem(400, "Malformed form", "a form body is percent-encoded ASCII") from None
    return send_request(form_fields(text))


def no_head(request: web.Request, would: str = "send a message") -> None:
    """aiohttp answers HEAD on a GET route: here a GET sends a message (or, inbound, stores
    one), a HEAD (a link preview, a monitor) must not."""
    if request.method == "HEAD":
        raise Problem(405, "Method Not Allowed", f"HEAD would {would}: use GET",
                      headers={"Allow": "GET"})


def add_ucontact_routes(routes: ApiRoutes, accept: Accept) -> None:
    """uContact's SendSMS paths; ``accept`` spools the request and answers (``http.py``)."""
    security = (ADMIN, ADMIN_BASIC)
    answers = {200: SmsStatus, 202: SmsStatus}

    @routes.post(INTEGRA, summary="SendSMS at uContact's path (JSON or form)",
                 security=security, body=SendSmsRequest, form=SendSmsForm,
                 responses=answers, problems=SEND_PROBLEMS)
    async def integra_send(request: web.Request, who: Principal) -> web.Response:
        """`POST /v1/sms` at the path uContact integrations call; the form's `api`, when
        given, names the provider."""
        return await accept(await read_send(request))

    @routes.get(INTEGRA, summary="SendSMS with the parameters in the query string",
                security=security, query=IntegraQuery, responses=answers,
                problems={409: SEND_PROBLEMS[409]})
    async def integra_send_query(request: web.Request, who: Principal) -> web.Response:
        """As `POST /v1/sms`, for integrations that send by GET."""
        no_head(request)
        q: IntegraQuery = query_of(request)
        return await accept(send_request(q.model_dump(exclude_unset=True)))

    @routes.get(INTEGRA + "/{form}", summary="SendSMS with the parameters as the last path "
                "segment", security=security, responses=answers,
                problems={409: SEND_PROBLEMS[409], 400: "the segment is not valid UTF-8 "
                          "form encoding", 422: "a parameter is missing, unknown to SendSMS, "
                          "repeated or invalid: `field` names it"})
    async def integra_send_path(request: web.Request, who: Principal) -> web.Response:
        """The form of uContact's manual: `…/SendSMS/destination=099635199&message=Hola&
        api=dongle` (`destination`, `message`, `campaign`, `agent`, `api`,
        `wait_seconds`). The segment is read as sent (its `%26` stays in the message)."""
        no_head(request)
        raw = request.raw_path.partition("?")[0].rpartition("/")[2]
        fields = form_fields(raw)
        unknown = sorted(set(fields) - set(IntegraQuery.model_fields))
        if unknown:
            raise invalid(f"{unknown[0][:40]}: not a parameter of this route", unknown[0][:40])
        return await accept(send_request(fields))
