"""Inbound SMS end to end, in process (no Asterisk), on SQLite and PostgreSQL: each provider's
real inbound wire format — Twilio's signed form, Vonage's signed form / JSON / GET query and
the parts of a long message, Infobip's JSON results, a url-post gateway's form — posted to the
engine's route through a reverse proxy's public base, as the provider would. The engine stores
each message once (a replay changes nothing), links it to the campaign message it answers,
refuses a forged signature or a wrong token, puts an opt-out keyword's sender on the
do-not-contact list (the dialer then blocks that number and sends the others), and delivers
the signed ``sms.received`` webhook to a local receiver — later, and still once, when the
receiver was down and the delivering loop restarted meanwhile."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import uuid

import pytest
from aiohttp.test_utils import TestClient

from ivr_engine.config import parse_config
from ivr_engine.repositories import Store
from ivr_engine.server import ApiParts, build_app
from ivr_engine.sms.dialer import SmsService
from ivr_engine.sms.inbound_search import inbound_info
from ivr_engine.sms.inbound_webhook import InboundDelivery
from ivr_engine.sms.search import Filters
from tests.support.api_server import ApiTestServer
from tests.support.sms_inbound import (
    WebhookReceiver,
    gateway_inbound,
    infobip_inbound,
    post,
    twilio_inbound,
    vonage_inbound,
)
from tests.support.sms_providers import (
    INFOBIP_KEY,
    TWILIO_SID,
    TWILIO_TOKEN,
    VONAGE_KEY,
    LocalProviders,
    signed_providers_yaml,
    start,
)

ADMIN = "inbound-admin-token-0000000000000000000000"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
PUBLIC = "https://ivr.example/engine"
SIGNATURE_SECRET = "vonage-signature-secret-000000000000000000"
HOOK_SECRET = "inbound-webhook-secret-00000000000000000000"
TOKENS = {name: f"{name}-inbound-token-000000000000000000000000" for name in
          ("tw", "vg", "ib", "gw")}
OURS = {"tw": "+15005550006", "vg": "+447700900000", "ib": "+59829001234",
        "gw": "+59829005678"}  # the number each provider receives on
CUSTOMER, OTHER = "+59899635199", "+59899111222"
PROVIDERS = ["tw", "vg", "ib", "gw"]


def config_text(url: str, hook: str) -> str:
    return f"""
engine:
  ari: {{password: unused}}
  api: {{admin_token: {ADMIN}}}
sms:
  default_region: UY
  providers:
{signed_providers_yaml(url, PUBLIC, tw_sender=OURS['tw'], tw_token=TOKENS['tw'],
                       vg_token=TOKENS['vg'], vg_secret=SIGNATURE_SECRET,
                       tw_extra=", inbound: true", vg_extra=", inbound: true")}\
    - {{name: ib, type: infobip, url: "{url}", password: {INFOBIP_KEY},
       sender: "{OURS['ib']}", callback_token: {TOKENS['ib']}, inbound: true}}
    - {{name: gw, type: url-post, url: "{url}/gw", sender: "{OURS['gw']}",
       params: {{to: "{{to}}", text: "{{text}}", id: "{{id}}"}}, message_id_field: id,
       callback_token: {TOKENS['gw']}, inbound: true,
       inbound_fields: {{from: msisdn, to: shortcode, text: message, id: smsid}}}}
  dialers: {{d: {{provider: ib}}}}
  campaigns: {{promo: {{dialer: d}}}}
  inbound:
    reply_window_hours: 1
    stop_words: {{en: [STOP], es: [BAJA]}}
    poll_seconds: 0.05
    webhook: {{url: "{hook}", secret: {HOOK_SECRET}, backoff_seconds: 0.05,
               max_backoff_seconds: 0.2}}
"""


class Engine:
    def __init__(self, client, store, svc, providers, receiver, tg, cfg):
        self.client, self.store, self.svc = client, store, svc
        self.providers, self.receiver, self.tg, self.cfg = providers, receiver, tg, cfg
        self.via: dict[str, str] = {}  # the public base → where the engine listens
        self.delivery = InboundDelivery(lambda: cfg, store.sms_inbound)
        self.delivering = tg.create_task(self.delivery.run())

    def url(self, provider: str, token: str | None = None) -> str:
        return f"{PUBLIC}/v1/sms/inbound/{provider}/{token or TOKENS[provider]}"

    def inbound(self, provider: str, sender: str, text: str, **kw):
        """The provider's own request carrying one message from ``sender`` to our number."""
        url, ours = self.url(provider, kw.pop("token", None)), OURS[provider]
        smsid = kw.pop("smsid", None) or f"gw-{uuid.uuid4().hex[:12]}"
        if provider == "tw":
            return twilio_inbound(url, TWILIO_TOKEN, TWILIO_SID, sender, ours, text)
        if provider == "vg":
            return vonage_inbound(url, VONAGE_KEY, sender[1:], ours[1:], text,
                                  secret=SIGNATURE_SECRET, **kw)
        if provider == "ib":
            return infobip_inbound(url, [(sender[1:], ours[1:], text)])
        return gateway_inbound(url, {"msisdn": sender, "shortcode": ours, "message": text,
                                     "smsid": smsid})

    async def send(self, report) -> tuple[int, str, bytes]:
        return await post(report, self.via)

    async def search(self, **query) -> list[dict]:
        r = await self.client.get("/v1/admin/sms/inbound", params=query, headers=AUTH)
        body = await r.json()
        assert r.status == 200, body
        return body["messages"]

    async def until(self, predicate, timeout: float = 10.0) -> list[dict]:
        """The stored messages once ``predicate`` holds of them (polled, with a deadline:
        the receiver has its request a moment before the engine writes the outcome)."""
        every = Filters(dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc),
                        dt.datetime(3000, 1, 1, tzinfo=dt.timezone.utc))
        async with asyncio.timeout(timeout):  # the repository: no rate limit to meet
            while not predicate(messages := [inbound_info(r) for r in
                                             await self.store.sms_inbound.search(every)]):
                await asyncio.sleep(0.02)
        return messages

    async def sms(self, provider: str, to: str = CUSTOMER, campaign: str = "promo") -> dict:
        r = await self.client.post("/v1/sms", headers=AUTH, json={
            "destination": to, "message": "¿Vienes mañana?", "provider": provider,
            "campaign": campaign, "wait_seconds": 5})
        body = await r.json()
        assert r.status == 200 and body["status"] == "sent", body
        return body


@pytest.fixture
async def engine(db_url):
    providers = LocalProviders()
    runner, url = await start(providers)
    receiver = await WebhookReceiver().start()
    cfg = parse_config(config_text(url, receiver.url), "inbound.yaml",
                       {"IVR_DATABASE_URL": db_url})
    store = await Store.open(db_url)
    try:
        async with SmsService(lambda: cfg, store.sms, worker="inbound-test") as svc, \
                asyncio.TaskGroup() as tg:
            lane = tg.create_task(svc.run_single())
            eng = Engine(None, store, svc, providers, receiver, tg, cfg)
            client = TestClient(ApiTestServer(build_app(ApiParts(
                config=lambda: cfg, store=store, sms=svc, inbound=eng.delivery))))
            await client.start_server()
            eng.client = client
            eng.via = {PUBLIC: str(client.make_url("")).rstrip("/")}
            try:
                yield eng
            finally:
                await client.close()
                lane.cancel()
                eng.delivering.cancel()
    finally:
        await store.close()
        await receiver.stop()
        await runner.cleanup()


def accepted(provider: str, answer: tuple[int, str, bytes], **counts: int) -> None:
    status, ctype, body = answer
    assert status == 200, body
    if provider == "tw":  # the empty TwiML Twilio expects
        assert (ctype, body) == ("text/xml", b'<?xml version="1.0" encoding="UTF-8"?>'
                                 b'<Response/>')
    else:
        want = {"stored": 0, "duplicates": 0, "parts_waiting": 0, **counts}
        assert (ctype, json.loads(body)) == ("application/json", want)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_reply_is_stored_once_linked_and_delivered_signed(engine, provider):
    sent = await engine.sms(provider)
    report = engine.inbound(provider, CUSTOMER, "Sí, a las 10")
    accepted(provider, await engine.send(report), stored=1)
    [msg] = await engine.search(number="099 635 199")  # any format, like a send
    assert (msg["provider"], msg["sender"], msg["recipient"], msg["text"]) == (
        provider, CUSTOMER, OURS[provider], "Sí, a las 10")
    assert (msg["campaign"], msg["reply_to"], msg["stop_word"]) == ("promo", sent["id"], None)

    rx = engine.receiver
    await rx.wait_for(lambda r: len(r.delivered) == 1)
    first = rx.delivered[0]
    assert first.signed_with(HOOK_SECRET) and first.headers["X-IVR-Event"] == "sms.received"
    assert first.event == {
        "event": "sms.received", "id": msg["id"], "provider": provider,
        "message_id": msg["message_id"], "sender": CUSTOMER, "recipient": OURS[provider],
        "text": "Sí, a las 10", "received_at": first.event["received_at"],
        "campaign": "promo", "reply_to": sent["id"], "stop": None}

    accepted(provider, await engine.send(report), duplicates=1)  # the provider's retry
    # a later message fences the webhook: deliveries go oldest first, so a second delivery of
    # the first message would come before this one's
    accepted(provider, await engine.send(engine.inbound(provider, CUSTOMER, "Gracias",
                                                        smsid="gw-second")), stored=1)
    await rx.wait_for(lambda r: len(r.delivered) == 2)
    assert [d.event["text"] for d in rx.delivered] == ["Sí, a las 10", "Gracias"]
    assert len({d.headers["X-IVR-Delivery"] for d in rx.delivered}) == 2
    done = await engine.until(lambda ms: all(m["webhook"] == "delivered" for m in ms))
    assert [m["text"] for m in done] == ["Sí, a las 10", "Gracias"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_forged_or_unproven_message_is_refused_and_stores_nothing(engine, provider):
    if provider == "tw":
        report = engine.inbound(provider, CUSTOMER, "STOP")
        report.headers["X-Twilio-Signature"] = "bm90IGEgc2lnbmF0dXJlIGF0IGFsbA=="
        want = 403
    elif provider == "vg":
        report = engine.inbound(provider, CUSTOMER, "STOP")
        report.body = report.body.replace(b"STOP", b"STOp")  # the sig no longer fits
        want = 403
    else:  # Infobip and gateways are proven by the token in the URL
        report = engine.inbound(provider, CUSTOMER, "STOP",
                                token="not-the-token-00000000000000000000000")
        want = 401
    status, ctype, body = await engine.send(report)
    assert (status, ctype) == (want, "application/problem+json"), body
    assert await engine.search() == []
    assert await engine.store.sms.dnc_count() == 0
    assert await engine.store.sms_inbound.waiting() == 0


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_opt_out_keyword_lists_the_number_and_the_dialer_skips_it(engine, provider):
    accepted(provider, await engine.send(engine.inbound(provider, CUSTOMER, " baja, gracias")),
             stored=1)
    [msg] = await engine.search()
    assert (msg["stop_word"], msg["stop_language"]) == ("BAJA", "es")
    await engine.receiver.wait_for(lambda r: len(r.delivered) == 1)
    assert engine.receiver.delivered[0].event["stop"] == {"word": "BAJA", "language": "es"}
    assert await engine.store.sms.dnc_count() == 1

    upload = f"promo;{CUSTOMER};Oferta;1\npromo;{OTHER};Oferta;2\n".encode()
    r = await engine.client.post("/v1/sms/uploads", data=upload,
                                 headers={**AUTH, "Content-Type": "text/csv"})
    assert r.status == 200, await r.text()
    dialer = engine.tg.create_task(engine.svc.run_dialer("d"))
    try:
        async with asyncio.timeout(15):
            while True:
                r = await engine.client.get("/v1/sms/messages", headers=AUTH,
                                            params={"campaign": "promo"})
                rows = {m["destination"]: m["status"] for m in (await r.json())["messages"]}
                if set(rows.values()) <= {"sent", "blocked"} and len(rows) == 2:
                    break
                await asyncio.sleep(0.05)
    finally:
        dialer.cancel()
    assert rows == {CUSTOMER: "blocked", OTHER: "sent"}
    at_infobip = [d["to"] for s in engine.providers.requests if s.kind == "infobip"
                  for m in s.json["messages"] for d in m["destinations"]]
    assert at_infobip == [OTHER[1:]] or at_infobip == [OTHER]


async def test_a_receiver_down_loses_nothing_across_a_restart(engine):
    rx = engine.receiver
    rx.fail_status = 503
    accepted("ib", await engine.send(infobip_inbound(engine.url("ib"), [
        (CUSTOMER[1:], OURS["ib"][1:], "uno"), (OTHER[1:], OURS["ib"][1:], "dos")])),
        stored=2)
    await engine.until(lambda ms: ms[0]["webhook_attempts"] >= 3)  # retried
    engine.delivering.cancel()  # the engine stops while the receiver is down
    await asyncio.gather(engine.delivering, return_exceptions=True)
    pending = await engine.search()
    assert [(m["text"], m["webhook"]) for m in pending] == [("uno", "pending"),
                                                            ("dos", "pending")]
    assert pending[0]["webhook_error"] == "HTTP 503" and pending[1]["webhook_attempts"] == 0
    assert {a.event["text"] for a in rx.attempts} == {"uno"}  # in order: the first blocks

    rx.fail_status = None  # the receiver is back; a new engine delivers what was stored
    restarted = InboundDelivery(lambda: engine.cfg, engine.store.sms_inbound)
    task = engine.tg.create_task(restarted.run())
    try:
        await engine.until(lambda ms: [m["webhook"] for m in ms] == ["delivered", "delivered"])
    finally:
        task.cancel()
    assert [d.event["text"] for d in rx.delivered] == ["uno", "dos"]
    ids = {a.headers["X-IVR-Delivery"] for a in rx.attempts if a.event["text"] == "uno"}
    assert len(ids) == 1  # every attempt of one message carries one delivery id
    assert all(d.signed_with(HOOK_SECRET) for d in rx.delivered)


async def test_a_long_vonage_message_is_stored_whole_once(engine):
    def part(n: int, text: str, **kw):
        return vonage_inbound(engine.url("vg"), VONAGE_KEY, CUSTOMER[1:], OURS["vg"][1:],
                              text, secret=SIGNATURE_SECRET, part=("7f", 2, n),
                              message_id=f"0A0000000000000{n}", **kw)

    last = part(2, "de la tarde")
    accepted("vg", await engine.send(last), parts_waiting=1)
    accepted("vg", await engine.send(last), duplicates=1)  # Vonage retries a part
    accepted("vg", await engine.send(part(1, "Llego a las 5 ", get=True)), stored=1)
    accepted("vg", await engine.send(part(1, "Llego a las 5 ", as_json=True)), duplicates=1)
    [msg] = await engine.search()
    assert (msg["text"], msg["message_id"]) == ("Llego a las 5 de la tarde", "0A00000000000001")
    await engine.receiver.wait_for(lambda r: len(r.delivered) == 1)


async def test_the_csv_lists_what_came_in(engine):
    accepted("ib", await engine.send(infobip_inbound(engine.url("ib"), [
        (CUSTOMER[1:], OURS["ib"][1:], "=HYPERLINK(\"x\")"), (OTHER[1:], OURS["ib"][1:], "hola")])),
        stored=2)
    r = await engine.client.get("/v1/admin/sms/inbound.csv", headers=AUTH,
                                params={"number": CUSTOMER})
    text = (await r.read()).decode("utf-8")
    assert r.status == 200 and text.startswith("\ufeff")
    table = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline="")))
    assert [(row["sender"], row["text"]) for row in table] == [
        ("'" + CUSTOMER, "'=HYPERLINK(\"x\")")]
