"""Queues over two engines on one PostgreSQL (issue 18; livedata/shared.py, notify.py):
engine a's snapshot writer and engine b's LISTEN connection, each engine with its own node's
QueueMonitor (fed app_queue's events by the test: Asterisk-free). A caller joining on node a
is counted by engine b within milliseconds (NOTIFY), writes are throttled to one a second
per queue, a terminated LISTEN backend is reconnected and resynced from the table (a change
made in the gap is not missed), and with the database stopped engine b answers from its own
node. A throw-away cluster of the test's own (tests/support/pgcluster.py)."""

from __future__ import annotations

import asyncio
import statistics
import time
from contextlib import asynccontextmanager
from types import SimpleNamespace

import asyncpg
import pytest
from sqlalchemy import text

from ivr_engine.livedata.monitor import QueueMonitor
from ivr_engine.livedata.notify import APPLICATION, QueueListener, dsn_of
from ivr_engine.livedata.shared import SharedQueues, SnapshotRepo, write_loop
from ivr_engine.repositories import Store
from ivr_engine.supervisor import RestartPolicy, Supervisor
from tests.support import pgcluster

FAST = RestartPolicy(backoff_seconds=0.1, backoff_max_seconds=0.5, jitter=0.0)


@pytest.fixture(scope="module")
async def cluster():
    async with pgcluster.upgraded("ivr-pg-queues-") as made:
        yield made


def node_monitor(node: str) -> QueueMonitor:
    m = QueueMonitor(SimpleNamespace(connected=True, listen=lambda *a: None),  # type: ignore[arg-type]
                     node=node)
    m.synced.set()
    return m


def event(m: QueueMonitor, kind: str, **fields: str) -> None:
    m._on_event(None, {"Event": kind, "Queue": "sales", **fields})  # as AMI delivers it


async def until(predicate, seconds: float = 5.0, what: str = "") -> float:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < seconds, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.005)
    return time.monotonic() - start


@asynccontextmanager
async def two_engines(url: str):
    """Engine a (node-a, snapshot writer) and engine b (node-b, listener), each on its own
    store, their loops under a supervisor as in main.py."""
    sa, sb = await Store.open(url), await Store.open(url)
    async with sa.db.engine.begin() as conn:
        await conn.execute(text("TRUNCATE queue_snapshots"))
    a, b = node_monitor("node-a"), node_monitor("node-b")
    qa, qb = SharedQueues([a]), SharedQueues([b])
    listener = QueueListener(dsn_of(url), qb, refresh_seconds=5.0)
    sup = Supervisor(FAST)
    sup.add("queue-snapshots", lambda: write_loop(qa, SnapshotRepo(sa.db.sessions), "a"))
    sup.add("queue-listener", listener.run)
    for m in (a, b):
        event(m, "QueueMemberAdded", Interface=f"Local/{m.node}@x", Status="1", Paused="0")
    runner = asyncio.create_task(sup.run())
    try:
        await until(lambda: listener.connected, what="listener connected")
        yield SimpleNamespace(a=a, b=b, qa=qa, qb=qb, listener=listener, sup=sup)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await sa.close()
        await sb.close()


async def test_a_caller_on_node_a_is_counted_by_engine_b_at_once(cluster):
    _, url = cluster
    async with two_engines(url) as e:
        await until(lambda: e.qb.status("sales").agents.logged_in == 2, what="node a's row")
        assert e.qb.status("sales").callers_waiting == 0
        latencies = []
        for i in range(8):
            await asyncio.sleep(1.05)  # past the writer's once-a-second limit
            t0 = time.monotonic()
            event(e.a, "QueueCallerJoin", Uniqueid=f"u{i}", Position=str(i + 1))
            while e.qb.status("sales").callers_waiting != i + 1:  # b's "sales" streams woken
                await asyncio.wait_for(e.qb.changed("sales").wait(), 2.0)
            latencies.append(time.monotonic() - t0)
        s = e.qb.status("sales")
        assert s.agents.logged_in == 2 and s.agents.available == 2
        assert s.positions[0].waiting_seconds >= 7.0  # node a's first caller, aged
        p50 = statistics.median(latencies) * 1000
        print(f"\nNOTIFY: join on node a -> engine b's stream woken: p50 {p50:.1f} ms, "
              f"max {max(latencies) * 1000:.1f} ms over {len(latencies)}")
        assert max(latencies) < 1.0
        # engine a answers for node b's queue too, and its own caller counts once
        event(e.b, "QueueCallerJoin", Uniqueid="b1", Position="1")
        assert e.qb.status("sales").callers_waiting == 9  # node b's own: live, no database
        # throttled: 30 events in 0.3 s on node a are at most a few writes
        before = e.listener.notified
        for i in range(30):
            event(e.a, "QueueCallerJoin", Uniqueid=f"burst{i}", Position="99")
            await asyncio.sleep(0.01)
        await until(lambda: e.qb.status("sales").callers_waiting == 39, what="the burst")
        assert e.listener.notified - before <= 2  # 1 a second per queue


async def test_the_listener_reconnects_and_resyncs_after_its_backend_is_killed(cluster):
    _, url = cluster
    async with two_engines(url) as e:
        event(e.a, "QueueCallerJoin", Uniqueid="u1", Position="1")
        await until(lambda: e.qb.status("sales").callers_waiting == 1, what="first caller")
        admin = await asyncpg.connect(dsn_of(url))
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1", APPLICATION)
            assert killed == 1
            await until(lambda: not e.listener.connected, what="the loss seen")
            # engine b now answers from its own node only
            assert e.qb.status("sales").callers_waiting == 0
            # a change on node a while b's listener is down: its NOTIFY is lost...
            event(e.a, "QueueCallerJoin", Uniqueid="u2", Position="2")
            # ... the resync after the reconnect reads it from the table
            took = await until(lambda: e.qb.status("sales").callers_waiting == 2, what="resync")
            assert e.listener.connects == 2
            print(f"\nLISTEN backend killed -> resynced in {took:.2f} s (supervisor backoff "
                  "0.1 s)")
            assert e.sup.children["queue-listener"].total_failures == 1
        finally:
            await admin.close()


async def test_the_database_stopped_engine_b_answers_from_its_own_node(cluster):
    root, url = cluster
    async with two_engines(url) as e:
        event(e.a, "QueueCallerJoin", Uniqueid="u1", Position="1")
        event(e.b, "QueueCallerJoin", Uniqueid="b1", Position="1")
        await until(lambda: e.qb.status("sales").callers_waiting == 2, what="both nodes")
        await asyncio.to_thread(pgcluster.halt, root)
        try:
            await until(lambda: not e.listener.connected, 10, "the database away seen")
            # node a's caller is gone from engine b's answer (its own node's only); compared
            # field by field: the waits in the two answers are read a moment apart
            own, merged = e.b.status("sales"), e.qb.status("sales")
            assert merged.callers_waiting == own.callers_waiting == 1
            assert [p.position for p in merged.positions] == [p.position for p in own.positions]
            assert merged.agents == own.agents
            # and node a's engine keeps its own answer, its writer failing meanwhile
            event(e.a, "QueueCallerJoin", Uniqueid="u2", Position="2")
            await until(lambda: e.sup.children["queue-snapshots"].total_failures >= 1, 10,
                        "the writer's failure")
            assert e.qa.status("sales").callers_waiting == 2
        finally:
            await asyncio.to_thread(pgcluster.restart, root)
        # back: both reconnect (supervisor), node a's rows rewritten, b counts them again
        await until(lambda: e.qb.status("sales").callers_waiting == 3, 15, "back")
