"""The watchdog follows the prompt that plays (issue 17): a real SIP caller (SIPp on the
carrier trunk) hears a 13.4 s prompt when the engine is SIGKILLed in its middle and never
comes back. The engine armed Asterisk's ``TIMEOUT(absolute)`` for the prompt's length (read
from the sandbox's sound files) plus the 3 s grace, so the caller is out of Stasis and
hearing the fallback a few seconds after the prompt ends — not ``prompt_seconds`` (120 s,
as in config/example.yaml) after it began. The prompt itself is never cut short.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from ivr_engine.calls.sounds import SoundLengths
from ivr_engine.config import load_config
from ivr_engine.testing.sipp import SippCaller
from tests.support.polling import until

from .engine_proc import start_engine

pytestmark = pytest.mark.sandbox

CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "callsafe.yaml"
GRACE = 3.0  # engine.watchdog.grace_seconds in the fixture
SLACK = 2.0  # Asterisk's watchdog, the dialplan and the events' way to the observer


@pytest.fixture
async def sipp(sandbox, tmp_path):
    async with SippCaller(sandbox, tmp_path) as caller:
        yield caller


def prompt_length() -> float:
    cfg = load_config(CONFIG, {})
    wd = cfg.engine.watchdog
    media = cfg.tree.messages.resolve("long", "en", None).media
    seconds = SoundLengths().length(media, "en", wd.sounds_dir, wd.sounds_root)
    assert seconds is not None, "the sandbox's sound files are not readable"
    return seconds


async def test_a_caller_of_an_engine_dead_mid_prompt_hears_the_fallback_after_it(
        sandbox, tmp_path, sipp):
    length = prompt_length()
    engine = await start_engine(sandbox, tmp_path, config=CONFIG)
    run = call = None
    try:
        [call], finished = sipp.launch("301", "", calls=1, hold_ms=60000)
        run = asyncio.ensure_future(finished)
        await until(lambda: len(call.prompts) >= 3, 15, "the caller in the long prompt")
        began = call.first("prompt")
        engine.proc.kill()
        await engine.proc.wait()
        killed = time.monotonic()
        # the fallback message within the prompt's end + grace + slack, not 120 s
        patience = began + length + GRACE + SLACK + 3 - time.monotonic()
        await until(lambda: call.first("app", "Playback(pls-hold-while-try"), patience,
                    "the fallback message after the prompt's end")
        ended = call.first("prompt-end")
        left = call.first("app", "Goto(ivr-engine-resume")
        fallback = call.first("app", "Playback(pls-hold-while-try")
        assert ended is not None and left is not None and fallback is not None
        figures = {"prompt_s": round(ended - began, 2), "computed_s": round(length, 2),
                   "killed_into_prompt_s": round(killed - began, 2),
                   "prompt_end_to_out_of_stasis_s": round(left - ended, 2),
                   "prompt_end_to_fallback_message_s": round(fallback - ended, 2)}
        print(json.dumps(figures))
        assert ended <= left, figures  # the prompt played to its end: never cut short
        assert fallback - ended <= GRACE + SLACK, figures
        assert call.variables.get("IVR_FALLBACK") == "1"
        await sipp.observer.ari.hangup(call.channel)  # Asterisk's BYE ends SIPp's call
        await asyncio.wait_for(run, 30)
    finally:
        if run is not None and not run.done():
            if call is not None and call.channel:  # never leave it in the fallback queue
                try:
                    await sipp.observer.ari.hangup(call.channel)
                except Exception:  # noqa: BLE001 - it may be gone already
                    pass
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
        await engine.stop()
