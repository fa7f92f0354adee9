"""Delivery reports as Twilio and Vonage post them, signed the way they sign, for the local
providers (``sms_providers.LocalProviders(reporter=Reporter(...))``): each accepted message
with a callback URL queues its report; ``await reporter.deliver()`` posts them (a test
decides when, no background task).

- Twilio: a form POST to the message's ``StatusCallback`` with ``X-Twilio-Signature``:
  base64 HMAC-SHA1 of the URL followed by every parameter name and value, in name order,
  keyed with the account's auth token
  (https://www.twilio.com/docs/usage/webhooks/webhooks-security).
- Vonage SMS API: a POST (form, or JSON for ``POST-JSON`` accounts) to the message's
  ``callback`` with the delivery-receipt fields, ``timestamp``, ``nonce`` and ``sig``: the
  fields sorted and written ``&k=v`` (``&``/``=`` in values as ``_``), MD5 with the secret
  appended (``md5hash``) or the HMAC keyed by the secret; or, with ``method="jwt"``, no
  ``sig`` but ``Authorization: Bearer`` a HS256 JWT with ``iat``, ``jti``, ``iss: Vonage``,
  ``api_key`` and ``payload_hash`` (the body's SHA-256)
  (https://developer.vonage.com/en/getting-started/concepts/signing-messages and
  .../webhooks#decoding-signed-webhooks).

``via`` maps the public base the engine gave the provider (its ``status_callback_url``) to
where the test's engine really listens: a reverse proxy in between, as in production.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import jwt


@dataclass
class Report:
    url: str  # the URL the provider calls (and signs)
    headers: dict[str, str]
    body: bytes


def twilio_signed(url: str, auth_token: str, form: dict[str, str]) -> Report:
    signed = url
    for name in sorted(form):
        signed += name + form[name]
    digest = hmac.new(auth_token.encode(), signed.encode(), "sha1").digest()
    return Report(url, {"Content-Type": "application/x-www-form-urlencoded",
                        "X-Twilio-Signature": base64.b64encode(digest).decode(),
                        "User-Agent": "TwilioProxy/1.1"}, urlencode(form).encode())


def vonage_signed(url: str, fields: dict[str, str], secret: str, method: str,
                  as_json: bool, api_key: str) -> Report:
    fields = dict(fields)
    headers: dict[str, str] = {}
    if method != "jwt":
        fields["timestamp"] = str(int(time.time()))
        fields["nonce"] = str(uuid.uuid4())
        query = "".join("&%s=%s" % (k, fields[k].replace("&", "_").replace("=", "_"))
                        for k in sorted(fields))
        if method == "md5hash":
            fields["sig"] = hashlib.md5((query + secret).encode()).hexdigest()
        else:
            fields["sig"] = hmac.new(secret.encode(), query.encode(), method).hexdigest().upper()
    body = json.dumps(fields).encode() if as_json else urlencode(fields).encode()
    headers["Content-Type"] = "application/json" if as_json else \
        "application/x-www-form-urlencoded"
    if method == "jwt":
        claims = {"iat": int(time.time()), "jti": str(uuid.uuid4()), "iss": "Vonage",
                  "api_key": api_key, "payload_hash": hashlib.sha256(body).hexdigest()}
        headers["Authorization"] = "Bearer " + jwt.encode(claims, secret, algorithm="HS256")
    return Report(url, headers, body)


@dataclass
class Reporter:
    twilio_token: str = ""
    vonage_key: str = ""
    vonage_secret: str = ""
    vonage_method: str = "md5hash"
    vonage_json: bool = False
    via: dict[str, str] = field(default_factory=dict)  # public base → where it listens
    pending: list[Report] = field(default_factory=list)

    def twilio(self, callback: str, sid: str, to: str, sender: str, account: str) -> None:
        self.pending.append(twilio_signed(callback, self.twilio_token, {
            "AccountSid": account, "ApiVersion": "2010-04-01", "From": sender,
            "MessageSid": sid, "MessageStatus": "delivered", "SmsSid": sid,
            "SmsStatus": "delivered", "To": to}))

    def vonage(self, callback: str, message_id: str, form: dict[str, Any]) -> None:
        fields = {"msisdn": str(form.get("to", "")), "to": str(form.get("from", "")),
                  "network-code": "74801", "messageId": message_id, "price": "0.03330000",
                  "status": "delivered", "scts": "2601011200", "err-code": "0",
                  "api-key": self.vonage_key, "message-timestamp": "2026-01-01 12:00:00"}
        if form.get("client-ref"):
            fields["client-ref"] = str(form["client-ref"])
        self.pending.append(vonage_signed(callback, fields, self.vonage_secret,
                                          self.vonage_method, self.vonage_json,
                                          self.vonage_key))

    def target(self, url: str) -> str:
        for public, real in self.via.items():
            if url.startswith(public):
                return real + url[len(public):]
        return url

    async def deliver(self) -> list[tuple[int, Any]]:
        """Post every pending report; (status, JSON answer) of each."""
        out = []
        async with aiohttp.ClientSession() as http:
            while self.pending:
                r = self.pending.pop(0)
                async with http.post(self.target(r.url), data=r.body,
                                     headers=r.headers) as resp:
                    out.append((resp.status, await resp.json(content_type=None)))
        return out
