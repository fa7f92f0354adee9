"""Real PSTN callers: SIPp on the carrier trunk, RTP with RFC 4733 keys, through the real
Asterisk and the real engine process.

Local-channel callers once hid that every key from a PJSIP caller reached the engine twice
(the engine's application was subscribed to ``endpoint:PJSIP`` for registrations, and
Asterisk repeats an endpoint's channel events to it). Here every flow a caller uses is walked
by an external SIP client; what is asserted is what Asterisk did: the keys it decoded, the
prompts it started, the dialplan application the call reached.
"""

from __future__ import annotations

import pytest

from ivr_engine.testing.rtp_pcap import Key

from .engine_proc import start_engine

pytestmark = pytest.mark.sandbox

QUEUE = "Queue"


@pytest.fixture(scope="module")
async def engine(sandbox, tmp_path_factory):
    eng = await start_engine(sandbox, tmp_path_factory.mktemp("sip-engine"))
    yield eng
    assert await eng.stop() == 0, eng.log()


def only(run):
    assert run.returncode == 0, run.output
    assert len(run.calls) == 1
    return run.calls[0]


async def test_three_level_walk_each_key_once(sipp):
    call = only(await sipp.call("100", "1 1 1"))
    assert call.keys == ["1", "1", "1"]  # what Asterisk decoded from the RTP
    assert call.destination == {"type": "queue", "target": "sales"}, call.dialplan
    assert call.path == ["top", "a", "b"]
    assert call.prompts[:3] == ["sound:digits/1", "sound:digits/2", "sound:digits/3"]
    assert call.variables["IVR_ENTRY"] == "did:100"


async def test_star_goes_back_and_hash_repeats(sipp):
    call = only(await sipp.call("100", "1 * # 2"))
    assert call.destination == {"type": "queue", "target": "support"}, call.dialplan
    assert call.path == ["top", "a", "top"]
    assert call.prompts == ["sound:digits/1", "sound:digits/2", "sound:digits/1",
                            "sound:digits/1"]


async def test_invalid_key_then_timeout_then_choice(sipp):
    # top waits 1 s after each prompt; 2 timeouts or 2 invalid keys exhaust it. "8" is
    # invalid (beep + prompt), then silence until the first timeout (digits/0 + prompt),
    # then "2" during that prompt (before the second timeout).
    call = only(await sipp.call("100", [Key("8", 1500), Key("2", 5000)]))
    assert call.keys == ["8", "2"]
    assert call.destination == {"type": "queue", "target": "support"}, call.dialplan
    assert call.prompts[:4] == ["sound:digits/1", "sound:beep", "sound:digits/1",
                                "sound:digits/0"]


async def test_closing_message_then_asterisk_hangs_up(sipp):
    call = only(await sipp.call("100", "9", hold_ms=15000))
    assert call.destination == {"type": "message-then-hangup", "target": "bye"}
    assert call.prompts[-1] == "sound:digits/9"
    assert QUEUE not in call.apps


async def test_twenty_concurrent_callers_walk_three_levels(sipp):
    # distinct keys: a key arriving twice would take the caller elsewhere
    run = await sipp.call("100", "1 2 1", calls=20, concurrency=20, rate=40)
    assert run.returncode == 0, run.output
    reached = [c for c in run.calls if c.destination == {"type": "queue", "target": "billing"}]
    assert len(reached) == 20, [(c.caller, c.keys, c.path, c.dialplan) for c in run.calls]
    assert all(c.keys == ["1", "2", "1"] and c.path == ["top", "a", "stay"]
               for c in run.calls)
