"""The engines' signals (issue 18): one dedicated asyncpg connection per engine, outside the
pool, that LISTENs on ``queue_changed`` (run by the supervisor as ``queue-listener``).

At each (re)connect: ``LISTEN``, then a resync — every snapshot younger than
``STALE_SECONDS`` read from ``queue_snapshots`` replaces the cache of the other nodes (a
NOTIFY sent while the connection was down is not missed: its row is read). Then each
notification (payload ``<node>\\t<queue>``, the writer's transaction committed) reads that
row and wakes that queue's event streams at once; every ``HEARTBEAT_SECONDS`` without
one, a resync. When the connection drops (the server restarted, the backend terminated, a
query failed) the cache is emptied — the engine answers from its own nodes — and the loop
raises: the supervisor connects again after its backoff.

``call_ended`` is not listened to: nothing needs it (``/v1/admin/calls`` asks the other
engines when it is called and keeps no cache; a call's record says when it ended).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from types import SimpleNamespace
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from ..store import async_url

from .shared import CHANNEL, HEARTBEAT_SECONDS, STALE_SECONDS, SharedQueues
from .snapshot import Snapshot

log = logging.getLogger("ivr_engine.livedata")

CONNECT_SECONDS = 5.0
APPLICATION = "ivr-queue-listener"  # pg_stat_activity.application_name of the connection
_COLUMNS = ("node, queue, callers, logged_in, serving, available, busy, paused, longest_wait, "
            "answered, abandoned, asterisk_holdtime, inputs::text AS inputs, "
            "extract(epoch FROM now() - updated_at)::float8 AS age")
_FRESH = (f"SELECT {_COLUMNS} FROM queue_snapshots "
          "WHERE updated_at > now() - make_interval(secs => $1)")
_ONE = _FRESH + " AND node = $2 AND queue = $3"


def dsn_of(database_url: str) -> str:
    """asyncpg's DSN for the engine's PostgreSQL ``database_url``."""
    return make_url(async_url(database_url)).set(drivername="postgresql").render_as_string(
        hide_password=False)


def _snapshot(record: Any) -> Snapshot:
    row = dict(record)
    row["inputs"] = json.loads(row["inputs"]) if row["inputs"] else {}
    return Snapshot.from_row(SimpleNamespace(**row), float(row["age"]))


class QueueListener:
    def __init__(self, dsn: str, queues: SharedQueues, *, command_timeout: float = 5.0,
                 refresh_seconds: float = HEARTBEAT_SECONDS,
                 stale_seconds: float = STALE_SECONDS):
        self.dsn, self.queues = dsn, queues
        self.command_timeout, self.refresh_seconds = command_timeout, refresh_seconds
        self.stale_seconds = stale_seconds
        self.connected = False
        self.connects = 0  # successful (re)connects, each followed by a resync
        self.notified = 0  # notifications of other nodes' snapshots
        self.last_notified: float | None = None  # monotonic time of the last one read

    async def _resync(self, conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(_FRESH, self.stale_seconds)
        self.queues.put([_snapshot(r) for r in rows], replace=True)

    async def run(self) -> None:
        conn = await asyncio.wait_for(asyncpg.connect(
            self.dsn, command_timeout=self.command_timeout,
            server_settings={"application_name": APPLICATION}), CONNECT_SECONDS)
        pending: set[tuple[str, str]] = set()
        wake = asyncio.Event()
        lost: list[str] = []

        def on_notify(_c: Any, _pid: int, _channel: str, payload: str) -> None:
            node, _, queue = payload.partition("\t")
            if node not in self.queues.local:
                pending.add((node, queue))
                wake.set()

        def on_lost(_c: Any) -> None:
            lost.append("closed")
            wake.set()

        conn.add_termination_listener(on_lost)
        try:
            await conn.add_listener(CHANNEL, on_notify)  # LISTEN queue_changed
            await self._resync(conn)
            self.connected, self.connects = True, self.connects + 1
            log.info("queue-listener: listening on %s (connect %d), %d snapshot(s) of other "
                     "nodes", CHANNEL, self.connects, len(self.queues.others()))
            while True:
                try:
                    await asyncio.wait_for(wake.wait(), self.refresh_seconds)
                except TimeoutError:
                    await self._resync(conn)
                    continue
                wake.clear()
                if lost or conn.is_closed():
                    raise ConnectionError("the LISTEN connection to the database was closed")
                keys = list(pending)
                pending.clear()
                for node, queue in keys:
                    rows = await conn.fetch(_ONE, self.stale_seconds, node, queue)
                    self.queues.put([_snapshot(r) for r in rows])
                    self.notified += 1
                    self.last_notified = time.monotonic()
        finally:
            self.connected = False
            self.queues.drop()  # the other nodes cannot be known now: own nodes only
            if not conn.is_closed():
                conn.terminate()
