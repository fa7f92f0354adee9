"""The notice fan-out: many pushes with bounded concurrency, results recorded in batches by
one writer task, so the database never sits between two sends.

``concurrency`` workers take the next target from one shared iterator (no task per device),
optionally paced to ``rate`` sends a second (leaving the engine's CPU to its calls);
every ``batch`` results go to the writer through a queue. Everything lives in a TaskGroup the
caller awaits: when the fan-out returns, every send has finished and every batch is written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any, Awaitable, Callable, Iterable, TypeVar

log = logging.getLogger("ivr_engine.lifecycle")

T = TypeVar("T")
Row = dict[str, Any]


class Pacer:
    """At most ``rate`` sends per second (None: no limit): each send takes the next slot."""

    def __init__(self, rate: float | None):
        self.interval = 1.0 / rate if rate else 0.0
        self.next_slot = time.monotonic()

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        slot = max(now, self.next_slot)
        self.next_slot = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


async def fan_out(targets: Iterable[T], send: Callable[[T], Awaitable[Row]],
                  record: Callable[[list[Row]], Awaitable[None]], *, concurrency: int,
                  batch: int, rate: float | None = None) -> tuple[Counter, float]:
    """Send to every target (at most ``rate`` a second); (results by ``row["result"]``,
    seconds to the last send)."""
    counts: Counter = Counter()
    queue: asyncio.Queue[list[Row] | None] = asyncio.Queue()
    pending: list[Row] = []
    todo = iter(targets)
    started = time.monotonic()
    last_send = started
    pacer = Pacer(rate)

    async def worker() -> None:
        nonlocal pending, last_send
        for target in todo:
            await pacer.wait()
            row = await send(target)
            last_send = time.monotonic()
            counts[row["result"]] += 1
            pending.append(row)
            if len(pending) >= batch:
                queue.put_nowait(pending)
                pending = []

    async def writer() -> None:
        while (rows := await queue.get()) is not None:
            try:
                await record(rows)
            except Exception:  # noqa: BLE001 - the sends happened; say what was not recorded
                counts["unrecorded"] += len(rows)
                log.exception("release notices: %d results could not be recorded", len(rows))

    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer(), name="notice-writer")
        async with asyncio.TaskGroup() as workers:
            for i in range(max(1, concurrency)):
                workers.create_task(worker(), name=f"notice-worker-{i}")
        if pending:
            queue.put_nowait(pending)
        queue.put_nowait(None)
    return counts, last_send - started
