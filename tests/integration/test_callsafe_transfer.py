"""A requester that gives up never breaks a call (issue 17): transfers racing a ringing that
takes ~6 s to stop, against the real engine, the real sandbox Asterisk (AMI configured) and a
local FCM server that answers every send after 2.9 s.

A caller waits for alice's phone app (pushed, not registered). Stopping that ringing waits
for the wake push still on its way (2.9 s), then sends the cancel push (2.9 s more): the
first transfer takes longer than the old 5 s limit. The old engine gave up at 5 s, redirected
the channel still in Stasis over AMI, and the session's late ``set_result`` on the cancelled
future broke the call. Now: the first transfer is carried out by the call and answered 202
``via: ivr`` when done; a second one, sent meanwhile and not picked up within 5 s, is withdrawn
and answered 503 ``reason: busy`` (nothing done); the caller ends in the first queue, never
in the second or the fallback, and nothing in the engine failed.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest

from tests.support.identity import open_session
from tests.support.push_servers import FakeFcm

from .conftest import next_event, start_client, stop_client
from .engine_proc import local_call, start_engine

pytestmark = pytest.mark.sandbox

CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "callsafe.yaml"
ADMIN = {"Authorization": "Bearer admin-secret-000000000000000000000000000"}
SHOP_KEY = "shop-key-0000000000000000000000000000000"
DELAY = 2.9  # the FCM server's answer time, for the wake and the cancel push alike


@pytest.fixture
async def fcm(tmp_path):
    server = FakeFcm(delay=DELAY)
    await server.start()
    (tmp_path / "fcm").mkdir()
    server.make_service_account(tmp_path / "fcm")
    yield server
    await server.stop()


@pytest.fixture
async def engine(sandbox, fcm, tmp_path):
    eng = await start_engine(sandbox, tmp_path / "engine", config=CONFIG, extra_env={
        "IVR_TEST_FCM_SA": str(fcm.account.path), "IVR_TEST_FCM_URL": fcm.url,
        "IVR_AMI_PASSWORD": sandbox.ami_password})
    async with aiohttp.ClientSession(base_url=eng.api_url) as http:
        session = await open_session(http, "", "shop", SHOP_KEY, "alice")
        async with http.post("/v1/devices", headers={"Authorization": f"Bearer {session}"},
                             json={"app": "shop", "user": "alice", "platform": "android",
                                   "push_token": "fcm-alice-" + "a" * 30}) as r:
            assert r.status == 201, await r.text()
    yield eng
    assert await eng.stop() == 0, eng.log()


async def _transfer(http: aiohttp.ClientSession, call: str, to: str) -> tuple[int, dict, float]:
    t0 = time.monotonic()
    async with http.post(f"/v1/calls/{call}/transfer", json={"to": to}, headers=ADMIN) as r:
        return r.status, json.loads(await r.text()), time.monotonic() - t0


async def test_a_transfer_slower_than_the_wait_is_carried_out_and_a_second_is_refused(
        sandbox, engine, fcm):
    ari = await start_client(sandbox)
    try:
        a, b = await local_call(ari, "300", "xfer")
        await next_event(ari.events, "PlaybackStarted", timeout=10,
                         predicate=lambda e: e.channel_id == b)
        await ari.send_dtmf(a, "3")  # user:alice, whose phone app sleeps: pushed
        deadline = time.monotonic() + 10
        while not any(m.data.get("call_id") == b for m in fcm.messages):
            assert time.monotonic() < deadline, "no wake push reached the FCM server"
            await asyncio.sleep(0.005)
        async with aiohttp.ClientSession(base_url=engine.api_url,
                                         timeout=aiohttp.ClientTimeout(total=30)) as http:
            first = asyncio.ensure_future(_transfer(http, b, "queue:support"))
            await asyncio.sleep(0.2)
            second = asyncio.ensure_future(_transfer(http, b, "queue:billing"))
            (s1, body1, t1), (s2, body2, t2) = await asyncio.gather(first, second)
        print(json.dumps({"first": [s1, body1, round(t1, 2)],
                          "second": [s2, body2, round(t2, 2)]}))
        assert (s1, body1.get("via")) == (202, "ivr"), body1
        assert t1 > 5.0, t1  # slower than the old limit: it really raced it
        assert (s2, body2.get("reason")) == (503, "busy"), body2
        assert 4.9 <= t2 < 6.0, t2
        ev = await next_event(ari.events, "ChannelDialplan", timeout=10,
                              predicate=lambda e: e.channel_id == b
                              and e.dialplan_app == "Queue")
        assert ev.dialplan_app_data.startswith("support"), ev.dialplan_app_data
        # the second transfer did nothing, the caller never went to the fallback
        await ari.hangup(a)
        await next_event(ari.events, "ChannelDestroyed", timeout=10,
                         predicate=lambda e: e.channel_id == b)
        seen = [(e.dialplan_app, e.dialplan_app_data) for e in ari.history
                if e.type == "ChannelDialplan" and e.channel_id == b]
        assert not any(d.startswith("billing") or d.startswith("ivr-fallback")
                       for _, d in seen), seen
        async with aiohttp.ClientSession(base_url=engine.api_url) as http:
            async with http.get(f"/v1/calls/{b}", headers=ADMIN) as r:
                info = await r.json()
        assert info["transfers"] == ["queue:support"], info
        log = engine.log()
        assert "InvalidStateError" not in log and f"call {b} failed" not in log, log[-3000:]
        assert "dialplan fallback" not in log, log[-3000:]
    finally:
        await stop_client(ari)
