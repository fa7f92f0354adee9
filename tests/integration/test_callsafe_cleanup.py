"""A phase that fails leaves nothing behind (issue 17), against the real engine and the real
sandbox Asterisk. The fault is a condition outside the engine: its SQLite file is locked by
another writer while the call needs it — reading an app's token (the token phase), recording
a callback (the IVR phase); the call's deadline on the database (2 s) ends the wait. After
it the caller is in the
dialplan fallback (no channel of the call left in the engine's Stasis application), and
once it hangs up its record says ``ended`` and the engine holds nothing of it
(``ivr_held``: sessions, routed channels, registration waits, live records all 0).

The ringing phase with an answered leg is tests/e2e/test_callsafe_ringing.py (baresip); the
bridged phase, which makes no request Asterisk could refuse, is covered at unit level
(tests/unit/test_callsafe_session.py), like every phase.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from .conftest import next_event, start_client, stop_client
from .engine_proc import local_call, start_engine
from .test_callsafe_records import _WriteLock, _held

pytestmark = pytest.mark.sandbox

CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "callsafe.yaml"
ADMIN = {"Authorization": "Bearer admin-secret-000000000000000000000000000"}


async def _token_phase(ari, a: str, b: str) -> None:
    await next_event(ari.events, "ChannelStateChange", timeout=10,
                     predicate=lambda e: e.channel_id == a and e.channel.state == "Up")
    await ari.send_dtmf(a, "123456#", between=80, duration=80)


async def _ivr_phase(ari, a: str, b: str) -> None:
    await next_event(ari.events, "PlaybackStarted", timeout=10,
                     predicate=lambda e: e.channel_id == b)
    await ari.send_dtmf(a, "7")  # callback:support: a row to write


@pytest.mark.parametrize("did,drive", [("+17145550300", _token_phase), ("300", _ivr_phase)],
                         ids=["token", "ivr"])
async def test_a_failing_phase_sends_the_caller_to_the_fallback_and_forgets_it(
        sandbox, tmp_path, did, drive):
    engine = await start_engine(sandbox, tmp_path, config=CONFIG)
    ari = await start_client(sandbox)
    try:
        async with aiohttp.ClientSession(base_url=engine.api_url) as http:
            with _WriteLock(engine.db_path):
                a, b = await local_call(ari, did, "fault")
                await drive(ari, a, b)
                await next_event(ari.events, "ChannelDialplan", timeout=20,
                                 predicate=lambda e: e.channel_id == b
                                 and e.dialplan_app == "Playback"
                                 and e.dialplan_app_data.startswith("pls-hold-while-try"))
            # the call's database wait ends by its deadline (engine.database, 2 s) before the
            # lock's busy timeout: the fallback either way, then nothing held. The engine logs
            # it right after Asterisk took the call back: the log line may trail the event
            deadline = time.monotonic() + 5
            while f"call {b} sent to the dialplan fallback" not in engine.log():
                assert time.monotonic() < deadline, engine.log()[-3000:]
                await asyncio.sleep(0.05)
            stasis = [c["id"] for c in await ari.list_channels()
                      if str((c.get("dialplan") or {}).get("app_data", "")).startswith(
                          "ivr-engine,") and (c.get("dialplan") or {}).get("app_name")
                      == "Stasis"]
            assert b not in stasis
            await ari.hangup(a)
            await next_event(ari.events, "ChannelDestroyed", timeout=10,
                             predicate=lambda e: e.channel_id == b)
            deadline = time.monotonic() + 10
            while any((held := await _held(http)).values()):
                assert time.monotonic() < deadline, held
                await asyncio.sleep(0.1)
            async with http.get(f"/v1/calls/{b}", headers=ADMIN) as r:
                if r.status == 200:  # the token phase fails before the call is routed
                    assert (await r.json())["state"] == "ended"
                else:
                    assert did != "300" and r.status == 404
    finally:
        await stop_client(ari)
        assert await engine.stop() == 0, engine.log()
