"""Signed delivery reports end to end, in process (no Asterisk): SendSMS through the single
lane to the local Twilio and Vonage, which accept the message and post its delivery report to
the callback URL the engine gave them — signed as they sign, for the engine's public base
behind a reverse proxy — and the engine records the delivery; a report with a forged
signature is refused 403 and changes nothing."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient

from ivr_engine.config import parse_config
from ivr_engine.repositories import Store
from ivr_engine.server import ApiParts, build_app
from ivr_engine.sms.dialer import SmsService
from tests.support.api_server import ApiTestServer
from tests.support.sms_providers import (
    TWILIO_TOKEN,
    VONAGE_KEY,
    LocalProviders,
    signed_providers_yaml,
    start,
)
from tests.support.sms_reports import Reporter

ADMIN = "signed-reports-admin-000000000000000000000"
PUBLIC = "https://ivr.example/engine"
SIGNATURE_SECRET = "vonage-signature-secret-000000000000000000"


def config_text(url: str, vonage_method: str) -> str:
    return f"""
engine:
  ari: {{password: unused}}
  api: {{admin_token: {ADMIN}}}
sms:
  default_region: UY
  providers:
{signed_providers_yaml(url, PUBLIC, tw_sender="+15005550006",
                       tw_token="tw-report-token-000000000000000000000",
                       vg_token="vg-report-token-000000000000000000000",
                       vg_secret=SIGNATURE_SECRET,
                       vg_extra=f", signature_method: {vonage_method}")}"""


@pytest.fixture(params=["sha256", "md5hash", "jwt"])
async def engine(request, db_url):
    reporter = Reporter(twilio_token=TWILIO_TOKEN, vonage_key=VONAGE_KEY,
                        vonage_secret=SIGNATURE_SECRET, vonage_method=request.param,
                        vonage_json=request.param == "jwt")
    providers = LocalProviders(reporter=reporter)
    runner, url = await start(providers)
    cfg = parse_config(config_text(url, request.param), "signed.yaml",
                       {"IVR_DATABASE_URL": db_url})
    store = await Store.open(db_url)
    async with SmsService(lambda: cfg, store.sms, worker="signed-test") as svc, \
            asyncio.TaskGroup() as tg:
        lane = tg.create_task(svc.run_single())
        client = TestClient(ApiTestServer(build_app(ApiParts(config=lambda: cfg, store=store,
                                                             sms=svc))))
        await client.start_server()
        reporter.via[PUBLIC] = str(client.make_url("")).rstrip("/")
        try:
            yield client, reporter
        finally:
            await client.close()
            lane.cancel()
    await store.close()
    await runner.cleanup()


async def send(client, provider: str) -> dict:
    r = await client.post("/v1/sms", headers={"Authorization": f"Bearer {ADMIN}"}, json={
        "destination": "+59899635199", "message": "hola", "provider": provider,
        "wait_seconds": 5})
    body = await r.json()
    assert r.status == 200 and body["status"] == "sent", body
    return body


async def delivery_status(client, sms_id: int) -> str | None:
    r = await client.get(f"/v1/sms/messages/{sms_id}",
                         headers={"Authorization": f"Bearer {ADMIN}"})
    return (await r.json())["delivery_status"]


@pytest.mark.parametrize("provider", ["tw", "vg"])
async def test_signed_reports_through_a_proxy_are_recorded(engine, provider):
    client, reporter = engine
    sent = await send(client, provider)
    assert len(reporter.pending) == 1 and reporter.pending[0].url.startswith(PUBLIC)
    assert await reporter.deliver() == [(200, {"updated": 1})]
    assert await delivery_status(client, sent["id"]) == "delivered"


@pytest.mark.parametrize("provider", ["tw", "vg"])
async def test_forged_reports_are_refused_and_change_nothing(engine, provider):
    client, reporter = engine
    sent = await send(client, provider)
    forged = reporter.pending[0]
    if provider == "tw":
        forged.headers["X-Twilio-Signature"] = "bm90IGEgc2lnbmF0dXJlIGF0IGFsbA=="
    elif "Authorization" in forged.headers:
        forged.headers["Authorization"] = forged.headers["Authorization"][:-4] + "AAAA"
    else:
        forged.body = forged.body.replace(b"delivered", b"failed")  # the sig no longer fits
    [(status, doc)] = await reporter.deliver()
    assert status == 403 and doc["title"] == "Forbidden", doc
    assert await delivery_status(client, sent["id"]) is None
