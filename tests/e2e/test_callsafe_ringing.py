"""A user's phone that answers when the bridge cannot be made is not left in Stasis (issue
17): the real engine, the real sandbox Asterisk and baresip registered as ``bob`` (a desk
phone, auto-answer). An Asterisk-side condition makes the ringing phase fail: a bridge named
``<call>-bridge`` already exists, so Asterisk answers the engine's bridge request 409 once
bob has answered. The call is then released: bob's leg is hung up (before: answered, in the
engine's Stasis application with nobody driving it), the caller goes to the dialplan
fallback, and once it hangs up the engine holds nothing of it (``ivr_held``).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from tests.integration.conftest import next_event, start_client, stop_client
from tests.integration.engine_proc import local_call, start_engine

from .baresip_ua import Baresip

pytestmark = [pytest.mark.sandbox, pytest.mark.e2e]

CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "callsafe.yaml"


async def _held(http: aiohttp.ClientSession) -> dict[str, float]:
    async with http.get("/metrics") as r:
        text = await r.text()
    return {line.split('"')[1]: float(line.split()[-1]) for line in text.splitlines()
            if line.startswith("ivr_held{")}


async def _online(ari, name: str) -> None:
    for _ in range(100):
        ep = await ari.get_endpoint("PJSIP", name)
        if ep and ep.get("state") == "online":
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} never registered")


async def test_an_answered_leg_whose_bridge_fails_is_hung_up(sandbox, tmp_path):
    engine = await start_engine(sandbox, tmp_path / "engine", config=CONFIG)
    bob = Baresip("bob", sandbox.sip_password, tmp_path)
    ari = await start_client(sandbox)
    bridge = None
    try:
        bob.start()
        await _online(ari, "bob")
        a, b = await local_call(ari, "300", "ring")
        leg = f"{b}-uc1"
        bridge = (await ari.create_bridge("mixing", bridge_id=f"{b}-bridge"))["id"]
        await next_event(ari.events, "PlaybackStarted", timeout=10,
                         predicate=lambda e: e.channel_id == b)
        await ari.send_dtmf(a, "4")  # user:bob: his desk phone rings and answers
        ev = await next_event(ari.events, "ChannelDialplan", timeout=20,
                              predicate=lambda e: e.channel_id == b
                              and e.dialplan_app == "Playback"
                              and e.dialplan_app_data.startswith("pls-hold-while-try"))
        assert ev is not None  # the caller is in the fallback
        log = engine.log()
        assert "Bridge with id" in log and f"call {b} failed" in log, log[-3000:]
        assert f"{leg}" in log  # bob's leg existed (it answered: the bridge was asked for)
        deadline = time.monotonic() + 10
        while await ari.get_channel(leg) is not None:
            assert time.monotonic() < deadline, "bob's answered leg was left in Stasis"
            await asyncio.sleep(0.05)
        in_app = [c["id"] for c in await ari.list_channels()
                  if (c.get("dialplan") or {}).get("app_name") == "Stasis"
                  and str((c.get("dialplan") or {}).get("app_data", "")).startswith("ivr-engine,")
                  and c["id"] in (b, leg)]
        assert in_app == []
        await ari.hangup(a)
        await next_event(ari.events, "ChannelDestroyed", timeout=10,
                         predicate=lambda e: e.channel_id == b)
        async with aiohttp.ClientSession(base_url=engine.api_url) as http:
            deadline = time.monotonic() + 10
            while any((held := await _held(http)).values()):
                assert time.monotonic() < deadline, held
                await asyncio.sleep(0.1)
    finally:
        if bridge is not None:
            try:
                await ari.destroy_bridge(bridge)
            except Exception:  # noqa: BLE001 - best effort
                pass
        await stop_client(ari)
        await bob.stop()
        assert await engine.stop() == 0, engine.log()
