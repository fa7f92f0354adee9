"""Local SMS providers speaking the real wire protocols, for the tests and the benchmark:
Twilio (Messages.json, basic auth, form), Vonage (``/sms/json``, form with api_key and
api_secret), Infobip (``/sms/2/text/advanced``, ``Authorization: App``, JSON; ``/sms/1/logs``
lookup) and a generic gateway (``/gw`` GET or POST, optional basic auth). Every request is
kept (``requests``) with what it carried, and each accepted message counted by its key, so a
test sees duplicates.

Faults, for the bulkhead tests: ``garbage`` answers every send 200 with JSON of a shape no
provider uses (Infobip: ``{"messages": ["PENDING"]}``), ``fail_status`` answers with that
HTTP status, and while ``answering`` is cleared every request waits (a provider that hangs:
what it held is answered 503 afterwards, never processed).

With a ``reporter`` (``sms_reports.Reporter``), Twilio and Vonage queue a signed delivery
report for each accepted message that names a callback URL, as they do.

Run alone (``python -m tests.support.sms_providers --port 0 --latency-ms 0``) it prints its
URL and serves ``GET /_stats`` (accepted, distinct, duplicates).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .loopback import serve
from .sms_reports import Reporter

TWILIO_SID, TWILIO_TOKEN = "AC0123456789abcdef0123456789abcdef", "twilio-secret-token"
VONAGE_KEY, VONAGE_SECRET = "vonage-key", "vonage-secret"
INFOBIP_KEY = "infobip-secret-key"
GW_USER, GW_PASSWORD = "gwuser", "gw-secret"


@dataclass
class Seen:
    kind: str
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    form: dict[str, str]
    json: Any


@dataclass
class LocalProviders:
    latency: float = 0.0
    keep_requests: bool = True
    requests: list[Seen] = field(default_factory=list)
    accepted: collections.Counter = field(default_factory=collections.Counter)
    refuse: set[str] = field(default_factory=set)  # destinations answered with an error
    fail_status: int | None = None  # answer every send with this HTTP status
    garbage: bool = False  # answer every send 200 with JSON of an unexpected shape
    answering: asyncio.Event = field(default_factory=lambda: _set(asyncio.Event()))  # clear: hang
    reporter: Reporter | None = None  # queues signed delivery reports (Twilio, Vonage)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self.twilio)
        app.router.add_post("/sms/json", self.vonage)
        app.router.add_post("/sms/2/text/advanced", self.infobip)
        app.router.add_get("/sms/1/logs", self.infobip_logs)
        app.router.add_route("*", "/gw", self.gateway)
        app.router.add_get("/_stats", self.stats)
        return app

    async def _seen(self, kind: str, request: web.Request) -> Seen:
        form: dict[str, str] = {}
        body: Any = None
        if request.content_type == "application/x-www-form-urlencoded":
            form = dict(await request.post())
        elif request.content_type == "application/json":
            body = await request.json()
        s = Seen(kind, request.method, request.path, dict(request.headers),
                 dict(request.query), form, body)
        if self.keep_requests:
            self.requests.append(s)
        if self.latency:
            await asyncio.sleep(self.latency)
        if not self.answering.is_set():  # hanging: what it holds is never processed
            await self.answering.wait()
            raise web.HTTPServiceUnavailable(text="held while the provider hung")
        return s

    def _basic(self, request: web.Request) -> tuple[str, str] | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return None
        user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
        return user, pw

    async def twilio(self, request: web.Request) -> web.Response:
        s = await self._seen("twilio", request)
        if self._basic(request) != (TWILIO_SID, TWILIO_TOKEN) or \
                request.match_info["sid"] != TWILIO_SID:
            return web.json_response({"code": 20003, "message": "Authenticate",
                                      "status": 401}, status=401)
        if self.fail_status:
            return web.json_response({"message": "boom"}, status=self.fail_status)
        to = s.form.get("To", "")
        if to in self.refuse or not to.startswith("+"):
            return web.json_response({"code": 21211, "message": f"The 'To' number {to} is "
                                      "not a valid phone number.", "status": 400}, status=400)
        sid = f"SM{next(self._ids):032x}"
        self.accepted[sid] += 1
        if self.reporter is not None and s.form.get("StatusCallback"):
            self.reporter.twilio(s.form["StatusCallback"], sid, to, s.form.get("From", ""),
                                 TWILIO_SID)
        return web.json_response({"sid": sid, "status": "queued", "to": to,
                                  "body": s.form.get("Body")}, status=201)

    async def vonage(self, request: web.Request) -> web.Response:
        s = await self._seen("vonage", request)
        f = s.form
        if (f.get("api_key"), f.get("api_secret")) != (VONAGE_KEY, VONAGE_SECRET):
            return web.json_response({"message-count": "1", "messages": [
                {"status": "4", "error-text": "Bad Credentials"}]})
        if f.get("to") in self.refuse:
            return web.json_response({"message-count": "1", "messages": [
                {"status": "3", "error-text": "Invalid to number"}]})
        mid = f"{next(self._ids):016X}"
        self.accepted[f.get("client-ref") or mid] += 1
        if self.reporter is not None and f.get("callback") and f.get("status-report-req"):
            self.reporter.vonage(f["callback"], mid, f)
        return web.json_response({"message-count": "1", "messages": [
            {"to": f.get("to"), "message-id": mid, "status": "0", "client-ref":
             f.get("client-ref")}]})

    async def infobip(self, request: web.Request) -> web.Response:
        s = await self._seen("infobip", request)
        if request.headers.get("Authorization") != f"App {INFOBIP_KEY}":
            return web.json_response({"requestError": {"serviceException": {
                "messageId": "UNAUTHORIZED", "text": "Invalid login details"}}}, status=401)
        if self.fail_status:
            return web.json_response({"requestError": {}}, status=self.fail_status)
        if self.garbage:
            return web.json_response({"messages": ["PENDING"]})
        out = []
        for msg in s.json["messages"]:
            for d in msg["destinations"]:
                mid = d.get("messageId") or f"ib-{next(self._ids)}"
                if d["to"] in self.refuse:
                    status = {"groupId": 5, "groupName": "REJECTED", "id": 51,
                              "name": "MISSING_TO", "description": "Missing destination"}
                else:
                    self.accepted[mid] += 1
                    status = {"groupId": 1, "groupName": "PENDING", "id": 26,
                              "name": "PENDING_ACCEPTED", "description": "accepted"}
                out.append({"to": d["to"], "status": status, "messageId": mid})
        return web.json_response({"bulkId": f"bulk-{next(self._ids)}", "messages": out})

    async def infobip_logs(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"App {INFOBIP_KEY}":
            return web.json_response({}, status=401)
        mid = request.query.get("messageId", "")
        found = [{"messageId": mid, "status": {"groupName": "DELIVERED"}}] \
            if self.accepted.get(mid) else []
        return web.json_response({"results": found})

    async def gateway(self, request: web.Request) -> web.Response:
        s = await self._seen("gateway", request)
        if self.fail_status:
            return web.Response(status=self.fail_status, text="boom")
        fields = s.query if request.method == "GET" else s.form
        if request.query.get("auth") == "1" and self._basic(request) != (GW_USER, GW_PASSWORD):
            return web.Response(status=401, text="unauthorized")
        mid = f"gw-{next(self._ids)}"
        self.accepted[fields.get("id") or mid] += 1
        return web.json_response({"id": mid, "ok": True})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.summary())

    def summary(self) -> dict[str, int]:
        return {"accepted": sum(self.accepted.values()), "distinct": len(self.accepted),
                "duplicates": sum(n - 1 for n in self.accepted.values() if n > 1)}


def _set(event: asyncio.Event) -> asyncio.Event:
    event.set()
    return event


def signed_providers_yaml(url: str, public: str, *, tw_sender: str, tw_token: str,
                          vg_token: str, vg_secret: str, tw_extra: str = "",
                          vg_extra: str = "") -> str:
    """The ``sms.providers`` items of a Twilio ``tw`` and a Vonage ``vg`` on the local
    providers at ``url``, whose signed callbacks name the engine's ``public`` base; ``*_extra``:
    more fields (", inbound: true")."""
    return (f"""\
    - {{name: tw, type: twilio, url: "{url}", user: {TWILIO_SID},
       password: {TWILIO_TOKEN},
       sender: "{tw_sender}", status_callback_url: "{public}", callback_token: {tw_token},
       verify_signature: true{tw_extra}}}
    - {{name: vg, type: vonage, url: "{url}", user: {VONAGE_KEY}, password: {VONAGE_SECRET},
       sender: ACME, status_callback_url: "{public}", callback_token: {vg_token},
       verify_signature: true, signature_secret: {vg_secret}{vg_extra}}}
""")


async def start(providers: LocalProviders, port: int = 0) -> tuple[web.AppRunner, str]:
    return await serve(providers.app(), port, access_log=None)


async def _main(port: int, latency_ms: float) -> None:
    providers = LocalProviders(latency=latency_ms / 1000, keep_requests=False)
    runner, url = await start(providers, port)
    print(json.dumps({"url": url}), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    a = ap.parse_args()
    asyncio.run(_main(a.port, a.latency_ms))
