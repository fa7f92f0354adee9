"""The dialers inside `ivr-engine run` (sms.in_engine): SendSMS over the engine's API wakes
the in-engine single lane at once, and an uploaded campaign is sent by the in-engine dialer.
Needs the sandbox Asterisk (the engine connects to it): run under the sandbox lock."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.integration.engine_proc import FIXTURE, start_engine
from tests.integration.test_api_contract import live_sandbox  # noqa: F401 - the fixture
from tests.support.sms_providers import INFOBIP_KEY, LocalProviders, start

pytestmark = pytest.mark.sandbox

ARI_APP = "ivr-sms-test"
TOKEN = "sms-engine-admin-0000000000000000000000"


async def test_dialers_inside_the_engine(live_sandbox, tmp_path):  # noqa: F811
    providers = LocalProviders()
    runner, url = await start(providers)
    text = FIXTURE.read_text().replace("  api:\n", f"  api:\n    admin_token: {TOKEN}\n", 1)
    text += f"""
sms:
  default_region: UY
  in_engine: true
  poll_seconds: 5                    # the API's wake-up, not the poll, must carry it
  providers:
    - {{name: infobip, type: infobip, url: "{url}", password: {INFOBIP_KEY}}}
  dialers:
    bulk: {{}}
  campaigns:
    promo: {{dialer: bulk}}
"""
    config = tmp_path / "engine-sms.yaml"
    config.write_text(text)
    eng = await start_engine(live_sandbox, tmp_path, config=config,
                             extra_env={"IVR_TEST_APP": ARI_APP})
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with aiohttp.ClientSession() as http:
            await asyncio.sleep(0.3)  # the lane's first poll is behind it
            t0 = time.monotonic()
            async with http.post(f"{eng.api_url}/v1/sms", headers=auth, json={
                    "destination": "099635199", "message": "hi", "wait_seconds": 4}) as r:
                body = await r.json()
            took = time.monotonic() - t0
            assert r.status == 200 and body["status"] == "sent", body
            assert took < 1.0, took  # woken, not polled (the poll is every 5 s)
            csv = "".join(f"promo;0996{i:05d};Hello {i};9999\n" for i in range(200))
            async with http.post(f"{eng.api_url}/v1/sms/uploads", data=csv.encode(),
                                 headers={**auth, "Content-Type": "text/csv"}) as r:
                assert (r.status, await r.json()) == (200, {"imported": 200})
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # the outcomes recorded, not only sent
                async with http.get(f"{eng.api_url}/v1/sms/monitor", headers=auth) as r:
                    mon = await r.json()
                promo = next(c for c in mon["campaigns"] if c["campaign"] == "promo")
                if promo["processed"] == 200:
                    break
                await asyncio.sleep(0.1)
            async with http.get(f"{eng.api_url}/metrics") as r:
                metrics = await r.text()
        assert 'ivr_sms_messages_total{lane="single",outcome="sent",provider="infobip"} 1.0' \
            in metrics
        assert 'ivr_sms_messages_total{lane="bulk",outcome="sent",provider="infobip"} 200.0' \
            in metrics
        assert 'ivr_sms_segments_total{provider="infobip"} 201.0' in metrics
        assert providers.summary() == {"accepted": 201, "distinct": 201, "duplicates": 0}
        assert promo["processed"] == 200
    finally:
        await eng.stop()
        await runner.cleanup()
