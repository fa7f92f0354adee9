"""How long will a caller wait? The wait estimator. Pure.

``talk-time`` (the main method) is position-aware: the caller at position ``p`` is answered
when the ``p``-th agent becomes free, agents serving callers in order. Each idle agent is
free now (plus the usual ring time); each busy agent is free after the expected rest of its
call — the mean of the recent talk times longer than what it has already talked (so an
agent 4 minutes into a call is not expected to finish in the 30 s the average would say);
then each agent takes the next caller for a hand-over plus a mean talk time. The number of agents that count
is the number serving the queue (logged in, not paused, reachable). It needs at least
``MIN_TALK`` recent talk times and one agent serving.

``answered-waits`` (the fallback, when talk times are too few): the mean wait of the recent
answered callers, not position-aware. It needs ``MIN_WAITS`` of them.

Otherwise there is no estimate (``seconds`` None) and ``reason`` says why: a made-up number
would be worse than none. ``confidence`` grows with the number of samples and falls with
their spread.

Asterisk's own estimate (``asterisk_holdtime``) is what app_queue announces: a running
average of answered callers' hold times, ``(3 × old + new) / 4`` in whole seconds, the same
for every caller whatever their position and however many agents serve.
"""

from __future__ import annotations

import heapq
import statistics
from dataclasses import dataclass
from typing import Sequence

MIN_TALK = 3
MIN_WAITS = 3
RECENT = 30  # samples the estimator looks at (the newest)


@dataclass(frozen=True, slots=True)
class Estimate:
    seconds: float | None
    method: str  # talk-time | answered-waits | none
    confidence: str  # high | medium | low | none
    samples: int
    reason: str


def _confidence(samples: Sequence[float]) -> str:
    n = len(samples)
    mean = statistics.fmean(samples)
    spread = statistics.pstdev(samples) / mean if mean > 0 else 1.0
    if n >= 10 and spread <= 0.5:
        return "high"
    if n >= 5 and spread <= 1.0:
        return "medium"
    return "low"


def residual(talk: Sequence[float], elapsed: float) -> float:
    """Expected rest of a call already ``elapsed`` seconds long, from recent talk times."""
    longer = [t - elapsed for t in talk if t > elapsed]
    if longer:
        return statistics.fmean(longer)
    return max(1.0, 0.1 * statistics.fmean(talk))  # longer than any seen: soon, say


def estimate_wait(position: int, idle: int, busy_elapsed: Sequence[float],
                  talk_times: Sequence[float], answered_waits: Sequence[float],
                  ring_times: Sequence[float] = ()) -> Estimate:
    """The wait still ahead of the caller at ``position`` (1 = next to be answered).

    ``idle``: agents serving and free now; ``busy_elapsed``: for each serving agent on a
    call, how long it has talked; histories oldest first."""
    talk = list(talk_times)[-RECENT:]
    waits = list(answered_waits)[-RECENT:]
    serving = idle + len(busy_elapsed)
    if serving == 0:
        return Estimate(None, "none", "none", 0, "no agent is serving the queue")
    if position < 1:
        raise ValueError("positions start at 1")
    if len(talk) >= MIN_TALK:
        mean = statistics.fmean(talk)
        ring = statistics.fmean(list(ring_times)[-RECENT:]) if ring_times else 0.0
        free = [0.0] * idle + [residual(talk, e) for e in busy_elapsed]
        heapq.heapify(free)
        for _ in range(position - 1):
            heapq.heappush(free, heapq.heappop(free) + ring + mean)
        seconds = free[0] + ring
        return Estimate(round(seconds, 1), "talk-time", _confidence(talk), len(talk),
                        f"position {position}, {serving} agent(s) serving, mean talk "
                        f"{mean:.1f} s over the last {len(talk)} calls")
    if len(waits) >= MIN_WAITS:
        return Estimate(round(statistics.fmean(waits), 1), "answered-waits", "low", len(waits),
                        f"only {len(talk)} talk time(s) known: mean wait of the last "
                        f"{len(waits)} answered callers")
    return Estimate(None, "none", "none", len(talk),
                    f"not enough history: {len(talk)} talk time(s) and {len(waits)} answered "
                    f"wait(s); {MIN_TALK} and {MIN_WAITS} needed")


def asterisk_holdtime(previous: int, hold: float) -> int:
    """app_queue's ``recalc_holdtime``: ``(3 × previous + new) >> 2`` in whole seconds."""
    return ((previous << 2) - previous + int(hold)) >> 2
