"""The live queues, as app_queue reports them over AMI. Pure: events in, state out.

Per queue: the callers waiting in order (position 1 is answered next), the members (agents)
with their state, and the recent history the estimator reads — talk times (AgentComplete),
answered callers' waits and hand-over times (free agent and waiting caller → answer), all
on the engine's clock (AMI's own figures are whole seconds). ``apply`` takes one AMI
event (a mapping of its headers) with the time it arrived (monotonic seconds);
``resync`` rebuilds the callers and members from a ``QueueStatus`` answer (QueueParams,
QueueMember, QueueEntry), keeping the history, after every (re)connect.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .estimate import Estimate, estimate_wait

HISTORY = 50  # samples kept per queue
HISTORY_SECONDS = 3600.0  # older samples are dropped: the queue of an hour ago is another one

# Asterisk device states (QueueMemberStatus "Status")
NOT_INUSE, INUSE, BUSY, INVALID, UNAVAILABLE, RINGING, RINGINUSE, ONHOLD = 1, 2, 3, 4, 5, 6, 7, 8  # noqa: E501
_BUSY = {INUSE, BUSY, RINGINUSE, ONHOLD}
_OUT = {INVALID, UNAVAILABLE}

QUEUE_EVENTS = ("QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon", "AgentConnect",
                "AgentComplete", "AgentRingNoAnswer", "QueueMemberStatus", "QueueMemberAdded",
                "QueueMemberRemoved", "QueueMemberPause", "QueueParams")


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


def _num(value: Any) -> float | None:
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return None


@dataclass
class Caller:
    uniqueid: str
    channel: str
    joined: float
    order: int = 0  # Asterisk's position when read from QueueStatus


@dataclass
class Member:
    interface: str
    name: str = ""
    status: int = NOT_INUSE
    paused: bool = False
    in_call: bool = False
    talking_since: float | None = None
    free_since: float | None = None  # when it last became free (added, or a call ended)

    @property
    def serving(self) -> bool:
        return not self.paused and self.status not in _OUT

    @property
    def busy(self) -> bool:
        # a ringing member is about to take the caller at the head: free for the estimate
        return self.in_call or self.talking_since is not None or self.status in _BUSY


class _History:
    def __init__(self) -> None:
        self._items: deque[tuple[float, float]] = deque(maxlen=HISTORY)

    def add(self, now: float, value: float) -> None:
        self._items.append((now, value))

    def values(self, now: float) -> list[float]:
        return [v for _, v in self.seen(now)]

    def seen(self, now: float) -> list[tuple[float, float]]:
        """(when, value) of the samples of the last hour, oldest first."""
        while self._items and now - self._items[0][0] > HISTORY_SECONDS:
            self._items.popleft()
        return list(self._items)


@dataclass
class QueueState:
    name: str
    callers: list[Caller] = field(default_factory=list)  # position 1 first
    members: dict[str, Member] = field(default_factory=dict)
    talk: _History = field(default_factory=_History)
    waits: _History = field(default_factory=_History)
    rings: _History = field(default_factory=_History)
    answered: int = 0
    abandoned: int = 0
    asterisk_holdtime: int | None = None  # QueueParams Holdtime (app_queue's running average)
    left: dict[str, float] = field(default_factory=dict)  # uniqueid -> wait, just left

    def position(self, uniqueid: str) -> int | None:
        for i, c in enumerate(self.callers, 1):
            if c.uniqueid == uniqueid:
                return i
        return None

    def _remove(self, uniqueid: str) -> Caller | None:
        for i, c in enumerate(self.callers):
            if c.uniqueid == uniqueid:
                return self.callers.pop(i)
        return None

    def estimate(self, position: int, now: float) -> Estimate:
        serving = [m for m in self.members.values() if m.serving]
        busy = [now - m.talking_since if m.talking_since is not None else 0.0
                for m in serving if m.busy]
        idle = sum(1 for m in serving if not m.busy)
        return estimate_wait(position, idle, busy, self.talk.values(now),
                             self.waits.values(now), self.rings.values(now))


class QueueBoard:
    """Every queue app_queue told us about (created on first mention)."""

    def __init__(self) -> None:
        self.queues: dict[str, QueueState] = {}

    def queue(self, name: str) -> QueueState:
        q = self.queues.get(name)
        if q is None:
            q = self.queues[name] = QueueState(name)
        return q

    def find_caller(self, uniqueid: str) -> tuple[QueueState, int] | None:
        for q in self.queues.values():
            pos = q.position(uniqueid)
            if pos is not None:
                return q, pos
        return None

    def apply(self, ev: Mapping[str, Any], now: float) -> None:
        kind, name = ev.get("Event", ""), ev.get("Queue")
        if kind not in QUEUE_EVENTS or not name:
            return
        q = self.queue(str(name))
        uid = str(ev.get("Uniqueid", ""))
        iface = str(ev.get("Interface") or ev.get("Location") or "")
        if kind == "QueueCallerJoin":
            if q.position(uid) is None:
                pos = max(1, min(_int(ev.get("Position"), len(q.callers) + 1),
                                 len(q.callers) + 1))
                q.callers.insert(pos - 1, Caller(uid, str(ev.get("Channel", "")), now))
        elif kind in ("QueueCallerLeave", "QueueCallerAbandon"):
            # Asterisk sends the Leave of an answered caller before its AgentConnect
            left = q._remove(uid)
            if left is not None:
                q.left[uid] = now - left.joined
                while len(q.left) > HISTORY:
                    q.left.pop(next(iter(q.left)))
            if kind == "QueueCallerAbandon":
                q.abandoned += 1
        elif kind == "AgentConnect":
            q.answered += 1
            # our own clock where we saw the caller join (AMI gives whole seconds)
            waited = q.left.pop(uid, None)
            hold = waited if waited is not None else _num(ev.get("HoldTime"))
            member = q.members.setdefault(iface, Member(iface))
            # the hand-over: from when both the caller waited and the agent was free, to the
            # answer (ringing, and app_queue noticing the free agent: up to its `retry`)
            ring = _num(ev.get("RingTime"))
            if waited is not None and member.free_since is not None:
                ring = now - max(now - waited, member.free_since)
            if hold is not None:
                q.waits.add(now, hold)
            if ring is not None:
                q.rings.add(now, ring)
            q._remove(uid)
            member.talking_since, member.free_since = now, None
        elif kind == "AgentComplete":
            member = q.members.get(iface)
            since = member.talking_since if member is not None else None
            talk = now - since if since is not None else _num(ev.get("TalkTime"))
            if talk is not None:
                q.talk.add(now, talk)
            if member is not None:
                member.talking_since, member.free_since = None, now
        elif kind == "QueueMemberRemoved":
            q.members.pop(iface, None)
        elif kind in ("QueueMemberStatus", "QueueMemberAdded", "QueueMemberPause"):
            self._member(q, iface, ev, now)
        elif kind == "QueueParams":
            q.asterisk_holdtime = _int(ev.get("Holdtime"), 0)

    @staticmethod
    def _member(q: QueueState, iface: str, ev: Mapping[str, Any], now: float) -> None:
        if not iface:
            return
        m = q.members.get(iface)
        if m is None:
            m = q.members[iface] = Member(iface, free_since=now)
        m.name = str(ev.get("MemberName") or ev.get("Name") or m.name)
        if "Status" in ev:
            m.status = _int(ev.get("Status"), m.status)
        if "Paused" in ev:
            m.paused = str(ev.get("Paused")).strip() in ("1", "true", "yes")
        if "InCall" in ev:
            m.in_call = str(ev.get("InCall")).strip() == "1"

    def resync(self, messages: Iterable[Mapping[str, Any]], now: float) -> None:
        """Rebuild callers and members from a QueueStatus answer; the history stays."""
        seen: set[str] = set()
        for ev in messages:
            kind, name = ev.get("Event", ""), ev.get("Queue")
            if not name or kind not in ("QueueParams", "QueueMember", "QueueEntry"):
                continue
            q = self.queue(str(name))
            if name not in seen:
                seen.add(str(name))
                q.callers, q.members = [], {}
            if kind == "QueueParams":
                q.asterisk_holdtime = _int(ev.get("Holdtime"), 0)
            elif kind == "QueueMember":
                self._member(q, str(ev.get("Interface") or ev.get("Location") or ""), ev, now)
            else:
                wait = _num(ev.get("Wait")) or 0.0
                q.callers.append(Caller(str(ev.get("Uniqueid", "")), str(ev.get("Channel", "")),
                                        now - wait, _int(ev.get("Position"), 1_000_000)))
                q.callers.sort(key=lambda c: c.order)
        for name, q in self.queues.items():
            if name not in seen:  # gone from Asterisk since
                q.callers, q.members = [], {}
