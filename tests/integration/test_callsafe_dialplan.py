"""Hand-off contexts never catch Asterisk's special extensions (issue 17): after hand-offs to
a queue and to an endpoint, and their hang-ups, Asterisk's own log (the sandbox's
``messages``, read from the byte offset where this test began) shows no ``h`` extension run
in ``ivr-engine-queue`` / ``ivr-engine-endpoint``: no ``Queue(h)`` ("Unable to join queue
'h'", 540 times in one earlier run) and no ``Dial(PJSIP/h,30)``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ivr_engine.testing.caller import create_local_pair

from .conftest import next_event, start_client, stop_client
from .engine_proc import local_call, start_engine

pytestmark = pytest.mark.sandbox

CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "callsafe.yaml"
LOG = Path(os.environ.get("IVR_SANDBOX_ROOT", "/var/cache/ivr-engine/asterisk-sid")) / \
    "var/log/asterisk/messages"


async def _through(ari, key: str, prefix: str, app: str) -> tuple[str, str]:
    a, b = await local_call(ari, "300", prefix)
    await next_event(ari.events, "PlaybackStarted", timeout=10,
                     predicate=lambda e: e.channel_id == b)
    await ari.send_dtmf(a, key)
    await next_event(ari.events, "ChannelDialplan", timeout=10,
                     predicate=lambda e: e.channel_id == b and e.dialplan_app == app)
    return a, b


async def _marker(ari) -> str:
    """A line of our own in Asterisk's log, after everything the calls above produced
    (their ``h`` runs before their channel is destroyed): the fallback context logs the
    name of the channel it answers, which is this one's."""
    a = f"mark-{ari.app}"
    b = await create_local_pair(ari, "s", "ivr-engine-fallback", a)
    await next_event(ari.events, "StasisStart", timeout=5, predicate=lambda e: e.channel_id == a)
    await ari.dial(a)
    channel = await ari.get_channel(b)
    assert channel is not None
    return f"fallback queue for {channel['name']}"


async def test_hand_off_hang_ups_never_run_an_h_extension(sandbox, tmp_path):
    offset = LOG.stat().st_size
    engine = await start_engine(sandbox, tmp_path, config=CONFIG)
    ari = await start_client(sandbox)
    try:
        queued = [await _through(ari, "1", f"hq{n}", "Queue") for n in range(2)]
        dialled = [await _through(ari, "2", f"he{n}", "Dial") for n in range(2)]
        for a, _ in queued:
            await ari.hangup(a)  # the caller leaves the queue
        # carol is not registered: Dial fails at once, the dialplan hangs up
        for _, b in queued + dialled:
            await next_event(ari.events, "ChannelDestroyed", timeout=15,
                             predicate=lambda e, b=b: e.channel_id == b)
        mark = await _marker(ari)
        deadline = time.monotonic() + 10
        while True:
            with open(LOG, "rb") as f:
                f.seek(offset)
                region = f.read().decode(errors="replace")
            if mark in region:
                region = region[:region.index(mark)]
                break
            assert time.monotonic() < deadline, "the marker never reached Asterisk's log"
            time.sleep(0.05)
        # what this test's calls did is in the region read ...
        assert region.count("@ivr-engine-queue:3] Queue(") >= 2, region[-3000:]
        assert region.count("@ivr-engine-endpoint:3] Dial(") >= 2, region[-3000:]
        # ... and no special extension ran in the hand-off contexts
        bad = [line for line in region.splitlines()
               if "[h@ivr-engine-" in line or "Unable to join queue 'h'" in line
               or "PJSIP/h," in line or "[i@ivr-engine-" in line or "[t@ivr-engine-" in line]
        assert bad == [], "\n".join(bad[:20])
    finally:
        await stop_client(ari)
        assert await engine.stop() == 0, engine.log()
