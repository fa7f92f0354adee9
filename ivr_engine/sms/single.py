"""A single SMS from the API (SendSMS, app links): queued in the single lane, the lane woken,
and optionally waited for until it leaves (``wait_seconds``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .models import SENDING, TO_PROCESS


async def enqueue_single(repo: Any, service: Any, row: Any,
                         wait_seconds: float) -> tuple[Any, bool]:
    """Queue ``row`` (``repo``: the SmsRepo; ``service``: the in-engine SmsService, woken at
    once, or None); return its spool row after at most ``wait_seconds`` and whether it
    reached an outcome (sent, failed, blocked, ...) by then."""
    rid = await repo.enqueue_one(row)
    if service is not None:
        service.wake_single.set()
    deadline = time.monotonic() + wait_seconds
    got = await repo.get(rid)
    while got.state in (TO_PROCESS, SENDING) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        got = await repo.get(rid)
    return got, got.state not in (TO_PROCESS, SENDING)
