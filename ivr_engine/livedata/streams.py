"""Who holds the queue event streams: each open stream holds a connection, a file descriptor
and a task for as long as it lasts, so they are capped and they end.

- **Caps** (``engine.api.streams``): per app key and address (``per_client``), per user
  (``per_user``, a session's streams), per address and in all. ``total`` is also held under
  ``ceiling`` (half the public listener's connection budget, ``api/listener.py``): streams
  never take the connections requests need. Past a cap: 429 with ``Retry-After`` (when the
  oldest stream counted against that cap ends at the latest), counted in
  ``ivr_event_streams_refused_total{cap}`` and logged at most once per 10 s per cap.
- **Lifetime**: a stream lasts at most ``max_lifetime_seconds`` (each one 0–10 % less, so
  streams opened together do not all come back together); its end is announced with the
  SSE ``retry:`` field (``retry_seconds``) so the app reconnects after that delay.

Pure bookkeeping: the clock and the jitter are injected; the route (``http.py``) holds a
:class:`Ticket` for as long as it streams.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable

from .. import metrics
from ..api.principal import Principal
from ..api.problems import Problem
from ..api.ratelimit import QuietLog, retry_after
from ..api.routes import SESSION

log = logging.getLogger("ivr_engine.livedata")
quiet = QuietLog(log)


@dataclass(eq=False)
class Ticket:
    """One open stream: release it when the stream ends (``with gate.open(who) as t``)."""

    gate: "StreamGate"
    keys: tuple[str, ...]
    ends_at: float  # the clock's time at which the stream must end
    released: bool = False

    def __enter__(self) -> "Ticket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.release(self)

    def remaining(self) -> float:
        return max(0.0, self.ends_at - self.gate.clock())


class StreamGate:
    """The open streams, by the caps they count against. ``limits`` returns the current
    ``StreamLimits`` (a reload applies to new streams)."""

    def __init__(self, limits: Callable[[], Any], ceiling: int | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 jitter: Callable[[], float] = random.random) -> None:
        self.limits, self.ceiling = limits, ceiling
        self.clock, self._jitter = clock, jitter
        self._open: dict[str, list[Ticket]] = defaultdict(list)
        self.total = 0

    def _caps(self, who: Principal) -> list[tuple[str, str, int]]:
        """(cap, key, limit) a stream of ``who`` counts against."""
        lim = self.limits()
        total = lim.total if self.ceiling is None else min(lim.total, self.ceiling)
        caps = [("per_address", f"addr|{who.address}", lim.per_address),
                ("total", "total", total)]
        if who.scheme is SESSION:
            caps.insert(0, ("per_user", f"user|{who.app}|{who.user}", lim.per_user))
        else:
            caps.insert(0, ("per_client", f"client|{who.app}|{who.address}", lim.per_client))
        return caps

    def open(self, who: Principal) -> Ticket:
        """A ticket for a new stream of ``who``, or a 429 Problem naming the cap it met."""
        now = self.clock()
        caps = self._caps(who)
        for cap, key, limit in caps:
            held = self._open.get(key, ())
            if len(held) >= limit:
                metrics.EVENT_STREAMS_REFUSED.labels(cap).inc()
                quiet(logging.INFO, cap, "event stream of %s refused: %d open (%s cap %d)",
                      who.describe(), len(held), cap, limit)
                wait = min(t.ends_at for t in held) - now if held else 1.0
                raise Problem(429, "Too Many Requests", f"too many event streams open ({cap}"
                              f" cap: {limit}); close one, or retry after the Retry-After "
                              "delay", headers={"Retry-After": retry_after(wait)})
        lifetime = self.limits().max_lifetime_seconds * (1 - 0.1 * self._jitter())
        ticket = Ticket(self, tuple(key for _, key, _ in caps), now + lifetime)
        for key in ticket.keys:
            self._open[key].append(ticket)
        self.total += 1
        metrics.EVENT_STREAMS.set(self.total)
        return ticket

    def release(self, ticket: Ticket) -> None:
        if ticket.released:
            return
        ticket.released = True
        for key in ticket.keys:
            held = self._open.get(key)
            if held is not None and ticket in held:
                held.remove(ticket)
                if not held:
                    del self._open[key]
        self.total -= 1
        metrics.EVENT_STREAMS.set(self.total)

    def held(self, key: str) -> int:
        return len(self._open.get(key, ()))


def retry_field(seconds: float) -> bytes:
    """The SSE ``retry:`` field line (milliseconds): how long the client waits before it
    reconnects."""
    return b"retry: %d\n" % math.ceil(seconds * 1000)
