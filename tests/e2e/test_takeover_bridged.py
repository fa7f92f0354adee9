"""A caller talking to a user's phone when the engine dies: the conversation goes on (Asterisk
keeps the bridge), and the engine that comes back watches the pair again, so when one side
hangs up the other is hung up too (nobody is left alone in a bridge)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.integration.conftest import next_event, start_client, stop_client
from tests.integration.engine_proc import local_call, start_engine

from .baresip_ua import Baresip
from .test_wakeup import _bridge_channels, _wait_offline, _wait_online

pytestmark = [pytest.mark.sandbox, pytest.mark.e2e]

CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "wakeup.yaml"


async def test_bridged_call_survives_the_crash_and_is_watched_again(sandbox, tmp_path):
    first = await start_engine(sandbox, tmp_path / "first", config=CONFIG)
    second = None
    ari = await start_client(sandbox)
    alice = Baresip("alice", sandbox.sip_password, tmp_path)  # registered: rung at once
    alice.start()
    try:
        await _wait_online(ari, "alice")
        a, b = await local_call(ari, "200", "bridged")
        await next_event(ari.events, "ChannelVarset", timeout=10,
                         predicate=lambda e: e.variable == "IVR_AWAITING")
        await ari.send_dtmf(a, "1")  # user:alice
        channels = await _bridge_channels(ari, f"{b}-bridge", 2, timeout=10)
        leg = next(c for c in channels if c != b)
        first.proc.kill()
        await first.proc.wait()
        await asyncio.sleep(1.0)
        assert await _bridge_channels(ari, f"{b}-bridge", 2, timeout=1)  # still talking
        second = await start_engine(sandbox, tmp_path / "second", config=CONFIG)
        assert "(1 calls taken back)" in second.log()
        assert f"call {b} taken over: bridged with {leg}" in second.log()
        await ari.hangup(a)  # the caller hangs up: the phone's leg must go too
        for _ in range(40):
            if not any(c["id"] == leg for c in await ari.list_channels()):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"{leg} still up after the caller left:\n{second.log()}")
    finally:
        await alice.stop()
        await first.stop()
        if second is not None:
            assert await second.stop() == 0, second.log()
        try:
            await _wait_offline(ari, "alice")
        finally:
            await stop_client(ari)
