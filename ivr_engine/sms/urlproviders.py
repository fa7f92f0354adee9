"""The generic URL providers (SMS gateways, GSM boxes, in-house services) and the factory
that builds any configured provider.

    url-get        GET  <url>?<params>                 url-get-auth   the same, HTTP basic auth
    url-post       POST <url>, params as a form body   url-post-auth  the same, HTTP basic auth

``params`` maps each field to a template: ``{to}`` (E.164), ``{to_digits}`` (no +),
``{text}``, ``{from}``, ``{channel}`` (the dial string's rotation), ``{id}`` (the row's
idempotency key), ``{encoding}`` (gsm7 / ucs2). Any 2xx answer is success; the message id is
read from the JSON answer's ``message_id_field`` when set. These gateways have no way to be
asked about a send after a crash: ``unknown_outcome`` decides.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from .providers import (
    Infobip,
    Outbound,
    Provider,
    SendResult,
    Twilio,
    Vonage,
    _unknown_if_5xx,
    basic_auth,
    digits,
    short,
)

class UrlProvider(Provider):
    def __init__(self, spec: Any, http: aiohttp.ClientSession):
        super().__init__(spec, http)
        self.method = "POST" if spec.type.startswith("url-post") else "GET"
        self.basic = spec.type.endswith("-auth")
        self.endpoint = spec.url

    def fields(self, out: Outbound) -> dict[str, str]:
        values = {"to": out.to, "to_digits": digits(out.to), "text": out.text,
                  "from": self.spec.sender or "", "encoding": out.encoding,
                  "channel": "" if out.channel is None else str(out.channel), "id": out.key}
        return {k: v.format_map(values) for k, v in self.spec.params.items()}

    async def _send(self, out: Outbound) -> SendResult:
        headers = basic_auth(self.spec.user, self.secret) if self.basic else None
        fields = self.fields(out)
        kw: dict[str, Any] = {"params": fields} if self.method == "GET" else {"data": fields}
        async with self.http.request(self.method, self.endpoint, headers=headers,
                                     timeout=self.timeout, **kw) as resp:
            status, data = await self._answer(resp)
        if (r := _unknown_if_5xx(status, data)) is not None:
            return r
        if not 200 <= status < 300:
            return SendResult("failed", short(f"HTTP {status}: {data}"))
        mid = None
        key = self.spec.message_id_field
        if key and isinstance(data, dict) and data.get(key) is not None:
            mid = str(data[key])
        return SendResult("sent", short(f"HTTP {status}: {data}" if data else f"HTTP {status}"),
                          mid)


TYPES: dict[str, type[Provider]] = {"twilio": Twilio, "vonage": Vonage, "infobip": Infobip,
                                    "url-get": UrlProvider, "url-get-auth": UrlProvider,
                                    "url-post": UrlProvider, "url-post-auth": UrlProvider}


def make_provider(spec: Any, http: aiohttp.ClientSession) -> Provider:
    return TYPES[spec.type](spec, http)
