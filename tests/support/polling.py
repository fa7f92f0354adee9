"""Polling for something to happen.

``poll`` leaves the error to the caller (a test fails with its own exception, a bench exits
with its own message):

    got = await poll(lambda: store.find("completed"), 10)
    if not got:
        raise TimeoutError("completed: not within 10s")

``until`` is the tests' form for a plain condition: it fails the test when time runs out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def poll(check: Callable[[], Awaitable[Any]], timeout: float,
               step: float = 0.1) -> Any:
    """``await check()`` every ``step`` s until it returns something truthy, which is
    returned; after ``timeout`` s, its last (falsy) answer."""
    deadline = time.monotonic() + timeout
    while True:
        got = await check()
        if got or time.monotonic() > deadline:
            return got
        await asyncio.sleep(step)


async def until(predicate: Callable[[], Any], timeout: float, what: str,
                step: float = 0.02) -> None:
    """Wait until ``predicate()`` is truthy; an AssertionError naming ``what`` after
    ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.1f} s: {what}")
        await asyncio.sleep(step)
