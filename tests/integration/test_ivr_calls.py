"""Scripted PSTN calls through the real sandbox Asterisk and the real engine process.

Each call is a Local channel into ``from-pstn``; what we assert is what Asterisk really did:
the media it started playing on the engine's channel and the dialplan application the channel
really reached (Queue, VoiceMail, ...). Every scenario is also walked offline with
``simulate`` and both must agree.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3

import pytest

from ivr_engine.config import load_config
from ivr_engine.ivr.simulate import parse_dtmf, simulate
from ivr_engine.routing.entry import route_pstn

from .conftest import next_event, start_client, stop_client
from .engine_proc import FIXTURE, local_call, start_engine

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
async def engine(sandbox, tmp_path_factory):
    eng = await start_engine(sandbox, tmp_path_factory.mktemp("engine"))
    yield eng
    code = await eng.stop()
    assert code == 0, eng.log()


def offline(did: str, keys: str) -> dict:
    cfg = load_config(FIXTURE, {})
    d = route_pstn(cfg.routing, did, "+15551112222")
    return simulate(cfg.tree, d, caller="+15551112222", keys=parse_dtmf(keys),
                    at=dt.datetime.now(dt.timezone.utc))


SCENARIOS = [
    # did, keys, expected destination
    ("100", "1 1 1", {"type": "queue", "target": "sales"}),              # 3 levels to a queue
    ("+15550001000", "2", {"type": "queue", "target": "support"}),
    ("100", "3", {"type": "voicemail", "target": "1000@default"}),
    ("100", "9", {"type": "message-then-hangup", "target": "bye"}),
    ("100", "t t", {"type": "message-then-hangup", "target": "bye"}),    # timeouts exhausted
    ("100", "8 8", {"type": "message-then-hangup", "target": "bye"}),    # invalid exhausted
    ("100", "8 t 2", {"type": "queue", "target": "support"}),             # separate counters
    ("100", "0", {"type": "queue", "target": "operator"}),                # dial0 queue:
    ("100", "1 0 2", {"type": "queue", "target": "support"}),             # dial0 parent
    ("100", "1 1 0 2", {"type": "queue", "target": "support"}),           # dial0 top
    ("100", "1 2 0 1", {"type": "queue", "target": "billing"}),           # dial0 stay
    ("100", "1 3 0 1", {"type": "queue", "target": "billing"}),           # dial0 disabled
    ("100", "1 * #", {"type": "caller-hangup", "target": None}),          # * back, # repeat
    ("100", "5", {"type": "voicemail", "target": "2000@default"}),        # after hours
    ("+15550009999", "", {"type": "message-then-hangup", "target": "bye"}),  # unknown DID
    ("+33100000200", "1", {"type": "queue", "target": "support"}),
]


@pytest.mark.parametrize("did, keys, dest", SCENARIOS, ids=[f"{d}:{k or '-'}" for d, k, _ in SCENARIOS])
async def test_live_call_matches_simulate(caller, did, keys, dest):
    live = await caller.call(did=did, caller="+15551112222", keys=parse_dtmf(keys), timeout=30)
    sim = offline(did, keys)
    assert live["destination"] == dest, live
    assert sim["destination"] == dest
    assert live["prompts"] == sim["prompts"], (live, sim)
    assert live["path"] == sim["path"]
    assert not live["fallback"]


async def test_language_and_handoff_variables_reach_the_dialplan(sandbox, engine):
    """The channel that reaches app_queue carries IVR_* variables and its language."""
    ari = await start_client(sandbox)
    try:
        a, b = await local_call(ari, "+33100000200", "lang")
        await next_event(ari.events, "ChannelVarset", timeout=10,
                         predicate=lambda e: e.variable == "IVR_AWAITING")
        await ari.send_dtmf(a, "1")
        ev = await next_event(ari.events, "ChannelDialplan", timeout=10,
                              predicate=lambda e: e.dialplan_app == "Queue")
        assert ev.dialplan_app_data.startswith("support")
        assert await ari.get_variable(b, "IVR_LANGUAGE") == "fr"
        assert await ari.get_variable(b, "CHANNEL(language)") == "fr"
        assert await ari.get_variable(b, "IVR_PATH") == "direct"
        assert await ari.get_variable(b, "IVR_ENTRY") == "did:+33100000200"
    finally:
        await ari.hangup(a)
        await stop_client(ari)


async def test_callback_is_recorded(caller, engine):
    live = await caller.call(did="100", caller="+15557654321", keys=["4"], timeout=30)
    assert live["destination"] == {"type": "callback", "target": "support"}
    assert live["prompts"][-2:] == ["sound:beep", "sound:digits/9"]
    rows = sqlite3.connect(engine.db_path).execute(
        "select caller, queue, path, status from callback_requests").fetchall()
    assert ("+15557654321", "support", "top", "requested") in rows


async def test_barge_in_stops_the_prompt(sandbox, engine):
    """A key pressed during the prompt stops it at once and the next menu starts."""
    ari = await start_client(sandbox)
    try:
        a, b = await local_call(ari, "100", "barge")
        first = await next_event(ari.events, "PlaybackStarted", timeout=10)
        assert first.playback.media_uri == "sound:digits/1"
        await ari.send_dtmf(a, "1")
        done = await next_event(ari.events, "PlaybackFinished", timeout=5,
                                predicate=lambda e: e.playback.id == first.playback.id)
        nxt = await next_event(ari.events, "PlaybackStarted", timeout=5)
        assert nxt.playback.media_uri == "sound:digits/2"
        # no IVR_AWAITING was published for the top menu: the prompt never finished
        assert done.playback.state in ("done", "cancelled", "stopped", "failed")
    finally:
        await ari.hangup(a)
        await stop_client(ari)


async def test_caller_hangup_mid_menu_ends_the_call_cleanly(sandbox, engine):
    ari = await start_client(sandbox)
    try:
        a, b = await local_call(ari, "100", "hup")
        await next_event(ari.events, "ChannelVarset", timeout=10,
                         predicate=lambda e: e.variable == "IVR_AWAITING")
        await ari.hangup(a)
        await next_event(ari.events, "ChannelDestroyed", timeout=5,
                         predicate=lambda e: e.channel_id == b)
        await asyncio.sleep(1.5)  # longer than the menu timeout: a leaked timer would act now
        assert f"call {b} left the engine" in engine.log()
        assert "Traceback" not in engine.log()
        channels = [c["id"] for c in await ari.list_channels()]
        assert b not in channels
    finally:
        await stop_client(ari)
