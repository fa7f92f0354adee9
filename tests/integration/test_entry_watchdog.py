"""The dialplan's entry watchdog: a caller whose StasisStart reached an engine that died before
arming its own watchdog is not left in Stasis, unanswered, for good.

The engine arms ``TIMEOUT(absolute)`` at its first phase (a prompt, a menu's wait, the token
phase, ringing a user); until then only the dialplan can. It arms ``IVR_ENTRY_WATCHDOG``
seconds (a global, 15 by default) before every ``Stasis(ivr-engine,…)``. Found by the
cluster's engine-kill benchmark: a caller that entered ``Stasis()`` 8 ms before its engine was
SIGKILLed rang until Kamailio gave up 60 s later — and on one node until the carrier did.

Here the "engine" is a bare ARI websocket registered as ``ivr-engine`` that receives the
StasisStart and goes away without a request (an engine killed at that moment); the caller is a
real SIP caller (SIPp on the carrier trunk). The global is lowered to 2 s for the test and put
back after.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from ivr_engine.ari import AriClient
from ivr_engine.testing.sipp import SippCaller
from tests.support.polling import until

pytestmark = pytest.mark.sandbox

ENTRY = 2  # seconds: IVR_ENTRY_WATCHDOG during the test
SLACK = 2.0  # Asterisk's timer, the dialplan and the events' way to the observer


async def test_a_caller_whose_engine_died_at_its_stasis_start_reaches_the_fallback(
        sandbox, tmp_path):
    async with AriClient(sandbox.ari_url, sandbox.ari_username, sandbox.ari_password,
                         "ivr-engine") as ari:
        before = (await ari.request("GET", "/asterisk/variable",
                                    params=[("variable", "IVR_ENTRY_WATCHDOG")]))["value"]
        assert before == "15", "dialplan/extensions_ivr_engine.conf's default is not loaded"
        await ari.request("POST", "/asterisk/variable",
                          params=[("variable", "IVR_ENTRY_WATCHDOG"), ("value", str(ENTRY))])
        try:  # the "engine": the application's events websocket, nothing else
            ws = await ari.session.ws_connect(ari.api_url + "/events",
                                              params={"app": "ivr-engine"})
            async with SippCaller(sandbox, tmp_path) as sipp:
                [call], finished = sipp.launch("301", "", calls=1, hold_ms=30000)
                run = asyncio.ensure_future(finished)
                try:
                    async with asyncio.timeout(15):
                        while True:  # the "engine" hears its caller arrive ...
                            msg = await ws.receive_json()
                            if msg.get("type") == "StasisStart":
                                break
                    await ws.close()  # ... and dies without a request: nothing armed
                    gone = time.monotonic()
                    await until(lambda: call.first("app", "Playback(pls-hold-while-try"),
                                ENTRY + SLACK + 3, "the fallback message")
                    left = call.first("app", "Goto(ivr-engine-resume")
                    fallback = call.first("app", "Playback(pls-hold-while-try")
                    assert left is not None and fallback is not None, call.timeline
                    # out of Stasis by the entry watchdog, nothing else before it
                    assert ENTRY - 0.5 <= left - gone <= ENTRY + SLACK, (left - gone,
                                                                         call.timeline)
                    assert call.first("app", "Stasis(ivr-engine,resume") is not None
                    assert call.variables.get("IVR_FALLBACK") == "1"
                    print(f"\nengine gone -> out of Stasis {left - gone:.2f} s, -> fallback "
                          f"message {fallback - gone:.2f} s (entry watchdog {ENTRY} s)")
                    await sipp.observer.ari.hangup(call.channel)  # Asterisk's BYE ends SIPp's
                    await asyncio.wait_for(run, 30)
                finally:
                    if not run.done():
                        if call.channel:  # never leave it in the fallback queue
                            try:
                                await sipp.observer.ari.hangup(call.channel)
                            except Exception:  # noqa: BLE001 - it may be gone already
                                pass
                        run.cancel()
                        await asyncio.gather(run, return_exceptions=True)
        finally:
            await ari.request("POST", "/asterisk/variable",
                              params=[("variable", "IVR_ENTRY_WATCHDOG"), ("value", before)])
