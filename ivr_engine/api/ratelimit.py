"""Token buckets that refuse instead of waiting. Pure: the clock is injected.

An HTTP API under abuse must answer at once with 429 and say when to come back
(``Retry-After``); a limiter that makes the request wait (aiolimiter) holds the connection
open for the abuser and cannot tell the delay. Rate and burst are passed on every call, so a
configuration reload applies to existing buckets immediately.

Buckets live in a bounded LRU: a flood of distinct keys (addresses) evicts the least
recently seen buckets, which are the ones most likely to be full again anyway, and memory
stays bounded.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from typing import Callable


class TokenBuckets:
    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000):
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def take(self, key: str, rate: float, burst: float) -> float:
        """Take one token from ``key``'s bucket: 0.0 when granted, else the seconds until a
        token will be there (nothing is taken then)."""
        now = self._clock()
        tokens, at = self._buckets.pop(key, (burst, now))
        tokens = min(burst, tokens + max(0.0, now - at) * rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait

    def wait(self, key: str, rate: float, burst: float) -> float:
        """What :meth:`take` would answer, without taking anything."""
        tokens, at = self._buckets.get(key, (burst, self._clock()))
        tokens = min(burst, tokens + max(0.0, self._clock() - at) * rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / rate

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after(wait: float) -> str:
    """``Retry-After`` is whole seconds; round up so a client that obeys it succeeds."""
    return str(max(1, math.ceil(wait)))


class QuietLog:
    """Log lines of one kind at most once per ``every`` seconds: a flood of refusals writes
    one line per kind and interval, and the next line says how many were left out (the log
    of an engine under abuse stays readable and small). ``kind`` must come from a closed set
    (a scope, a reason), never from the request."""

    def __init__(self, logger: logging.Logger, every: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger, self._every, self._clock = logger, every, clock
        self._last: dict[str, tuple[float, int]] = {}  # kind → (last written, left out)

    def __call__(self, level: int, kind: str, msg: str, *args: object) -> None:
        now = self._clock()
        last, skipped = self._last.get(kind, (-math.inf, 0))
        if now - last < self._every:
            self._last[kind] = (last, skipped + 1)
            return
        self._last[kind] = (now, 0)
        if skipped:
            msg += " (and %d more like it in the last %.0f s)"
            args = (*args, skipped, now - last)
        self._logger.log(level, msg, *args)
