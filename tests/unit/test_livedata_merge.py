"""Queues over several nodes (livedata/snapshot.py, livedata/shared.py): a snapshot of one
node reproduces its monitor's status exactly; snapshots of two nodes sum, age and pool into
the unchanged estimator; SharedQueues answers from its own node alone when the other nodes'
snapshots are stale or dropped, and wakes a queue's streams when another node's snapshot
of it arrives."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

from ivr_engine.livedata.estimate import estimate_wait
from ivr_engine.livedata.monitor import QueueMonitor
from ivr_engine.livedata.shared import SharedQueues
from ivr_engine.livedata.snapshot import Snapshot, merge, merged_status, take


def monitor(node: str, now: list[float]) -> QueueMonitor:
    m = QueueMonitor(SimpleNamespace(connected=True, listen=lambda *a: None),  # type: ignore[arg-type]
                     clock=lambda: now[0], node=node)
    m.synced.set()
    return m


def feed(m: QueueMonitor, now: list[float], agents: int, talks: list[str], callers: list[float]):
    """``agents`` free agents, the talk times, callers joined at the given times."""
    ev = lambda e, **f: m.board.apply({"Event": e, "Queue": "sales", **f}, now[0])  # noqa: E731
    for i in range(agents):
        ev("QueueMemberAdded", Interface=f"Local/{m.node}{i}@x", Status="1", Paused="0")
    for t in talks:
        ev("AgentComplete", Interface=f"Local/{m.node}0@x", TalkTime=t)
    for i, at in enumerate(sorted(callers)):
        keep, now[0] = now[0], at
        ev("QueueCallerJoin", Uniqueid=f"{m.node}-{i}", Channel=f"c{i}", Position=str(i + 1))
        now[0] = keep


def test_one_snapshot_is_exactly_the_nodes_status():
    now = [100.0]
    m = monitor("node-a", now)
    feed(m, now, 2, ["30", "40", "50"], [100.0, 103.0])
    now[0] = 110.0
    m.board.apply({"Event": "AgentConnect", "Queue": "sales", "Interface": "Local/node-a1@x",
                   "Uniqueid": "zz", "HoldTime": "4"}, 105.0)  # agent 1 talks since 105
    m.board.apply({"Event": "QueueParams", "Queue": "sales", "Holdtime": "12"}, 110.0)
    assert merged_status("sales", m.snapshots()) == m.status("sales")
    # and through the row's shape (the inputs JSON), as another engine reads it
    snap = m.snapshots()[0]
    row = SimpleNamespace(**{f.name: getattr(snap, f.name) for f in dataclasses.fields(snap)},
                          inputs=snap.inputs())
    assert merged_status("sales", [Snapshot.from_row(row, 0.0)]) == m.status("sales")


def test_two_nodes_sum_and_pool_into_the_estimator():
    now = [100.0]
    a, b = monitor("node-a", now), monitor("node-b", now)
    feed(a, now, 1, ["60", "60", "60"], [90.0])
    feed(b, now, 1, ["30", "30", "30"], [95.0, 98.0])
    sa, sb = a.snapshots()[0], b.snapshots()[0]
    sb = dataclasses.replace(sb, age=2.0)  # read 2 s after it was written
    s = merged_status("sales", [sa, sb])
    assert s.callers_waiting == 3
    assert s.agents.logged_in == 2 and s.agents.available == 2
    assert s.longest_wait_seconds == 10.0
    # positions: the longest wait first, node b's waits aged by 2 s
    assert [p.waiting_seconds for p in s.positions] == [10.0, 7.0, 4.0]
    # the estimator, unchanged, over the pooled inputs: 2 idle agents, six talk times
    pooled = estimate_wait(4, 2, [], [60.0] * 3 + [30.0] * 3, [])
    assert s.estimate_new_caller.seconds == pooled.seconds == 45.0  # (0, 0, 45, 45)
    assert s.estimate_new_caller.samples == 6
    assert merge([sa, sb]).idle == 2


def test_history_of_nodes_is_ordered_by_when_it_was_seen():
    a = Snapshot("node-a", "q", talk=((50.0, 1.0), (10.0, 2.0)))
    b = Snapshot("node-b", "q", talk=((30.0, 3.0),), age=25.0)  # seen 55 s ago
    assert merge([a, b]).talk == [3.0, 1.0, 2.0]
    old = Snapshot("node-c", "q", talk=((3590.0, 9.0),), age=20.0)  # past the hour
    assert merge([a, old]).talk == [1.0, 2.0]


def test_busy_agents_talk_is_aged_too():
    s = Snapshot("node-b", "q", serving=1, busy=1, busy_elapsed=(20.0,), age=5.0,
                 talk=((1.0, 60.0),) * 3)
    assert merge([s]).busy_elapsed == [25.0]
    assert merged_status("q", [s]).estimate_new_caller.seconds == 35.0  # 60 - 25


async def test_shared_queues_merge_fresh_remote_and_ignore_stale():
    now = [100.0]
    a = monitor("node-a", now)
    feed(a, now, 1, ["60", "60", "60"], [95.0])
    shared = SharedQueues([a], stale_seconds=15.0, clock=lambda: now[0])
    alone = a.status("sales")
    assert shared.status("sales") == alone  # no other node: the monitor's own answer
    woken = shared.changed("sales")
    other = shared.changed("support")
    remote = Snapshot("node-b", "sales", callers=2, logged_in=1, serving=1, available=1,
                      longest_wait=30.0, caller_waits=(30.0, 12.0), age=1.0)
    shared.put([remote, dataclasses.replace(remote, node="node-a", callers=9)])
    assert woken.is_set() and not other.is_set()  # only that queue's streams
    s = shared.status("sales")
    assert s.callers_waiting == 3  # node a's own row from the database is left out
    assert s.longest_wait_seconds == 31.0
    assert [p.waiting_seconds for p in s.positions] == [31.0, 13.0, 5.0]
    assert shared.wait_of("sales") == s.estimate_new_caller
    now[0] = 113.9  # 14.9 s old
    assert shared.status("sales").callers_waiting == 3
    now[0] = 114.1  # past STALE: ignored, own node only
    assert shared.status("sales") == a.status("sales")
    now[0] = 100.0
    shared.put([remote])
    woken = shared.changed("sales")
    shared.drop()  # the listener's connection dropped
    assert woken.is_set() and shared.status("sales") == a.status("sales")


async def test_shared_queues_track_with_remote_only_and_wake_on_local_changes():
    now = [0.0]
    a = monitor("node-a", now)
    a.synced.clear()  # its AMI resyncing: not tracking
    shared = SharedQueues([a], clock=lambda: now[0])
    assert not shared.tracking and shared.wait_of("sales") is None
    shared.put([Snapshot("node-b", "sales", callers=1, caller_waits=(3.0,))])
    assert shared.tracking and shared.status("sales").callers_waiting == 1
    a.synced.set()
    event = shared.changed("sales")
    a._on_event(None, {"Event": "QueueCallerJoin", "Queue": "sales", "Uniqueid": "u1"})
    assert event.is_set()
    assert shared.status("sales").callers_waiting == 2
    assert shared.call_queue("u1").position == 1  # type: ignore[union-attr]


def test_signature_ignores_time_passing():
    now = [100.0]
    a = monitor("node-a", now)
    feed(a, now, 1, [], [99.0])
    first = a.snapshots()[0]
    now[0] = 130.0
    later = a.snapshots()[0]
    assert later.caller_waits != first.caller_waits
    assert later.signature() == first.signature()
    a._on_event(None, {"Event": "QueueCallerJoin", "Queue": "sales", "Uniqueid": "u9"})
    assert a.snapshots()[0].signature() != first.signature()


def test_a_monitor_not_tracking_gives_no_snapshot():
    now = [0.0]
    a = monitor("node-a", now)
    feed(a, now, 1, [], [0.0])
    a.synced.clear()
    assert a.snapshots() == []
    assert take(a.board.queues["sales"], "node-a", 0.0).callers == 1
