"""A small harness for fault-injection tests: the real engine (tests/fixtures/faults.yaml) on
the sandbox Asterisk, SIPp callers on the carrier trunk, a local SMS provider and a local
webhook receiver; a fault is an async context manager that lasts ``FAULT_SECONDS``.

Each test yields one :class:`Row` of the table the lead reads: fault × callers completed ×
time to fallback × time to recover × lost/duplicated (printed as JSON, ``pytest -s``).
IVR_FAULT_SECONDS makes the faults longer than CI's 4 s (e.g. 10 for the figures).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
from aiohttp import web
from sqlalchemy import func, select

from ivr_engine.sms.models import STATE_NAMES, SpoolRow
from ivr_engine.repositories import Store
from ivr_engine.testing.record import CallRecord
from ivr_engine.testing.rtp_pcap import Key, keys_at
from tests.support.loopback import serve
from tests.support.sms_providers import LocalProviders

FAULTS = Path(__file__).resolve().parents[1] / "fixtures" / "faults.yaml"
FAULT_SECONDS = float(os.environ.get("IVR_FAULT_SECONDS", "4"))
WALK_DID, APP_NUMBER = "+15550002000", "+17144505656"
ADMIN = {"Authorization": "Bearer faults-admin-000000000000000000000000000"}
APP_KEY = {"Authorization": "Bearer customer-key-000000000000000000000000000"}
FALLBACK_PROMPT = "Playback(pls-hold-while-try"


@dataclass
class Row:
    """One fault's line of the table."""

    fault: str
    seconds: float = FAULT_SECONDS
    callers: int = 0
    completed: int = 0
    fallback_s: float | None = None  # the longest '#' -> fallback message, DB-waiting callers
    recover_s: float | None = None  # fault over -> the feature works again
    lost: int = 0
    duplicated: int = 0
    note: str = ""

    def show(self) -> "Row":
        print("FAULT " + json.dumps({k: round(v, 2) if isinstance(v, float) else v
                                     for k, v in asdict(self).items()}))
        return self


async def until(cond: Callable[[], Awaitable[bool] | bool], timeout: float, what: str,
                every: float = 0.05) -> float:
    """Poll ``cond`` (sync or async) until true; when it became true (monotonic)."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if not isinstance(got, bool):
            got = await got
        if got:
            return time.monotonic()
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(every)


@dataclass
class WebhookReceiver:
    """A context webhook receiver; while ``answering`` is cleared it holds every request
    (a receiver that hangs), then answers 200."""

    seen: list[tuple[str, str]] = field(default_factory=list)  # (delivery id, call id)
    answering: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        await self.answering.wait()
        self.seen.append((request.headers.get("X-IVR-Delivery", ""), body.get("call_id", "")))
        return web.json_response({"ok": True})

    async def start(self) -> "WebhookReceiver":
        self.answering.set()
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner, base = await serve(app, access_log=None)
        self.url = f"{base}/hook"
        return self

    async def close(self) -> None:
        self.answering.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def calls(self) -> Counter:
        """Distinct deliveries per call id (a delivery id seen twice is one delivery)."""
        return Counter(call for _, call in set(self.seen))


@dataclass
class Stack:
    engine: Any  # engine_proc.EngineProcess
    sipp: Any  # ivr_engine.testing.sipp.SippCaller
    providers: LocalProviders
    hook: WebhookReceiver
    db_url: str
    uploaded: int = 0

    async def _http(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            async with http.request(method, self.engine.api_url + path, **kw) as r:
                return r.status, await r.json(content_type=None)

    async def readyz(self) -> tuple[int, list[str]]:
        status, body = await self._http("GET", "/readyz")
        return status, body.get("reasons", [])

    async def ready(self) -> bool:
        return (await self.readyz())[0] == 200

    async def token(self) -> str:
        status, plan = await self._http("POST", "/v1/apps/customer/calls", headers=APP_KEY,
                                        json={"connectivity": 0.1})
        assert status == 201, plan
        return plan["token"]

    async def upload(self, n: int) -> None:
        """``n`` rows of campaign promo into the spool (over the API: needs the database)."""
        first, self.uploaded = self.uploaded, self.uploaded + n
        csv = "".join(f"promo;0995{i:05d};fault {i};9999\n" for i in range(first, first + n))
        status, body = await self._http("POST", "/v1/sms/uploads", data=csv.encode(),
                                        headers={**ADMIN, "Content-Type": "text/csv"})
        assert (status, body) == (200, {"imported": n}), body

    async def probe_sms(self) -> bool:
        """One single send (SendSMS over the API, the lane that waits behind no bulk
        batch) sent: the SMS feature works."""
        self.uploaded += 1
        status, body = await self._http("POST", "/v1/sms", headers=ADMIN, json={
            "destination": f"0994{self.uploaded:05d}", "message": "probe",
            "wait_seconds": 20})
        return status == 200 and body.get("status") == "sent"

    async def spool(self) -> dict[str, int]:
        """Rows per state, read from the engine's database directly."""
        store = await Store.open(self.db_url, check=False)
        try:
            async with store.db.sessions() as s:
                got = (await s.execute(select(SpoolRow.state, func.count())
                                       .group_by(SpoolRow.state))).all()
        finally:
            await store.close()
        return {STATE_NAMES[st]: n for st, n in got}

    async def spool_settled(self) -> bool:
        states = await self.spool()
        return sum(states.values()) == self.uploaded and \
            not states.get("to-process") and not states.get("sending")

    def walkers(self, n: int) -> tuple[list[CallRecord], Awaitable[Any]]:
        """``n`` callers walking top --1--> sub --1--> queue support, started over ~2 s."""
        return self.sipp.launch(WALK_DID, "1 1", calls=n, concurrency=n, rate=max(1, n / 2))

    def token_caller(self, token: str) -> tuple[list[CallRecord], Awaitable[Any]]:
        """A phone dialling the app's fallback number with its post-dial ``<token>#``, then
        1 in the app's menu; held 12 s so the fallback queue (if that is where it goes) is
        seen."""
        keys = keys_at(token + "#", 400, 220, duration_ms=100) + [Key("1", 4500)]
        return self.sipp.launch(APP_NUMBER, keys, hold_ms=12000)

    def alive(self) -> bool:
        return self.engine.proc.returncode is None


def walked(call: CallRecord) -> bool:
    return call.destination == {"type": "queue", "target": "support"}


def in_app(call: CallRecord) -> bool:
    return call.destination == {"type": "queue", "target": "sales"}


def fell_back(call: CallRecord) -> bool:
    return any(app == "Queue" and data.startswith("ivr-fallback") for app, data in call.dialplan)


def fallback_delay(call: CallRecord) -> float | None:
    """From the caller's ``#`` (Asterisk decoded it) to the fallback message starting."""
    sent, heard = call.first("key", "#"), call.first("app", FALLBACK_PROMPT)
    return None if sent is None or heard is None else heard - sent
