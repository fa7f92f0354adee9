"""What may happen to a callback request, and when. Pure: no I/O, no clock of its own.

States::

    requested ─claim─► claimed ─(engine: originate)─► dialing ─► completed
      ▲  │               │ (API: complete)             │   └─► failed (attempts spent)
      │  └─► expired     └─► completed | failed        │
      └────────── retry (not answered, attempts left) ◄┘

A request is *claimed* by one owner at a time: an API client (``POST /v1/callbacks/{id}/claim``,
it then says how it went) or the engine's placer, which places it in its queue as a Local
channel and dials the customer once an agent answers. Every transition is a compare-and-set
on the state the caller saw (``repo.py``), so two engines sharing a database never place the
same request twice.

A queue's **window** is when its callbacks may be placed: weekly hours like
``mon-fri 09:00-18:00`` in the queue's timezone (or a schedule of ``schedules:``). A request
that is not completed ``expire_after_seconds`` after it was made expires; one that is not
answered is tried again ``retry_seconds`` later, at most ``attempts`` times in all.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..ivr.schedule import Schedule, TimeRange, parse_days, parse_range

REQUESTED, CLAIMED, DIALING = "requested", "claimed", "dialing"
COMPLETED, FAILED, EXPIRED = "completed", "failed", "expired"
STATES = (REQUESTED, CLAIMED, DIALING, COMPLETED, FAILED, EXPIRED)
FINAL = frozenset({COMPLETED, FAILED, EXPIRED})

#: what an attempt came to: answered by the customer, or why not
ANSWERED, BUSY, NO_ANSWER = "answered", "busy", "no-answer"
UNREACHABLE, CANCELLED, NO_AGENT = "unreachable", "cancelled", "no-agent"
INVALID_NUMBER, LOST = "invalid-number", "lost"
#: outcomes an API client may report when it completes a callback it claimed
API_OUTCOMES = (ANSWERED, BUSY, NO_ANSWER, UNREACHABLE, CANCELLED)

#: the engine's placements are claimed as ``engine:<worker>``; API clients as ``api:<agent>``
ENGINE_OWNER, API_OWNER = "engine:", "api:"

# Dial()'s DIALSTATUS (left by the dialplan in a global variable when the attempt ends)
_DIALSTATUS = {"ANSWER": ANSWERED, "BUSY": BUSY, "NOANSWER": NO_ANSWER,
               "CONGESTION": UNREACHABLE, "CHANUNAVAIL": UNREACHABLE, "CANCEL": CANCELLED,
               "DONTCALL": UNREACHABLE, "TORTURE": UNREACHABLE, "INVALIDARGS": UNREACHABLE}


def outcome_of(dialstatus: str | None) -> str:
    """An attempt whose Local channel is gone, from what the dialplan left in its variable:
    none — no agent answered while it waited in the queue (the customer was never dialled);
    ``DIALING`` — an agent answered, then the attempt ended before Dial() said anything (the
    agent hung up at once: counted as cancelled); else Dial()'s status."""
    if not dialstatus:
        return NO_AGENT
    if dialstatus == "DIALING":
        return CANCELLED
    return _DIALSTATUS.get(dialstatus, UNREACHABLE)


def counts(outcome: str) -> bool:
    """Does this outcome use up one of the request's attempts? Only a try at the customer's
    phone does: an agent that never came (or an engine that lost the attempt) does not."""
    return outcome not in (NO_AGENT, LOST)


# ---------------------------------------------------------------------------- windows

def parse_window(text: object) -> tuple[list[int], tuple[TimeRange, ...]]:
    """``"mon-fri 09:00-18:00"``, ``"sat 10:00-12:00 14:00-16:00"`` → (weekdays, ranges)."""
    if not isinstance(text, str) or len(text.split()) < 2:
        raise ValueError(f"{text!r} is not a window like 'mon-fri 09:00-18:00' (days, then "
                         "one or more time ranges)")
    days, *ranges = text.split()
    parsed = sorted(parse_range(r) for r in ranges)
    for a, b in zip(parsed, parsed[1:]):
        if b.start < a.end:
            raise ValueError(f"{text!r}: ranges {a} and {b} overlap")
    return parse_days(days), tuple(parsed)


def window_schedule(name: str, windows: list[str] | tuple[str, ...],
                    tz: dt.tzinfo) -> Schedule:
    """The weekly schedule of a queue's ``window`` lines (a day given twice is refused)."""
    weekly: list[tuple[TimeRange, ...]] = [() for _ in range(7)]
    for text in windows:
        days, ranges = parse_window(text)
        for d in days:
            if weekly[d]:
                raise ValueError(f"{text!r} gives a day a window already has")
            weekly[d] = ranges
    return Schedule(name, tz, tuple(weekly))


# ---------------------------------------------------------------------------- decisions

@dataclass(frozen=True, slots=True)
class QueuePolicy:
    """How the engine places the callbacks of one queue (``callbacks.queues.<name>``)."""

    queue: str
    window: Schedule | None = None  # None: at any time
    attempts: int = 3
    retry_seconds: float = 300.0
    expire_after_seconds: float = 86_400.0
    ring_seconds: int = 30  # the customer's phone rings this long
    wait_seconds: int = 1800  # in the queue, for an agent, per placement
    max_waiting: int = 10  # placements of this queue in Asterisk at once
    caller_id: str | None = None  # what the customer sees

    def open(self, now: dt.datetime) -> bool:
        return self.window is None or self.window.is_open(now)

    def expired(self, created_at: dt.datetime, now: dt.datetime) -> bool:
        return now >= created_at + dt.timedelta(seconds=self.expire_after_seconds)


@dataclass(frozen=True, slots=True)
class Next:
    """Where a request goes after an attempt: its new state, its attempts, and when it may
    be placed again (for ``requested``)."""

    state: str
    attempts: int
    not_before: dt.datetime | None = None


#: a placement Asterisk refused or that was lost is placed again this long after
REPLACE_SECONDS = 10.0


def after_attempt(policy: QueuePolicy, attempts: int, outcome: str, now: dt.datetime,
                  created_at: dt.datetime) -> Next:
    """The request's next state once an attempt ended with ``outcome`` (``attempts``: the
    ones used before it)."""
    if outcome == ANSWERED:
        return Next(COMPLETED, attempts + 1)
    if outcome == INVALID_NUMBER:
        return Next(FAILED, attempts)
    used = attempts + 1 if counts(outcome) else attempts
    if used >= policy.attempts:
        return Next(FAILED, used)
    delay = policy.retry_seconds if counts(outcome) else REPLACE_SECONDS
    if outcome == NO_AGENT:
        delay = 0.0  # back in the queue at once: the agents were busy, not the customer
    again = now + dt.timedelta(seconds=delay)
    if policy.expired(created_at, again):
        return Next(EXPIRED, used)
    return Next(REQUESTED, used, again)


def api_result(outcome: str) -> str:
    """The final state an API client's ``complete`` gives: completed when answered."""
    return COMPLETED if outcome == ANSWERED else FAILED


def dialable(number: str) -> bool:
    """A number the engine may dial back: digits with an optional leading +."""
    digits = number[1:] if number.startswith("+") else number
    return 2 <= len(digits) <= 20 and digits.isdigit()
