"""A mobile app's PSTN fallback with real SIP callers (SIPp on the carrier trunk): the phone
dials the app's number and sends ``<token>#`` as RFC 4733 keys once answered, like the
``+17144505656,,482913#`` dial string the SDK gets.

A Local-channel caller could not show it, but a PJSIP caller's keys once reached the engine
twice, so a valid token (``482913#`` arriving as ``448822991133##``) was always refused."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from .engine_proc import start_engine

pytestmark = pytest.mark.sandbox

APPS = Path(__file__).resolve().parents[1] / "fixtures" / "apps.yaml"
KEY = {"Authorization": "Bearer customer-key-000000000000000000000000000"}
NUMBER = "+17144505656"
BLOCKED = "message-then-hangup:outside-blocked"


@pytest.fixture(scope="module")
async def engine(sandbox, tmp_path_factory):
    eng = await start_engine(sandbox, tmp_path_factory.mktemp("sip-apps"), config=APPS)
    yield eng
    assert await eng.stop() == 0, eng.log()


async def token(engine, **body) -> str:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{engine.api_url}/v1/apps/customer/calls", headers=KEY,
                             json={"connectivity": 0.1, **body}) as r:
            plan = await r.json()
            assert r.status == 201, plan
    assert plan["mode"] == "pstn" and plan["dial"].startswith(NUMBER)
    return plan["token"]


def post_dial(digits: str, then: str = "", then_at: int = 3500) -> list:
    """The phone's post-dial DTMF right after the answer, then menu keys."""
    from ivr_engine.testing.rtp_pcap import Key, keys_at
    keys = keys_at(digits, 400, 220, duration_ms=100)
    return keys + [Key(k, then_at + i * 700) for i, k in enumerate(then.split())]


async def test_valid_token_lands_in_the_apps_menu_with_its_data(engine, sipp):
    t = await token(engine, language="en", custom_data={"order": "A-42"})
    run = await sipp.call(NUMBER, post_dial(t + "#", then="2 1"))
    call = run.calls[0]
    assert run.returncode == 0, run.output
    assert call.keys == list(t + "#") + ["2", "1"]  # each key decoded once
    assert call.variables.get("IVR_APP") == "customer"
    assert call.variables.get("IVR_DATA_order") == "A-42"
    assert call.path == ["cust", "cust-sub"]
    assert call.destination == {"type": "queue", "target": "billing"}, call.dialplan


async def test_wrong_token_blocked_caller_hears_the_message_then_asterisk_hangs_up(sipp):
    run = await sipp.call(NUMBER, post_dial("123450#"), hold_ms=20000)
    call = run.calls[0]
    assert run.returncode == 0, run.output
    assert call.variables.get("IVR_DESTINATION") == BLOCKED
    assert call.prompts == ["sound:ss-noservice"]
    assert call.ended and "Queue" not in call.apps


async def test_no_token_at_all_is_an_outside_caller(sipp):
    run = await sipp.call(NUMBER, "", hold_ms=12000)
    call = run.calls[0]
    assert call.variables.get("IVR_DESTINATION") == BLOCKED
    assert call.prompts == ["sound:ss-noservice"]


async def test_guessing_limit_per_caller_costs_its_owner_only_short_tokens(engine, sipp):
    """A number past its wrong tries (2 in this fixture): its short tokens are not looked up
    (even a right one), but the next plan made for that number is a long token, which is —
    a spoofed number cannot lock its owner out."""
    caller = "+15557770001"
    early = await token(engine, caller=caller)  # a short token from before
    for wrong in ("111111#", "222222#"):
        await sipp.call(NUMBER, post_dial(wrong), hold_ms=2500, caller=caller)
    run = await sipp.call(NUMBER, post_dial(early + "#", then="1"), hold_ms=6000,
                          caller=caller)
    call = run.calls[0]
    assert call.variables.get("IVR_DESTINATION") == BLOCKED, call.variables
    assert "token not looked up: 2 tries from +15557770001" in engine.log()
    late = await token(engine, caller=caller)
    assert len(late) == len(early) + 4  # hardened for this number
    run = await sipp.call(NUMBER, post_dial(late + "#", then="1"), caller=caller)
    assert run.calls[0].destination == {"type": "queue", "target": "sales"}
    # another number with a fresh, short token still gets in
    t = await token(engine)
    assert len(t) == len(early)
    run = await sipp.call(NUMBER, post_dial(t + "#", then="1"))
    assert run.calls[0].destination == {"type": "queue", "target": "sales"}
