"""The AMI shell of the queue model: app_queue's events into :class:`QueueBoard`, and a
resync from ``QueueStatus`` after every (re)login (events missed while disconnected are
lost; the snapshot is not). Run :meth:`QueueMonitor.run` in the engine's TaskGroup.

Without AMI (``engine.ami.password`` unset) there is nothing to follow: ``tracking`` is
False and the routes say so instead of showing empty queues.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from ..ami import AmiClient, AmiError
from .queues import QUEUE_EVENTS, QueueBoard, QueueState
from .schemas import Agents, CallQueue, QueueStatus, WaitEstimate, WaitingCaller
from .signal import ChangeSignal
from .snapshot import Snapshot, take, wait_model

log = logging.getLogger("ivr_engine.livedata")

#: AMI event classes app_queue's events come in
EVENT_CLASSES = "agent"


class QueueMonitor:
    def __init__(self, ami: AmiClient | None, clock: Callable[[], float] = time.monotonic,
                 node: str = "asterisk"):
        self.ami, self.clock, self.node = ami, clock, node
        #: told of every change (the queue, or None: all), e.g. livedata/shared.py
        self.watchers: list[Callable[[str | None], None]] = []
        self.board = QueueBoard()
        self.synced = asyncio.Event()  # a QueueStatus snapshot was read since the last login
        self._login = asyncio.Event()
        self._signal = ChangeSignal()
        self._closed = False
        if ami is not None:
            ami.listen(EVENT_CLASSES, QUEUE_EVENTS, self._on_event, self._on_login)

    @property
    def tracking(self) -> bool:
        return self.ami is not None and self.ami.connected and self.synced.is_set() \
            and not self._closed

    def _on_login(self) -> None:
        self.synced.clear()
        self._login.set()

    def _on_event(self, manager: Any, message: Any) -> None:
        self.board.apply(message, self.clock())
        queue = message.get("Queue")
        if queue:  # the board ignores an event that names no queue: nothing changed
            self.touch(str(queue))

    def touch(self, queue: str | None = None) -> None:
        """Wake whoever waits on :meth:`changed` for ``queue`` (the event streams of that
        queue); None: every queue (a resync, the end)."""
        self._signal.touch(queue)
        for watcher in self.watchers:
            watcher(queue)

    def changed(self, queue: str | None = None) -> asyncio.Event:
        """Set at the next change of ``queue`` (None: of any queue)."""
        return self._signal.changed(queue)

    async def run(self) -> None:
        """Follow the queues until cancelled (a child of the engine's supervisor: a failed
        resync is logged, counted and tried again after a backoff)."""
        self._closed = False
        if self.ami is not None and self.ami.connected and not self.synced.is_set():
            self._login.set()  # restarted after a failed resync: try it again
        try:
            await self._follow()
        finally:  # the engine stops: event streams end now, not at the server's timeout
            self._closed = True
            self.touch()

    async def _follow(self) -> None:
        if self.ami is None:
            await asyncio.Event().wait()
        while True:
            await self._login.wait()
            self._login.clear()
            try:
                messages = await self.ami.event_list(  # type: ignore[union-attr]
                    {"Action": "QueueStatus"})
            except (AmiError, TimeoutError, OSError) as exc:
                raise AmiError(f"QueueStatus after the AMI login failed: {exc}") from exc
            self.board.resync(messages, self.clock())
            self.synced.set()
            self.touch()
            log.info("queues resynced from QueueStatus: %d queue(s)", len(self.board.queues))

    # ------------------------------------------------------------------ views

    def status(self, name: str) -> QueueStatus:
        now = self.clock()
        q = self.board.queues.get(name) or QueueState(name)
        members = list(q.members.values())
        serving = [m for m in members if m.serving]
        busy = sum(1 for m in serving if m.busy)
        positions = [WaitingCaller(position=i, waiting_seconds=round(now - c.joined, 1),
                                   estimate=wait_model(q.estimate(i, now)))
                     for i, c in enumerate(q.callers, 1)]
        return QueueStatus(
            queue=name, callers_waiting=len(q.callers),
            longest_wait_seconds=round(max((now - c.joined for c in q.callers), default=0.0), 1),
            agents=Agents(logged_in=len(members), serving=len(serving),
                          available=len(serving) - busy, busy=busy,
                          paused=sum(1 for m in members if m.paused)),
            answered=q.answered, abandoned=q.abandoned,
            estimate_new_caller=wait_model(q.estimate(len(q.callers) + 1, now)),
            positions=positions, asterisk_holdtime_seconds=q.asterisk_holdtime)

    def snapshots(self) -> list[Snapshot]:
        """A snapshot of every queue this node's app_queue told of (none while not
        tracking: the board may be stale)."""
        if not self.tracking:
            return []
        now = self.clock()
        return [take(q, self.node, now) for q in self.board.queues.values()]

    def wait_of(self, name: str) -> WaitEstimate | None:
        """A new caller's wait in queue ``name`` (None while not tracking)."""
        if not self.tracking:
            return None
        q = self.board.queues.get(name) or QueueState(name)
        return wait_model(q.estimate(len(q.callers) + 1, self.clock()))

    def call_queue(self, uniqueid: str) -> CallQueue | None:
        """Where the call with this channel id waits, if it waits in a queue."""
        found = self.board.find_caller(uniqueid) if self.tracking else None
        if found is None:
            return None
        q, pos = found
        now = self.clock()
        caller = q.callers[pos - 1]
        return CallQueue(queue=q.name, position=pos, waiting_seconds=round(now - caller.joined, 1),
                         estimate=wait_model(q.estimate(pos, now)))
