"""Push-then-wait end to end: the real engine, the real sandbox Asterisk, real baresip UAs
and a local FCM server speaking FCM HTTP v1 (with its OAuth2 token endpoint). When the push
arrives, the test starts a baresip that REGISTERs as the user's app and auto-answers."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import aiohttp
import pytest

from tests.integration.conftest import next_event
from tests.integration.engine_proc import local_call
from tests.support.identity import open_session
from tests.support.push_servers import FakeFcm

from .baresip_ua import Baresip
from .conftest import fcm_engine, hang_up

pytestmark = [pytest.mark.sandbox, pytest.mark.e2e]

CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "wakeup.yaml"
TOKENS = {"alice": "fcm-alice-" + "a" * 30, "bob": "fcm-bob-" + "b" * 30}
APP_KEY = "mobileapp-key-00000000000000000000000000"  # the app's api_key (fixtures/wakeup.yaml)


async def register_device(api_url: str, user: str, **device: str) -> None:
    """The user's phone app logs in (an assertion from the app's backend) and registers its
    push token with its session, as the SDK does."""
    async with aiohttp.ClientSession() as http:
        session = await open_session(http, api_url, "mobileapp", APP_KEY, user)
        async with http.post(f"{api_url}/v1/devices", json={"platform": "android", **device},
                             headers={"Authorization": f"Bearer {session}"}) as r:
            assert r.status == 201, await r.text()
BUDGET = 4.0  # mobile_loops 2 × interval 2 s (tests/fixtures/wakeup.yaml)


@pytest.fixture(scope="module")
async def engine(sandbox, fcm, tmp_path_factory):
    async with fcm_engine(sandbox, fcm, tmp_path_factory.mktemp("wake"), CONFIG) as eng:
        for user, token in TOKENS.items():
            await register_device(eng.api_url, user, push_token=token, app_version="1.2.3",
                                  model="Pixel")
        yield eng


async def _endpoint_state(ari, name: str) -> str | None:
    ep = await ari.get_endpoint("PJSIP", name)
    return ep.get("state") if ep else None


async def _wait_online(ari, name: str) -> None:
    for _ in range(100):
        if await _endpoint_state(ari, name) == "online":
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} never registered")


async def _wait_offline(ari, name: str) -> None:
    for _ in range(100):
        if await _endpoint_state(ari, name) != "online":
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} still registered")


async def _bridge_channels(ari, bridge_id: str, count: int, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await ari.request("GET", "/bridges")
        for b in got or []:
            if b["id"] == bridge_id and len(b["channels"]) >= count:
                return b["channels"]
        await asyncio.sleep(0.05)
    raise AssertionError(f"bridge {bridge_id} never had {count} channels")


async def _press_in_menu(ari, did: str, key: str, prefix: str) -> tuple[str, str]:
    a, b = await local_call(ari, did, prefix)
    await next_event(ari.events, "ChannelVarset", timeout=10,
                     predicate=lambda e: e.variable == "IVR_AWAITING")
    await ari.send_dtmf(a, key)
    return a, b


def _messages_for(fcm: FakeFcm, call_id: str, kind: str) -> list:
    return [m for m in fcm.messages if m.data.get("call_id") == call_id
            and m.data.get("type") == kind]


async def _wait_message(fcm: FakeFcm, call_id: str, kind: str, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _messages_for(fcm, call_id, kind)
        if found:
            return found[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {kind} push for {call_id}; got {[m.data for m in fcm.messages]}")


# ---------------------------------------------------------------------------- scenarios


async def test_push_wakes_the_app_which_registers_and_is_rung_at_once(ari, fcm, engine,
                                                                      sandbox, tmp_path):
    alice = Baresip("alice", sandbox.sip_password, tmp_path)
    started = asyncio.Event()

    def on_message(msg) -> None:  # the "phone": wakes 0.5 s after the push
        if msg.data.get("type") == "incoming_call" and msg.token == TOKENS["alice"]:
            asyncio.get_running_loop().call_later(0.5, alice.start)
            started.set()

    fcm.on_message = on_message
    try:
        await _wait_offline(ari, "alice")  # the phone app sleeps
        a, b = await _press_in_menu(ari, "200", "1", "wake")
        wake = await _wait_message(fcm, b, "incoming_call")
        assert wake.token == TOKENS["alice"]
        assert wake.message["android"] == {"priority": "HIGH", "ttl": "4s"}  # TTL = the wait
        assert wake.data["ring_timeout"] == "10" and wake.data["caller_number"] == ""
        # the caller heard the wake-up message first (then music on hold)
        await next_event(ari.events, "PlaybackStarted", timeout=5,
                         predicate=lambda e: e.playback.media_uri == "sound:digits/5")
        channels = await _bridge_channels(ari, f"{b}-bridge", 2, timeout=10)
        assert b in channels
        assert any(c.startswith(f"{b}-mobile") for c in channels)
        assert _messages_for(fcm, b, "cancel_call") == []  # answered by the woken phone
        assert "registered, dialled in" in engine.log()
        await hang_up(ari, a, b)
    finally:
        fcm.on_message = None
        await alice.stop()
    await _wait_offline(ari, "alice")


async def test_already_registered_is_rung_without_push(ari, fcm, engine, sandbox, tmp_path):
    alice = Baresip("alice", sandbox.sip_password, tmp_path)
    alice.start()
    try:
        await _wait_online(ari, "alice")
        a, b = await _press_in_menu(ari, "200", "1", "reg")
        await _bridge_channels(ari, f"{b}-bridge", 2, timeout=10)
        assert _messages_for(fcm, b, "incoming_call") == []
        await ari.hangup(a)
    finally:
        await alice.stop()
    await _wait_offline(ari, "alice")


async def test_never_wakes_goes_to_no_answer_on_time_and_cancels(ari, fcm, engine):
    a, b = await _press_in_menu(ari, "200", "1", "nowake")
    t0 = time.monotonic()
    await _wait_message(fcm, b, "incoming_call")
    ev = await next_event(ari.events, "PlaybackStarted", timeout=BUDGET + 3,
                          predicate=lambda e: e.playback.media_uri == "sound:digits/9")
    waited = time.monotonic() - t0
    assert BUDGET - 0.3 <= waited <= BUDGET + 1.0, waited
    await _wait_message(fcm, b, "cancel_call")  # the phone that never woke stops ringing
    await next_event(ari.events, "ChannelDestroyed", timeout=5,
                     predicate=lambda e: e.channel_id == b)
    assert ev is not None


async def test_uc_and_mobile_first_answer_wins(ari, fcm, engine, sandbox, tmp_path):
    desk = Baresip("bob", sandbox.sip_password, tmp_path, answer="manual")  # rings, no answer
    phone = Baresip("carol", sandbox.sip_password, tmp_path)  # the woken app answers
    desk.start()

    def on_message(msg) -> None:
        if msg.data.get("type") == "incoming_call" and msg.token == TOKENS["bob"]:
            asyncio.get_running_loop().call_later(0.3, phone.start)

    fcm.on_message = on_message
    try:
        await _wait_offline(ari, "carol")  # the phone app sleeps
        await _wait_online(ari, "bob")
        a, b = await _press_in_menu(ari, "200", "2", "ucm")
        # the desk rings at once, the push goes out at the same time
        await _wait_message(fcm, b, "incoming_call")
        channels = await _bridge_channels(ari, f"{b}-bridge", 2, timeout=10)
        assert any(c.startswith(f"{b}-mobile") for c in channels)
        # the desk leg was hung up when the phone answered
        live = [c["id"] for c in await ari.list_channels()]
        assert not any(c.startswith(f"{b}-uc") for c in live), live
        await ari.hangup(a)
    finally:
        fcm.on_message = None
        await desk.stop()
        await phone.stop()
    await _wait_offline(ari, "carol")
    await _wait_offline(ari, "bob")


async def test_caller_hangs_up_mid_wait_cancel_sent_nothing_left(ari, fcm, engine):
    a, b = await _press_in_menu(ari, "200", "1", "hup")
    await _wait_message(fcm, b, "incoming_call")
    await ari.hangup(a)
    cancel = await _wait_message(fcm, b, "cancel_call", timeout=4)
    assert cancel.token == TOKENS["alice"]
    await asyncio.sleep(BUDGET + 0.5)  # past the wait budget: a leaked waiter would act now
    log = engine.log()
    assert "Traceback" not in log
    assert f"call {b}" in log
    live = [c["id"] for c in await ari.list_channels()]
    assert not any(c.startswith(b) for c in live), live
    assert f"-> {b}" not in log  # no leg was ever created


async def test_unregistered_token_is_removed(ari, fcm, engine):
    fcm.unregistered.add(TOKENS["alice"])
    try:
        a, b = await _press_in_menu(ari, "200", "1", "dead")
        await next_event(ari.events, "PlaybackStarted", timeout=BUDGET + 3,
                         predicate=lambda e: e.playback.media_uri == "sound:digits/9")
        rows = sqlite3.connect(engine.db_path).execute(
            "select user, push_token from devices where user = 'alice'").fetchall()
        assert rows == []
    finally:
        fcm.unregistered.discard(TOKENS["alice"])
    # the app registers again with a fresh token
    await register_device(engine.api_url, "alice", push_token=TOKENS["alice"])


async def test_rfc8599_push_params_in_a_register_become_the_users_device(ari, engine,
                                                                         sandbox):
    from tests.support.sip_register import register

    token = "rfc8599-" + "c" * 40
    params = f"pn-provider=fcm;pn-prid={token};pn-param=ivr-test"
    assert await register("carol", sandbox.sip_password, params) == 200
    try:
        for _ in range(100):
            rows = sqlite3.connect(engine.db_path).execute(
                "select user, platform, push_token, source from devices "
                "where user = 'bob'").fetchall()
            if rows and rows[0][2] == token:
                break
            await asyncio.sleep(0.05)
        assert rows == [("bob", "android", token, "rfc8599")]  # carol is bob's mobile
    finally:
        assert await register("carol", sandbox.sip_password, params, expires=0) == 200
        await register_device(engine.api_url, "bob", push_token=TOKENS["bob"])


async def test_uc_keeps_ringing_alone_after_the_wait_then_no_answer(ari, fcm, engine, sandbox,
                                                                    tmp_path):
    desk = Baresip("bob", sandbox.sip_password, tmp_path, answer="manual")  # never answers
    desk.start()
    try:
        await _wait_offline(ari, "carol")  # the phone never wakes
        await _wait_online(ari, "bob")
        a, b = await _press_in_menu(ari, "200", "2", "ucalone")
        t0 = time.monotonic()
        await _wait_message(fcm, b, "incoming_call")
        # the wait budget ends: the phone is told to stop, the desk keeps ringing
        await _wait_message(fcm, b, "cancel_call", timeout=BUDGET + 2)
        assert any(c["id"].startswith(f"{b}-uc") for c in await ari.list_channels())
        # the desk rings for ring_seconds (10 s), then the caller reaches no_answer
        await next_event(ari.events, "PlaybackStarted", timeout=15,
                         predicate=lambda e: e.playback.media_uri == "sound:digits/9")
        assert 9.0 <= time.monotonic() - t0 <= 13.0
        await next_event(ari.events, "ChannelDestroyed", timeout=5,
                         predicate=lambda e: e.channel_id == b)
        assert "Traceback" not in engine.log()
    finally:
        await desk.stop()
    await _wait_offline(ari, "bob")
