"""The SMS providers' HTTP APIs: Twilio, Vonage (Nexmo SMS API), Infobip; the URL GET/POST
types are in ``urlproviders.py``. Every base URL is config (tests point them at local
servers that check the exact request). Secrets travel only in the request's auth; they are
never logged nor kept in an answer.

Each ``send`` ends in one of four outcomes:

    sent      the provider accepted it: its message id and status
    failed    the provider refused it: its error code and text
    not-sent  the request never reached the provider (connection refused): send again later
    unknown   the request may have reached it (timeout, dropped connection, 5xx)

An answer of a shape the adapter does not expect (a list where an object belongs, a string for
a status, …) is ``failed`` with what was read: never an exception out of the SMS lane.

``lookup(key)`` tells, for a send whose outcome is unknown (a crash, a timeout), whether the
provider has it. Only Infobip can: the engine sets Infobip's ``messageId`` to the row's
idempotency key and asks ``GET /sms/1/logs?messageId=``. The others answer None (cannot tell):
the provider's ``unknown_outcome`` decides (``fail``: never twice; ``resend``: never lost).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from aiolimiter import AsyncLimiter

log = logging.getLogger("ivr_engine.sms")

Outcome = Literal["sent", "failed", "not-sent", "unknown"]
#: the answers ``_answer`` read during the current ``send`` (to show a garbled one)
_READ: contextvars.ContextVar[list[tuple[int, Any]] | None] = contextvars.ContextVar(
    "sms_answers_read", default=None)


@dataclass(frozen=True, slots=True)
class Outbound:
    key: str  # the row's idempotency key
    to: str  # E.164
    text: str
    encoding: str  # gsm7 | ucs2
    segments: int
    channel: int | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    answer: str  # the provider's status or error, short; never a secret
    message_id: str | None = None


class RateCap:
    """The provider's send-rate cap (aiolimiter's leaky bucket), counting segments or
    messages. Its bucket holds at least 10 units (so a 10-part message fits in one take) and
    at most one second of the rate. Bulk sends queue for it one at a time behind a lock, so
    a single send waits behind at most one bulk send, never behind the backlog."""

    def __init__(self, rate: float | None, unit: str):
        self.unit = unit
        self.capacity = max(rate or 0.0, 10.0)
        self._limiter = (AsyncLimiter(self.capacity, self.capacity / rate) if rate else None)
        self._bulk = asyncio.Lock()

    async def take(self, segments: int, *, single: bool) -> None:
        if self._limiter is None:
            return
        amount = segments if self.unit == "segments" else 1
        if single:
            await self._take(amount)
            return
        async with self._bulk:
            await self._take(amount)

    async def _take(self, amount: float) -> None:
        for _ in range(math.ceil(amount / self.capacity)):
            step = min(amount, self.capacity)
            await self._limiter.acquire(step)  # type: ignore[union-attr]
            amount -= step


def basic_auth(user: str | None, password: str) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(user or "", password)}


def digits(e164: str) -> str:
    return e164.lstrip("+")


def short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Provider(ABC):
    """One configured provider (``spec`` is its config.model_sms.SmsProvider)."""

    lookup_supported = False

    def __init__(self, spec: Any, http: aiohttp.ClientSession):
        self.spec = spec
        self.name: str = spec.name
        self.http = http
        self.base = (spec.base_url or "").rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=spec.timeout_seconds)
        self.cap = RateCap(spec.rate, spec.rate_unit)

    @property
    def secret(self) -> str:
        return self.spec.password.get_secret_value() if self.spec.password else ""

    def callback_url(self) -> str | None:
        s = self.spec
        if not s.status_callback_url or s.callback_token is None:
            return None
        return (f"{s.status_callback_url.rstrip('/')}/v1/sms/reports/{self.name}/"
                f"{s.callback_token.get_secret_value()}")

    async def send(self, out: Outbound) -> SendResult:
        read: list[tuple[int, Any]] = []
        token = _READ.set(read)
        try:
            return await self._send(out)
        except aiohttp.ClientConnectorError as exc:
            return SendResult("not-sent", short(f"cannot connect: {exc.os_error}"))
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            return SendResult("unknown", short(f"{type(exc).__name__}: {exc}"))
        except Exception as exc:  # noqa: BLE001 - an answer this adapter cannot read
            got = f"HTTP {read[-1][0]}: {read[-1][1]}" if read else "nothing read"
            log.warning("sms provider %s: unexpected answer (%s: %s): %s", self.name,
                        type(exc).__name__, exc, short(got, 200))
            return SendResult("failed", short(f"unexpected answer from the provider "
                                              f"({type(exc).__name__}): {got}"))
        finally:
            _READ.reset(token)

    @abstractmethod
    async def _send(self, out: Outbound) -> SendResult:
        """One request to the provider, its answer read (``send`` turns errors into outcomes)."""

    async def lookup(self, key: str) -> SendResult | None:
        """Whether the provider has the send with idempotency key ``key``; None: cannot tell."""
        return None

    async def _answer(self, resp: aiohttp.ClientResponse) -> tuple[int, Any]:
        body = await resp.read()
        try:
            answer = resp.status, json.loads(body) if body else None
        except ValueError:
            answer = resp.status, body.decode("utf-8", "replace")
        read = _READ.get()
        if read is not None:
            read.append(answer)
        return answer


def _unknown_if_5xx(status: int, data: Any) -> SendResult | None:
    if status >= 500 or status == 429:
        return SendResult("unknown" if status >= 500 else "not-sent",
                          short(f"HTTP {status}: {data}"))
    return None


class Twilio(Provider):
    """``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, HTTP basic auth (account SID,
    auth token), form fields To, From, Body, StatusCallback; 201 with the message ``sid``, or
    a JSON error ``{code, message, status}``."""

    async def _send(self, out: Outbound) -> SendResult:
        sid = self.spec.user
        form = {"To": out.to, "From": self.spec.sender or "", "Body": out.text}
        cb = self.callback_url()
        if cb:
            form["StatusCallback"] = cb
        async with self.http.post(f"{self.base}/2010-04-01/Accounts/{sid}/Messages.json",
                                  data=form, headers=basic_auth(sid, self.secret),
                                  timeout=self.timeout) as resp:
            status, data = await self._answer(resp)
        if (r := _unknown_if_5xx(status, data)) is not None:
            return r
        if status in (200, 201) and isinstance(data, dict) and data.get("sid"):
            return SendResult("sent", short(f"{data.get('status', 'queued')}"), data["sid"])
        if isinstance(data, dict):
            return SendResult("failed", short(f"HTTP {status} {data.get('code')}: "
                                              f"{data.get('message')}"))
        return SendResult("failed", short(f"HTTP {status}: {data}"))


class Vonage(Provider):
    """Vonage (Nexmo) SMS API: ``POST /sms/json``, form fields api_key, api_secret, from, to
    (digits, no +), text, type (``unicode`` for UCS-2), client-ref (the idempotency key, sent
    back in delivery receipts), callback. 200 with one entry per part in ``messages``, each
    with ``status`` ("0" is success), ``message-id`` or ``error-text``."""

    async def _send(self, out: Outbound) -> SendResult:
        form = {"api_key": self.spec.user, "api_secret": self.secret,
                "from": self.spec.sender or "", "to": digits(out.to), "text": out.text,
                "type": "unicode" if out.encoding == "ucs2" else "text",
                "client-ref": out.key}
        cb = self.callback_url()
        if cb:
            form["callback"] = cb
            form["status-report-req"] = "1"
        async with self.http.post(f"{self.base}/sms/json", data=form,
                                  timeout=self.timeout) as resp:
            status, data = await self._answer(resp)
        if (r := _unknown_if_5xx(status, data)) is not None:
            return r
        parts = data.get("messages") if isinstance(data, dict) else None
        if status != 200 or not parts:
            return SendResult("failed", short(f"HTTP {status}: {data}"))
        bad = [p for p in parts if str(p.get("status")) != "0"]
        if bad:
            p = bad[0]
            return SendResult("failed", short(f"status {p.get('status')}: "
                                              f"{p.get('error-text', '')}"))
        return SendResult("sent", f"accepted ({len(parts)} part{'s' * (len(parts) > 1)})",
                          parts[0].get("message-id"))


class Infobip(Provider):
    """``POST /sms/2/text/advanced`` with ``Authorization: App <API key>`` and a JSON body
    ``{"messages": [{"destinations": [{"to", "messageId"}], "from", "text", "notifyUrl"}]}``
    (the ``messageId`` is the idempotency key); 200 with the message's status group
    (PENDING, REJECTED, …), or ``{"requestError": {"serviceException": {messageId, text}}}``.
    ``GET /sms/1/logs?messageId=`` finds a send again after a crash."""

    lookup_supported = True

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"App {self.secret}", "Accept": "application/json"}

    async def _send(self, out: Outbound) -> SendResult:
        msg: dict[str, Any] = {"destinations": [{"to": digits(out.to), "messageId": out.key}],
                               "text": out.text}
        if self.spec.sender:
            msg["from"] = self.spec.sender
        cb = self.callback_url()
        if cb:
            msg["notifyUrl"] = cb
            msg["notifyContentType"] = "application/json"
        async with self.http.post(f"{self.base}/sms/2/text/advanced", json={"messages": [msg]},
                                  headers=self._headers(), timeout=self.timeout) as resp:
            status, data = await self._answer(resp)
        if (r := _unknown_if_5xx(status, data)) is not None:
            return r
        if status == 200 and isinstance(data, dict) and data.get("messages"):
            m = data["messages"][0]
            group = (m.get("status") or {}).get("groupName", "")
            if group == "REJECTED":
                return SendResult("failed", short(f"REJECTED: {m['status'].get('name')} "
                                                  f"{m['status'].get('description', '')}"))
            return SendResult("sent", short(group or "accepted"), m.get("messageId"))
        exc = ((data or {}).get("requestError") or {}).get("serviceException") \
            if isinstance(data, dict) else None
        if exc:
            return SendResult("failed", short(f"HTTP {status} {exc.get('messageId')}: "
                                              f"{exc.get('text')}"))
        return SendResult("failed", short(f"HTTP {status}: {data}"))

    async def lookup(self, key: str) -> SendResult | None:
        try:
            async with self.http.get(f"{self.base}/sms/1/logs", params={"messageId": key},
                                     headers=self._headers(), timeout=self.timeout) as resp:
                status, data = await self._answer(resp)
        except (asyncio.TimeoutError, aiohttp.ClientError):
            return None
        if status != 200 or not isinstance(data, dict):
            return None
        try:
            found = [r for r in data.get("results") or [] if r.get("messageId") == key]
            group = (found[0].get("status") or {}).get("groupName", "") if found else ""
        except (AttributeError, TypeError):  # an answer of another shape: cannot tell
            log.warning("sms provider %s: unexpected lookup answer: %s", self.name,
                        short(str(data), 200))
            return None
        if found:
            return SendResult("failed" if group == "REJECTED" else "sent",
                              short(f"found after restart: {group}"), key)
        return SendResult("not-sent", "not found at the provider after restart")
