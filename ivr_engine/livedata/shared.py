"""Queues over every node (issue 18): what the livedata routes, the menus, the call detail and
the console read instead of one QueueMonitor.

- **One QueueMonitor per node** the engine holds (each on that node's AMI). Not one monitor
  fed by all: a queue of one name on two nodes is two app_queue queues — their own callers'
  positions, their own members — and a monitor's board keys queues by name only; a node's
  AMI also logs in, drops and resyncs on its own.
- **Snapshots** (PostgreSQL only): the supervised ``queue-snapshots`` loop
  (:func:`write_loop`) writes each queue of each node it follows to ``queue_snapshots``
  when it changed, at most once a second per queue, and every ``HEARTBEAT_SECONDS`` while
  nothing changes (so a quiet queue's row stays fresh), with a ``queue_changed`` NOTIFY in
  the same transaction. The other engines' snapshots come in through ``notify.py``.
- **The answer** (:class:`SharedQueues`): the status of a queue is
  ``snapshot.merged_status`` over this engine's nodes (live, from their monitors) and the
  other nodes' snapshots younger than ``STALE_SECONDS`` (the database's clock). With no
  other node's snapshot (SQLite, one engine, or the database away) and one node it is that
  node's monitor's answer, unchanged. The routes never wait for the database: the other
  nodes' snapshots are a cache the listener fills, emptied when its connection drops —
  the engine then answers from its own nodes (nothing that is not a call stops a call).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import func, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..store.models import QueueSnapshotRow
from .monitor import QueueMonitor
from .schemas import CallQueue, QueueStatus, WaitEstimate
from .signal import ChangeSignal
from .snapshot import Snapshot, merge, merged_status, wait_model

log = logging.getLogger("ivr_engine.livedata")

CHANNEL = "queue_changed"  # NOTIFY payload: "<node>\t<queue>"
MIN_INTERVAL_SECONDS = 1.0  # a queue's row is written at most once a second
HEARTBEAT_SECONDS = 5.0  # ... and at least this often while its node is followed
STALE_SECONDS = 15.0  # an older snapshot is ignored (its writer stopped following it)


class SnapshotRepo:
    """``queue_snapshots`` (PostgreSQL): written with ``now()`` and a NOTIFY per row."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def write(self, engine: str, snaps: Sequence[Snapshot]) -> None:
        async with self._sessions() as s, s.begin():
            for snap in snaps:
                values = {f: getattr(snap, f) for f in (
                    "callers", "logged_in", "serving", "available", "busy", "paused",
                    "longest_wait", "answered", "abandoned", "asterisk_holdtime")}
                values.update(inputs=snap.inputs(), engine=engine, updated_at=func.now())
                stmt = postgresql.insert(QueueSnapshotRow).values(
                    node=snap.node, queue=snap.queue, **values)
                await s.execute(stmt.on_conflict_do_update(
                    index_elements=[QueueSnapshotRow.node, QueueSnapshotRow.queue],
                    set_=values))
                await s.execute(text("SELECT pg_notify(:c, :p)"),
                                {"c": CHANNEL, "p": f"{snap.node}\t{snap.queue}"})

    async def fresh(self, stale_seconds: float = STALE_SECONDS) -> list[Snapshot]:
        """Every snapshot younger than ``stale_seconds`` (each with its age)."""
        age = func.extract("epoch", func.now() - QueueSnapshotRow.updated_at)
        async with self._sessions() as s:
            rows = (await s.execute(select(QueueSnapshotRow, age).where(
                age < stale_seconds))).all()
        return [Snapshot.from_row(r, float(a)) for r, a in rows]


class SharedQueues:
    """The queues of this engine's nodes (monitors) and of the other nodes (snapshots),
    with QueueMonitor's interface (``tracking``, ``status``, ``wait_of``, ``call_queue``,
    ``changed``)."""

    def __init__(self, monitors: Sequence[QueueMonitor], *,
                 stale_seconds: float = STALE_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.monitors, self.stale_seconds, self.clock = list(monitors), stale_seconds, clock
        self.local = {m.node for m in self.monitors}
        self._remote: dict[tuple[str, str], tuple[Snapshot, float]] = {}
        self._signal = ChangeSignal()
        for m in self.monitors:
            m.watchers.append(self.touch)

    # ------------------------------------------------------------ the other nodes' cache

    def put(self, snaps: Iterable[Snapshot], *, replace: bool = False) -> None:
        """Snapshots read from the database (this engine's own nodes are left out);
        ``replace``: they are all there is (a resync). Wakes the streams of their queues."""
        now, touched = self.clock(), set()
        if replace:
            touched = {q for _, q in self._remote}
            self._remote = {}
        for s in snaps:
            if s.node not in self.local:
                self._remote[(s.node, s.queue)] = (s, now)
                touched.add(s.queue)
        for queue in touched:
            self.touch(queue)

    def drop(self) -> None:
        """Forget the other nodes (their source is away): own nodes only from now on."""
        self.put((), replace=True)

    def others(self, queue: str | None = None) -> list[Snapshot]:
        """The other nodes' snapshots still fresh, aged to now."""
        now, out = self.clock(), []
        for (_, q), (snap, got) in self._remote.items():
            age = snap.age + now - got
            if (queue is None or q == queue) and age < self.stale_seconds:
                out.append(dataclasses.replace(snap, age=age))
        return out

    # ------------------------------------------------------------ QueueMonitor's interface

    @property
    def tracking(self) -> bool:
        return any(m.tracking for m in self.monitors) or bool(self.others())

    def _sources(self, name: str) -> tuple[list[QueueMonitor], list[Snapshot]]:
        return [m for m in self.monitors if m.tracking], self.others(name)

    def _snapshots(self, local: list[QueueMonitor], remote: list[Snapshot],
                   name: str) -> list[Snapshot]:
        return [s for m in local for s in m.snapshots() if s.queue == name] + remote

    def status(self, name: str) -> QueueStatus:
        local, remote = self._sources(name)
        if not remote and len(local) == 1:
            return local[0].status(name)  # one node: exactly its monitor's answer
        return merged_status(name, self._snapshots(local, remote, name))

    def wait_of(self, name: str) -> WaitEstimate | None:
        if not self.tracking:
            return None
        local, remote = self._sources(name)
        if not remote and len(local) == 1:
            return local[0].wait_of(name)
        snaps = self._snapshots(local, remote, name)
        return wait_model(merge(snaps).estimate(sum(s.callers for s in snaps) + 1))

    def call_queue(self, uniqueid: str) -> CallQueue | None:
        """Where a call of this engine's nodes waits (its node's position and estimate)."""
        for m in self.monitors:
            found = m.call_queue(uniqueid)
            if found is not None:
                return found
        return None

    def touch(self, queue: str | None = None) -> None:
        self._signal.touch(queue)

    def changed(self, queue: str | None = None) -> asyncio.Event:
        return self._signal.changed(queue)


async def write_loop(queues: SharedQueues, repo: SnapshotRepo, engine: str, *,
                     min_interval: float = MIN_INTERVAL_SECONDS,
                     heartbeat: float = HEARTBEAT_SECONDS,
                     clock: Callable[[], float] = time.monotonic) -> None:
    """The supervised ``queue-snapshots`` loop: this engine's nodes' queues into
    ``queue_snapshots`` (a failed write raises: the supervisor restarts it after a
    backoff, and the rows age out meanwhile)."""
    last: dict[tuple[str, str], tuple[tuple, float]] = {}
    while True:
        changed = queues.changed(None)
        now = clock()
        due: list[Snapshot] = []
        next_at = now + heartbeat
        for m in queues.monitors:
            for snap in m.snapshots():
                sig, at = last.get((snap.node, snap.queue), (None, -heartbeat))
                if sig == snap.signature() and now - at < heartbeat:
                    next_at = min(next_at, at + heartbeat)
                elif now - at >= min_interval:
                    due.append(snap)
                else:  # changed, but written less than a second ago
                    next_at = min(next_at, at + min_interval)
        if due:
            await repo.write(engine, due)
            for snap in due:
                last[(snap.node, snap.queue)] = (snap.signature(), now)
            continue  # look again at once: what changed while writing
        try:
            await asyncio.wait_for(changed.wait(), max(0.01, next_at - clock()))
        except TimeoutError:
            pass


def follow_queues(nodes: Sequence[Any], store: Any, engine: str, background: Any,
                  listener: Callable[[SharedQueues], Any]) -> SharedQueues:
    """The engine's queues: a monitor per node (supervised as ``queues``, or
    ``queues-<node>`` with several nodes), and on PostgreSQL the snapshot writer
    (``queue-snapshots``) and ``listener(queues)``'s run (``queue-listener``)."""
    monitors = [QueueMonitor(n.ami, node=n.name) for n in nodes]
    queues = SharedQueues(monitors)
    for m in monitors:
        background.add("queues" if len(monitors) == 1 else f"queues-{m.node}", m.run)
    if store.db.dialect == "postgresql":
        repo = SnapshotRepo(store.db.sessions)
        background.add("queue-snapshots", lambda: write_loop(queues, repo, engine))
        background.add("queue-listener", listener(queues).run)
    return queues
