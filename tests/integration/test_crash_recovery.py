"""No caller stranded by an engine that dies: 20 real SIP callers (SIPp on the carrier trunk)
sit in menus while the engine is killed.

- SIGKILL, then a new engine: it finds the calls still in its ARI application and resumes
  each in the menu it waited in (IVR_AWAITING), within 2 s of being back.
- SIGKILL, no engine ever again: Asterisk's own watchdog (TIMEOUT(absolute), armed by the
  engine at each wait) takes every caller to the dialplan fallback once its menu's wait
  budget is spent (timeout + grace), not later.
- SIGTERM while a long prompt plays: the prompt is stopped and the fallback starts at once,
  instead of after the rest of a menu nobody drives.

The figures measured here are printed (pytest -s shows them) for the issue notes.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import pytest

from ivr_engine.testing.rtp_pcap import Key
from ivr_engine.testing.sipp import SippCaller
from tests.support.polling import until

from .engine_proc import start_engine

pytestmark = pytest.mark.sandbox

CRASH = Path(__file__).resolve().parents[1] / "fixtures" / "crash.yaml"
N = 20


@pytest.fixture
async def sipp(sandbox, tmp_path):
    async with SippCaller(sandbox, tmp_path) as caller:
        yield caller


def report(name: str, values: list[float]) -> dict:
    values = sorted(values)
    out = {"test": name, "n": len(values), "min_s": round(values[0], 3),
           "p50_s": round(values[len(values) // 2], 3), "max_s": round(values[-1], 3)}
    print(json.dumps(out))
    return out


async def test_sigkill_then_restart_resumes_every_caller_in_its_menu(sandbox, tmp_path, sipp):
    engine = await start_engine(sandbox, tmp_path / "first", config=CRASH)
    # keys long after the restart: waits --1--> second --1--> queue support
    run = None
    try:
        calls, finished = sipp.launch("200", [Key("1", 12000), Key("1", 14000)], calls=N,
                                      concurrency=N, rate=50, hold_ms=20000)
        run = asyncio.ensure_future(finished)
        await until(lambda: all(c.variables.get("IVR_AWAITING") == "waits:1" for c in calls),
                    15, "20 callers waiting in the menu")
        engine.proc.kill()
        await engine.proc.wait()
        killed = time.monotonic()
        await asyncio.sleep(1.0)
        spawned = time.monotonic()
        second = await start_engine(sandbox, tmp_path / "second", config=CRASH)
        ready = time.monotonic()
        await until(lambda: all(c.first("prompt", after=killed) for c in calls), 5,
                    "every caller hears its menu again")
        heard = [c.first("prompt", after=killed) for c in calls]
        report("sigkill+restart: engine ready -> prompt heard", [t - ready for t in heard])
        report("sigkill+restart: engine started -> prompt heard", [t - spawned for t in heard])
        assert max(heard) - ready <= 2.0
        assert all(c.prompts[-1] == "sound:digits/1" for c in calls)  # the menu they were in
        assert f"({N} calls taken back)" in second.log()
        result = await run
        assert all(c.keys == ["1", "1"] for c in result.calls)
        assert all(c.destination == {"type": "queue", "target": "support"}
                   for c in result.calls), [c.dialplan for c in result.calls]
        assert all(c.path == ["waits", "second"] for c in result.calls)
        assert await second.stop() == 0, second.log()
    finally:
        if run is not None:
            run.cancel()
        await engine.stop()


async def test_engine_never_back_watchdog_sends_callers_to_the_fallback(sandbox, tmp_path,
                                                                        sipp):
    engine = await start_engine(sandbox, tmp_path, config=CRASH)
    run = None
    try:
        calls, finished = sipp.launch("205", "", calls=N, concurrency=N, rate=50, hold_ms=16000)
        run = asyncio.ensure_future(finished)
        await until(lambda: all(c.variables.get("IVR_AWAITING") == "waits-5:1" for c in calls),
                    15, "20 callers waiting in the 5 s menu")
        engine.proc.kill()
        await engine.proc.wait()
        waited = [c.first("var", "IVR_AWAITING=") for c in calls]
        await until(lambda: all(c.first("app", "Queue(ivr-fallback") for c in calls), 15,
                    "every caller reaches the fallback queue")
        left = [c.first("app", "Goto(ivr-engine-resume") for c in calls]
        queued = [c.first("app", "Queue(ivr-fallback") for c in calls]
        budget = 5 + 3  # the menu's timeout + the watchdog grace
        report("never back: wait began -> out of Stasis (budget 8 s)",
               [a - w for a, w in zip(left, waited)])
        report("never back: wait began -> fallback queue", [q - w for q, w in zip(queued, waited)])
        assert all(budget - 0.5 <= a - w <= budget + 1.5 for a, w in zip(left, waited))
        assert all(c.variables.get("IVR_FALLBACK") == "1" for c in calls)
        await run
    finally:
        if run is not None:
            run.cancel()
        await engine.stop()


async def test_sigterm_stops_the_prompt_then_the_fallback(sandbox, tmp_path, sipp):
    engine = await start_engine(sandbox, tmp_path, config=CRASH)
    run = None
    try:
        calls, finished = sipp.launch("201", "", calls=N, concurrency=N, rate=50, hold_ms=14000)
        run = asyncio.ensure_future(finished)
        await until(lambda: all(len(c.prompts) >= 2 for c in calls), 15,
                    "20 callers in the middle of the long prompt")
        term = time.monotonic()
        assert await engine.stop(signal.SIGTERM) == 0, engine.log()
        await until(lambda: all(c.first("app", "Playback(pls-hold-while-try") for c in calls),
                    5, "every caller in the fallback")
        delays = [c.first("app", "Playback(pls-hold-while-try") - term for c in calls]
        report("sigterm mid-prompt -> fallback message", delays)
        assert max(delays) < 1.5  # not the ~12 s left of the prompt
        assert all(len(c.prompts) < 8 for c in calls)  # the 16-part prompt was cut short
        await run
    finally:
        if run is not None:
            run.cancel()
        await engine.stop()


async def test_sigkill_mid_prompt_the_new_engine_stops_the_old_prompt(sandbox, tmp_path,
                                                                      sipp):
    engine = await start_engine(sandbox, tmp_path / "first", config=CRASH)
    run = None
    try:
        calls, finished = sipp.launch("201", "", calls=N, concurrency=N, rate=50, hold_ms=16000)
        run = asyncio.ensure_future(finished)
        await until(lambda: all(len(c.prompts) >= 2 for c in calls), 15,
                    "20 callers in the middle of the 14 s prompt")
        engine.proc.kill()
        await engine.proc.wait()
        killed = time.monotonic()
        second = await start_engine(sandbox, tmp_path / "second", config=CRASH)
        ready = time.monotonic()
        # the entry starts again: its first part, right away, not after the old prompt's end
        await until(lambda: all(c.first("prompt", "sound:digits/1", after=killed)
                                for c in calls), 5, "every caller hears the menu from its start")
        heard = [c.first("prompt", "sound:digits/1", after=killed) for c in calls]
        report("sigkill mid-prompt + restart: ready -> menu restarts", [t - ready for t in heard])
        assert max(heard) - ready <= 2.0
        assert second.log().count("stopped 1 stale playback(s)") == N, second.log()
        assert await second.stop() == 0, second.log()
    finally:
        if run is not None:
            run.cancel()
        await engine.stop()
