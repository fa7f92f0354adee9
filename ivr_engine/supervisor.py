"""Supervised background work: every loop that is not a call runs under one supervisor, so a
failing feature never shares a failure domain with the calls (principle 11).

    engine TaskGroup
      ├── nodes, calls                 (the call path: not supervised, their own domain)
      └── Supervisor.run ── its own TaskGroup, one keeper task per child
            └── keeper: run the child; an exception is logged with the child's name and
                traceback, counted (``ivr_task_failures_total{task}``), waited out
                (exponential backoff, capped, ± jitter) and the child started again

A child that returns is finished (not restarted). A child that keeps failing — ``failures``
failures within ``window_seconds`` — is named by :meth:`Supervisor.failing` (``/readyz``)
until it has run ``stable_seconds`` without failing again, which also resets its backoff.
Cancelling :meth:`Supervisor.run` (SIGTERM) cancels every child, backoffs included, and
returns once they are all gone: nothing outlives it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from . import metrics

log = logging.getLogger("ivr_engine.supervisor")

Start = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How a failed child is restarted, and when it counts as failing (``engine.supervisor``
    in the config)."""

    backoff_seconds: float = 1.0  # the first wait; doubled after each failure in a row
    backoff_max_seconds: float = 60.0
    jitter: float = 0.2  # each wait is its value ± this fraction
    failures: int = 5  # this many failures ...
    window_seconds: float = 300.0  # ... within this long: the child is failing (/readyz)
    stable_seconds: float = 30.0  # a run this long without failure clears the record

    @classmethod
    def from_settings(cls, s: Any) -> "RestartPolicy":
        """From a ``config.model.SupervisorSettings``."""
        return cls(backoff_seconds=s.restart_backoff_seconds,
                   backoff_max_seconds=s.restart_backoff_max_seconds,
                   failures=s.not_ready_after_failures,
                   window_seconds=s.failure_window_seconds, stable_seconds=s.stable_seconds)

    def backoff(self, in_a_row: int, rand: Callable[[], float] = random.random) -> float:
        """The wait before the restart that follows the ``in_a_row``-th failure in a row."""
        base = min(self.backoff_max_seconds, self.backoff_seconds * 2 ** max(0, in_a_row - 1))
        return max(0.0, base * (1 + self.jitter * (2 * rand() - 1)))


@dataclass
class Child:
    """One supervised loop and what is known of its failures."""

    name: str
    start: Start
    state: str = "waiting"  # waiting | running | backing-off | finished
    started_at: float = 0.0
    in_a_row: int = 0
    failures: deque[float] = field(default_factory=deque)  # times, within the window
    total_failures: int = 0
    last_error: str = ""


def _short(exc: BaseException, limit: int = 200) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:  # a TaskGroup's: its cause
        exc = exc.exceptions[0]
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Supervisor:
    def __init__(self, policy: RestartPolicy | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 rand: Callable[[], float] = random.random):
        self.policy = policy or RestartPolicy()
        self.clock, self.rand = clock, rand
        self.children: dict[str, Child] = {}
        self._tg: asyncio.TaskGroup | None = None

    def add(self, name: str, start: Start) -> None:
        """Supervise ``start()`` (called again for each restart) under ``name``, the label
        of its failures; started at once when the supervisor already runs."""
        if name in self.children:
            raise ValueError(f"a child named {name!r} is already supervised")
        child = self.children[name] = Child(name, start)
        if self._tg is not None:
            self._tg.create_task(self._keep(child), name=f"supervised-{name}")

    async def run(self) -> None:
        """Run every child until cancelled, or until each has returned."""
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                for child in self.children.values():
                    tg.create_task(self._keep(child), name=f"supervised-{child.name}")
        finally:
            self._tg = None

    async def _keep(self, child: Child) -> None:
        p = self.policy
        while True:
            child.state, child.started_at = "running", self.clock()
            try:
                await child.start()
            except Exception as exc:  # noqa: BLE001 - the point: a failure ends in a restart
                now = self.clock()
                if now - child.started_at >= p.stable_seconds:  # it had recovered meanwhile
                    child.in_a_row = 0
                    child.failures.clear()
                child.in_a_row += 1
                child.total_failures += 1
                child.failures.append(now)
                while child.failures and now - child.failures[0] > p.window_seconds:
                    child.failures.popleft()
                child.last_error = _short(exc)
                metrics.TASK_FAILURES.labels(child.name).inc()
                delay = p.backoff(child.in_a_row, self.rand)
                log.error("background task %s failed (%d in a row, %d in the last %g s); "
                          "restarting in %.1f s: %s", child.name, child.in_a_row,
                          len(child.failures), p.window_seconds, delay, child.last_error,
                          exc_info=exc)
                child.state = "backing-off"
                await asyncio.sleep(delay)
                continue
            child.state = "finished"
            log.info("background task %s finished", child.name)
            return

    def failing(self) -> list[str]:
        """The children that keep failing, each with why (empty: none)."""
        p, now, out = self.policy, self.clock(), []
        for c in self.children.values():
            if c.state == "running" and now - c.started_at >= p.stable_seconds:
                continue  # restarted and stable since
            recent = sum(1 for t in c.failures if now - t <= p.window_seconds)
            if recent >= p.failures:
                out.append(f"background task {c.name!r} keeps failing: {recent} failures "
                           f"in the last {p.window_seconds:g} s (last: {c.last_error})")
        return out
