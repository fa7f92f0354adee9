"""The notice fan-out's shape (lifecycle/fanout.py), with plain callables as the send and the
record: every target once, at most ``concurrency`` sends in flight, results recorded in
batches (the last partial one too), a failed batch counted, the rate respected."""

from __future__ import annotations

import asyncio
import time

from ivr_engine.lifecycle.fanout import fan_out


async def test_every_target_once_bounded_and_batched():
    in_flight = peak = 0
    sent: list[int] = []
    batches: list[int] = []

    async def send(t: int) -> dict:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        sent.append(t)
        return {"result": "sent" if t % 10 else "provider_error"}

    calls = 0

    async def record(rows: list[dict]) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("database down")
        batches.append(len(rows))

    counts, seconds = await fan_out(range(1050), send, record, concurrency=8, batch=200)
    assert sorted(sent) == list(range(1050)) and peak == 8
    assert counts["sent"] == 945 and counts["provider_error"] == 105
    assert counts["unrecorded"] == 200  # the second batch failed, the others were written
    assert sum(batches) == 850 and batches[-1] == 50
    assert seconds > 0


async def test_rate_limit():
    async def send(t: int) -> dict:
        return {"result": "sent"}

    async def record(rows: list[dict]) -> None:
        pass

    started = time.monotonic()
    counts, _ = await fan_out(range(50), send, record, concurrency=4, batch=10, rate=200)
    assert counts["sent"] == 50
    assert time.monotonic() - started >= 49 / 200 * 0.95  # 50 sends at 200/s: ~0.245 s
