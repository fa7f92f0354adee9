"""The engine process: config reload (good and bad), shutdown with callers in a menu,
a second engine taking over the ARI application."""

from __future__ import annotations

import asyncio
import signal

import pytest

from ivr_engine.testing.caller import CallerPool
from ivr_engine.testing.sipp import SippCaller

from .conftest import next_event, start_client, stop_client
from .engine_proc import FIXTURE, local_call, start_engine

pytestmark = pytest.mark.sandbox


async def _wait_log(engine, text: str, timeout: float = 5) -> None:
    for _ in range(int(timeout / 0.05)):
        if text in engine.log():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} not in engine log:\n{engine.log()}")


async def test_sighup_reload_bad_config_kept_good_config_applied(sandbox, tmp_path):
    cfg = tmp_path / "ivr.yaml"
    original = FIXTURE.read_text()
    cfg.write_text(original)
    engine = await start_engine(sandbox, tmp_path, config=cfg)
    try:
        async with CallerPool(sandbox.ari_url, sandbox.ari_username,
                              sandbox.ari_password) as pool:
            # a broken file is refused; the running config keeps serving calls
            cfg.write_text(original.replace("prompt: m-top", "prompt: no-such-message"))
            engine.proc.send_signal(signal.SIGHUP)
            await _wait_log(engine, "config reload rejected")
            assert "message 'no-such-message' is not defined" in engine.log()
            r = await pool.call(did="100", caller="+1555", keys=["2"], timeout=20)
            assert r["prompts"] == ["sound:digits/1"]
            assert r["destination"] == {"type": "queue", "target": "support"}
            # a good change applies to the next call
            cfg.write_text(original.replace("m-top: {en: digits/1, fr: digits/1}",
                                            "m-top: {en: digits/7}"))
            engine.proc.send_signal(signal.SIGHUP)
            await _wait_log(engine, "config reloaded")
            r = await pool.call(did="100", caller="+1555", keys=["2"], timeout=20)
            assert r["prompts"] == ["sound:digits/7"]
    finally:
        assert await engine.stop() == 0, engine.log()


async def test_shutdown_sends_callers_in_a_menu_to_the_fallback(sandbox, tmp_path):
    engine = await start_engine(sandbox, tmp_path)
    ari = await start_client(sandbox)
    try:
        a, b = await local_call(ari, "100", "shutdown")
        await next_event(ari.events, "ChannelVarset", timeout=10,
                         predicate=lambda e: e.variable == "IVR_AWAITING")
        assert await engine.stop() == 0
        ev = await next_event(ari.events, "ChannelDialplan", timeout=5,
                              predicate=lambda e: e.dialplan_app == "Queue")
        assert ev.dialplan_app_data.startswith("ivr-fallback")
        assert "sent to the dialplan fallback" in engine.log()
    finally:
        await engine.stop()
        await stop_client(ari)


async def test_second_engine_takes_the_app_and_the_first_exits(sandbox, tmp_path):
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    first = await start_engine(sandbox, tmp_path / "1")
    second = await start_engine(sandbox, tmp_path / "2")
    try:
        async with asyncio.timeout(10):
            code = await first.proc.wait()
        assert code == 1
        assert "another process took the ARI application 'ivr-engine'" in first.log()
    finally:
        await first.stop()
        assert await second.stop() == 0


async def test_a_stale_endpoint_subscription_on_the_calls_app_is_dropped(sandbox, tmp_path):
    """An engine before the fix subscribed its calls app to endpoint:PJSIP and, killed, left
    the subscription in Asterisk; an engine inheriting it would get every key twice."""
    stale = await start_client(sandbox, app="ivr-engine")
    await stale.subscribe("endpoint:PJSIP")
    await stale.subscribe("endpoint:PJSIP")  # counted: two to drop
    await stop_client(stale)  # gone without unsubscribing, like a killed process
    assert "PJSIP" in sandbox.cli("ari show app ivr-engine")
    engine = await start_engine(sandbox, tmp_path)
    try:
        assert "dropped a subscription endpoint:PJSIP" in engine.log()
        assert "PJSIP" not in sandbox.cli("ari show app ivr-engine")
        async with SippCaller(sandbox, tmp_path) as sipp:
            run = await sipp.call("100", "1 2 1")
        call = run.calls[0]
        assert call.keys == ["1", "2", "1"]
        assert call.destination == {"type": "queue", "target": "billing"}, call.path
    finally:
        assert await engine.stop() == 0, engine.log()
