"""A queue's snapshot, and the status of a queue over several nodes. Pure.

A snapshot is what one node's app_queue says of one queue at one moment (``take``): the
counts the status shows, and the estimator's inputs — each waiting caller's wait so far, each
busy serving agent's talk so far, and the recent talk times, answered waits and hand-over
times, each with how long ago it was seen. Every duration is relative to the snapshot's
moment; a reader adds the snapshot's ``age`` (seconds since it was taken) to the running
ones and to the "ago" of the history.

``merged_status`` combines the snapshots of every node of a queue (issue 18):

- callers waiting, agents (logged in, serving, available, busy, paused), answered and
  abandoned: the sums over the nodes; the longest wait: the longest of any node;
- positions: every node's callers, the longest waiting first (each node's app_queue
  answers its own callers in their order; over nodes, the longest wait is the nearest to
  an answer);
- the estimates: the unchanged estimator (``estimate.py``) fed the merged inputs — the
  idle agents of every node, every busy agent's talk so far, and the newest ``RECENT``
  talk times, answered waits and hand-over times of all nodes together (ordered by when
  they were seen): the wait of a queue whose agents all serve one line of callers, i.e.
  the pooled queue;
- ``asterisk_holdtime_seconds``: the longest of the nodes' own running averages.

One snapshot taken now gives exactly the one node's status (a test checks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from .estimate import Estimate, estimate_wait
from .queues import HISTORY_SECONDS, QueueState, _History
from .schemas import Agents, QueueStatus, WaitEstimate, WaitingCaller


def wait_model(e: Estimate) -> WaitEstimate:
    return WaitEstimate(seconds=e.seconds, method=e.method, confidence=e.confidence,  # type: ignore[arg-type]
                        samples=e.samples, reason=e.reason)


@dataclass(frozen=True)
class Snapshot:
    node: str
    queue: str
    callers: int = 0
    logged_in: int = 0
    serving: int = 0
    available: int = 0
    busy: int = 0
    paused: int = 0
    longest_wait: float = 0.0
    answered: int = 0
    abandoned: int = 0
    asterisk_holdtime: int | None = None
    #: the estimator's inputs: waits of the callers (position 1 first), talk so far of each
    #: busy serving agent, history as (seconds ago, value), oldest first
    caller_waits: tuple[float, ...] = ()
    busy_elapsed: tuple[float, ...] = ()
    talk: tuple[tuple[float, float], ...] = ()
    waits: tuple[tuple[float, float], ...] = ()
    rings: tuple[tuple[float, float], ...] = ()
    age: float = field(default=0.0, compare=False)  # seconds since it was taken

    def inputs(self) -> dict[str, Any]:
        """The estimator's inputs as the ``inputs`` JSON column."""
        return {"caller_waits": list(self.caller_waits), "busy_elapsed": list(self.busy_elapsed),
                "talk": [list(p) for p in self.talk], "waits": [list(p) for p in self.waits],
                "rings": [list(p) for p in self.rings]}

    @classmethod
    def from_row(cls, row: Any, age: float) -> "Snapshot":
        inputs = row.inputs or {}

        def pairs(key: str) -> tuple[tuple[float, float], ...]:
            return tuple((float(a), float(v)) for a, v in inputs.get(key, ()))
        return cls(row.node, row.queue, row.callers, row.logged_in, row.serving, row.available,
                   row.busy, row.paused, row.longest_wait, row.answered, row.abandoned,
                   row.asterisk_holdtime,
                   tuple(float(w) for w in inputs.get("caller_waits", ())),
                   tuple(float(e) for e in inputs.get("busy_elapsed", ())),
                   pairs("talk"), pairs("waits"), pairs("rings"), age=max(0.0, age))

    def signature(self) -> tuple:
        """What changes only with an event (not with time passing): a snapshot whose
        signature is unchanged need not be written again before the heartbeat."""
        return (self.callers, self.logged_in, self.serving, self.available, self.busy,
                self.paused, self.answered, self.abandoned, self.asterisk_holdtime,
                len(self.talk), len(self.waits), len(self.rings))


def _ago(history: _History, now: float) -> tuple[tuple[float, float], ...]:
    return tuple((round(now - t, 3), v) for t, v in history.seen(now))


def take(q: QueueState, node: str, now: float) -> Snapshot:
    """The snapshot of queue ``q`` of ``node`` at ``now`` (the monitor's clock)."""
    members = list(q.members.values())
    serving = [m for m in members if m.serving]
    busy = [m for m in serving if m.busy]
    waits = tuple(now - c.joined for c in q.callers)
    return Snapshot(
        node=node, queue=q.name, callers=len(q.callers), logged_in=len(members),
        serving=len(serving), available=len(serving) - len(busy), busy=len(busy),
        paused=sum(1 for m in members if m.paused), longest_wait=max(waits, default=0.0),
        answered=q.answered, abandoned=q.abandoned, asterisk_holdtime=q.asterisk_holdtime,
        caller_waits=waits,
        busy_elapsed=tuple(now - m.talking_since if m.talking_since is not None else 0.0
                           for m in busy),
        talk=_ago(q.talk, now), waits=_ago(q.waits, now), rings=_ago(q.rings, now))


def _history(snaps: Sequence[Snapshot], key: str) -> list[float]:
    """The values of every snapshot's history ``key``, oldest first, within the hour."""
    seen = [(ago + s.age, v) for s in snaps for ago, v in getattr(s, key)]
    return [v for ago, v in sorted(seen, key=lambda p: -p[0]) if ago <= HISTORY_SECONDS]


@dataclass(frozen=True)
class Merged:
    """The estimator's inputs of a queue over every node."""

    idle: int
    busy_elapsed: list[float]
    talk: list[float]
    waits: list[float]
    rings: list[float]

    def estimate(self, position: int) -> Estimate:
        return estimate_wait(position, self.idle, self.busy_elapsed, self.talk, self.waits,
                             self.rings)


def merge(snaps: Sequence[Snapshot]) -> Merged:
    return Merged(idle=sum(s.available for s in snaps),
                  busy_elapsed=[e + s.age for s in snaps for e in s.busy_elapsed],
                  talk=_history(snaps, "talk"), waits=_history(snaps, "waits"),
                  rings=_history(snaps, "rings"))


def merged_status(name: str, snapshots: Iterable[Snapshot]) -> QueueStatus:
    """The status of queue ``name`` over the nodes of ``snapshots`` (one per node)."""
    snaps = [s for s in snapshots if s.queue == name]
    m = merge(snaps)
    waits = sorted((w + s.age for s in snaps for w in s.caller_waits), reverse=True)
    holds = [s.asterisk_holdtime for s in snaps if s.asterisk_holdtime is not None]
    callers = sum(s.callers for s in snaps)
    return QueueStatus(
        queue=name, callers_waiting=callers,
        longest_wait_seconds=round(max((s.longest_wait + s.age for s in snaps if s.callers),
                                       default=0.0), 1),
        agents=Agents(logged_in=sum(s.logged_in for s in snaps),
                      serving=sum(s.serving for s in snaps),
                      available=sum(s.available for s in snaps),
                      busy=sum(s.busy for s in snaps), paused=sum(s.paused for s in snaps)),
        answered=sum(s.answered for s in snaps), abandoned=sum(s.abandoned for s in snaps),
        estimate_new_caller=wait_model(m.estimate(callers + 1)),
        positions=[WaitingCaller(position=i, waiting_seconds=round(w, 1),
                                 estimate=wait_model(m.estimate(i)))
                   for i, w in enumerate(waits, 1)],
        asterisk_holdtime_seconds=max(holds) if holds else None)
