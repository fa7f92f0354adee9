"""Inbound SMS as the providers post them to a customer's webhook, signed as they sign, and a
local webhook receiver for the engine's ``sms.received`` deliveries.

- Twilio's incoming-message webhook: a form POST with ``MessageSid``, ``SmsSid``,
  ``AccountSid``, ``From``, ``To``, ``Body``, ``NumSegments``, ``NumMedia``, ``SmsStatus``
  (``received``), the geographic fields and ``ApiVersion``, signed in ``X-Twilio-Signature``
  (base64 HMAC-SHA1 of the URL and the sorted parameters, keyed by the auth token:
  https://www.twilio.com/docs/messaging/guides/webhook-request,
  https://www.twilio.com/docs/usage/webhooks/webhooks-security).
- Vonage's SMS API inbound webhook: ``msisdn``, ``to``, ``messageId``, ``text``, ``type``,
  ``keyword``, ``api-key``, ``message-timestamp`` (and ``concat``, ``concat-ref``,
  ``concat-total``, ``concat-part`` for a part of a long message), as a GET query, a form
  or JSON; signed with ``timestamp``, ``nonce`` and ``sig`` when the account signs
  (https://developer.vonage.com/messaging/sms/guides/inbound-sms).
- Infobip's forward-to-URL (MO_JSON_2): ``{"results": [{messageId, from, to, text,
  cleanText, keyword, receivedAt, smsCount, price, callbackData}], "messageCount",
  "pendingMessageCount"}``
  (https://www.infobip.com/docs/api/channels/sms/inbound-sms/receive-inbound-sms-messages).
- A url-* gateway: a form with the fields the provider's ``inbound_fields`` name.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import itertools
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
from aiohttp import web

from .loopback import serve
from .sms_reports import Report, twilio_signed, vonage_signed

_ids = itertools.count(1)


def twilio_inbound(url: str, auth_token: str, account: str, sender: str, to: str,
                   body: str) -> Report:
    sid = f"SM{next(_ids):032x}"
    return twilio_signed(url, auth_token, {
        "ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": "0",
        "ToCity": "", "FromZip": "", "SmsSid": sid, "FromState": "", "SmsStatus": "received",
        "FromCity": "", "Body": body, "FromCountry": "UY", "To": to, "ToZip": "",
        "NumSegments": "1", "MessageSid": sid, "AccountSid": account, "From": sender,
        "ApiVersion": "2010-04-01"})


def vonage_inbound(url: str, api_key: str, sender: str, to: str, text: str, *,
                   secret: str | None = None, method: str = "md5hash", as_json: bool = False,
                   get: bool = False, part: tuple[str, int, int] | None = None,
                   message_id: str | None = None) -> Report:
    """``sender``, ``to``: international digits, as Vonage writes them; ``part``: (ref,
    total, number) of a long message."""
    fields = {"msisdn": sender, "to": to, "messageId": message_id or f"{next(_ids):016X}",
              "text": text, "type": "text", "keyword": text.split()[0].upper() if text else "",
              "api-key": api_key, "message-timestamp": dt.datetime.now(dt.timezone.utc)
              .strftime("%Y-%m-%d %H:%M:%S")}
    if part is not None:
        fields.update({"concat": "true", "concat-ref": part[0],
                       "concat-total": str(part[1]), "concat-part": str(part[2])})
    if secret is None:
        report = Report(url, {"Content-Type": "application/json" if as_json else
                              "application/x-www-form-urlencoded"},
                        json.dumps(fields).encode() if as_json else urlencode(fields).encode())
    else:
        report = vonage_signed(url, fields, secret, method, as_json, api_key)
    if get:  # the same (signed) fields as the query of a GET
        signed = json.loads(report.body) if as_json else dict(parse_qsl(report.body.decode()))
        report = Report(url + "?" + urlencode(signed), {}, b"")
    return report


def infobip_inbound(url: str, messages: list[tuple[str, str, str]]) -> Report:
    """``messages``: (from, to, text), numbers as international digits."""
    results = []
    for sender, to, text in messages:
        keyword, _, clean = text.partition(" ")
        results.append({
            "messageId": str(817790313235066447 + next(_ids)), "from": sender, "to": to,
            "text": text, "cleanText": clean, "keyword": keyword.upper(),
            "receivedAt": dt.datetime.now(dt.timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%S.000+0000"),
            "smsCount": 1, "price": {"pricePerMessage": 0, "currency": "EUR"},
            "callbackData": "callbackData"})
    return Report(url, {"Content-Type": "application/json"}, json.dumps({
        "results": results, "messageCount": len(results), "pendingMessageCount": 0}).encode())


def gateway_inbound(url: str, fields: dict[str, str]) -> Report:
    return Report(url, {"Content-Type": "application/x-www-form-urlencoded"},
                  urlencode(fields).encode())


async def post(report: Report, via: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """Send ``report`` as the provider does ((status, content type, body)); ``via`` maps the
    public base it was signed for to where the engine listens (a reverse proxy)."""
    target = report.url
    for public, real in (via or {}).items():
        if target.startswith(public):
            target = real + target[len(public):]
    async with aiohttp.ClientSession() as http:
        method = "POST" if report.body or report.headers else "GET"
        async with http.request(method, target, data=report.body or None,
                                headers=report.headers) as r:
            return r.status, r.content_type, await r.read()


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)

    def signed_with(self, secret: str) -> bool:
        digest = hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers.get("X-IVR-Signature", ""), f"sha256={digest}")


@dataclass
class WebhookReceiver:
    """Records every request; answers ``fail_status`` while it is set."""

    fail_status: int | None = None
    attempts: list[Delivery] = field(default_factory=list)  # every request, failed ones too
    delivered: list[Delivery] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        d = Delivery(dict(request.headers), await request.read())
        self.attempts.append(d)
        self.changed.set()
        if self.fail_status is not None:
            return web.Response(status=self.fail_status, text="down")
        self.delivered.append(d)
        return web.Response(status=204)

    async def start(self) -> "WebhookReceiver":
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner, base = await serve(app, access_log=None)
        self.url = f"{base}/hook"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        """Until ``predicate(self)`` holds (polled on every request, with a deadline)."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self.changed.clear()
                await self.changed.wait()
