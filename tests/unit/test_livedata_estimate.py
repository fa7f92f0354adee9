"""The wait estimator on scripted histories (known answers), and the queue model fed with
app_queue's AMI events as Asterisk 22 words them."""

from __future__ import annotations

import pytest

from ivr_engine.livedata.estimate import asterisk_holdtime, estimate_wait, residual
from ivr_engine.livedata.queues import QueueBoard

T60 = [60.0, 60.0, 60.0]


def seconds(position, idle, busy, talk, waits=(), rings=()):
    return estimate_wait(position, idle, busy, talk, waits, rings).seconds


def test_no_agent_serving_no_estimate():
    e = estimate_wait(1, 0, [], T60 * 5, [10.0] * 5)
    assert (e.seconds, e.method, e.confidence) == (None, "none", "none")
    assert e.reason == "no agent is serving the queue"


def test_position_aware_with_idle_agents():
    # two free agents, 60 s calls: positions 1 and 2 are answered now, 3 and 4 after one call
    assert [seconds(p, 2, [], T60) for p in (1, 2, 3, 4, 5)] == [0.0, 0.0, 60.0, 60.0, 120.0]


def test_busy_agents_finish_their_calls_first():
    # agents 20 s and 50 s into 60 s calls: free in 40 s and 10 s
    assert [seconds(p, 0, [20.0, 50.0], T60) for p in (1, 2, 3, 4)] == [10.0, 40.0, 70.0, 100.0]


def test_residual_uses_the_calls_longer_than_the_elapsed_time():
    talk = [30.0, 60.0, 120.0]
    assert residual(talk, 45.0) == pytest.approx(((60 - 45) + (120 - 45)) / 2)
    assert residual(talk, 200.0) == 7.0  # longer than any seen: 10 % of the mean
    assert residual([5.0, 5.0, 5.0], 9.0) == 1.0


def test_ring_time_counts_before_each_answer():
    assert [seconds(p, 1, [], [10.0] * 3, rings=[2.0] * 3) for p in (1, 2, 3)] == \
        [2.0, 14.0, 26.0]


def test_more_agents_shorter_waits():
    waits = [seconds(4, n, [], T60) for n in (1, 2, 4)]
    assert waits == [180.0, 60.0, 0.0]


def test_fallback_to_answered_waits_then_nothing():
    e = estimate_wait(3, 1, [], [60.0], [10.0, 20.0, 30.0])
    assert (e.seconds, e.method, e.confidence, e.samples) == (20.0, "answered-waits", "low", 3)
    e = estimate_wait(3, 1, [], [60.0], [10.0])
    assert (e.seconds, e.method) == (None, "none")
    assert e.reason == "not enough history: 1 talk time(s) and 1 answered wait(s); 3 and 3 needed"


def test_confidence_grows_with_samples_and_falls_with_spread():
    assert estimate_wait(1, 1, [], [60.0] * 3, []).confidence == "low"
    assert estimate_wait(1, 1, [], [60.0] * 5, []).confidence == "medium"
    assert estimate_wait(1, 1, [], [60.0] * 10, []).confidence == "high"
    spread = [1.0, 1.0, 1.0, 1.0, 300.0] * 2
    assert estimate_wait(1, 1, [], spread, []).confidence == "low"


def test_only_recent_samples_count():
    old_then_new = [600.0] * 20 + [60.0] * 30
    assert seconds(2, 1, [], old_then_new) == 60.0


def test_asterisk_holdtime_is_a_quarter_weighted_integer_average():
    h = 0
    for hold in (40, 40, 10.9):
        h = asterisk_holdtime(h, hold)
    assert h == 15  # 40 -> 10, 40 -> (30 + 40) >> 2 = 17, 10.9 -> (51 + 10) >> 2 = 15


def ev(event, **fields):
    return {"Event": event, "Queue": "q", **{k: str(v) for k, v in fields.items()}}


def test_queue_model_follows_join_answer_abandon():
    b = QueueBoard()
    b.apply(ev("QueueMemberAdded", Interface="Local/a1@agents", MemberName="a1", Status=1,
               Paused=0, InCall=0), 0)
    for i, uid in enumerate(("u1", "u2", "u3"), 1):
        b.apply(ev("QueueCallerJoin", Uniqueid=uid, Channel=f"Local/c{i}", Position=i,
                   Count=i), float(i))
    q = b.queues["q"]
    assert [c.uniqueid for c in q.callers] == ["u1", "u2", "u3"]
    assert b.find_caller("u3")[1] == 3
    # u2 hangs up: u3 moves to position 2
    b.apply(ev("QueueCallerAbandon", Uniqueid="u2", Position=2, OriginalPosition=2,
               HoldTime=5), 7.0)
    b.apply(ev("QueueCallerLeave", Uniqueid="u2", Position=2, Count=2), 7.0)
    assert [c.uniqueid for c in q.callers] == ["u1", "u3"] and q.abandoned == 1
    # a1 answers u1 after 9 s (2 s ringing); Asterisk sends the Leave first, and whole
    # seconds (8): the wait is measured on our clock from the join
    b.apply(ev("QueueCallerLeave", Uniqueid="u1", Position=1, Count=1), 10.0)
    b.apply(ev("AgentConnect", Uniqueid="u1", Interface="Local/a1@agents", HoldTime=8,
               RingTime=2, MemberName="a1"), 10.0)
    b.apply(ev("QueueMemberStatus", Interface="Local/a1@agents", Status=2, InCall=1,
               Paused=0), 10.0)
    assert [c.uniqueid for c in q.callers] == ["u3"] and q.answered == 1
    m = q.members["Local/a1@agents"]
    assert m.busy and m.talking_since == 10.0
    b.apply(ev("AgentComplete", Uniqueid="u1", Interface="Local/a1@agents", HoldTime=8,
               TalkTime=29, Reason="agent"), 40.5)
    b.apply(ev("QueueMemberStatus", Interface="Local/a1@agents", Status=1, InCall=0,
               Paused=0), 40.0)
    assert not m.busy
    assert q.talk.values(40.5) == [30.5] and q.waits.values(40.5) == [9.0]
    # pausing takes the agent out of the count; removing it drops it
    b.apply(ev("QueueMemberPause", Interface="Local/a1@agents", Paused=1), 41.0)
    assert not m.serving
    e = q.estimate(1, 41.0)
    assert e.seconds is None and e.reason == "no agent is serving the queue"
    b.apply(ev("QueueMemberRemoved", Interface="Local/a1@agents"), 42.0)
    assert q.members == {}
    # events of other kinds or without a queue change nothing
    b.apply({"Event": "Newchannel", "Uniqueid": "x"}, 43.0)
    b.apply({"Event": "QueueCallerJoin", "Uniqueid": "x"}, 43.0)
    assert list(b.queues) == ["q"] and len(q.callers) == 1


def test_history_older_than_an_hour_is_dropped():
    b = QueueBoard()
    b.apply(ev("AgentComplete", Interface="i", TalkTime=30), 0.0)
    b.apply(ev("AgentComplete", Interface="i", TalkTime=40), 3000.0)
    assert b.queues["q"].talk.values(3500.0) == [30.0, 40.0]
    assert b.queues["q"].talk.values(3700.0) == [40.0]


def test_resync_rebuilds_callers_and_members_from_queue_status():
    b = QueueBoard()
    b.apply(ev("QueueCallerJoin", Uniqueid="gone", Position=1), 0.0)
    b.apply(ev("AgentComplete", Interface="i", TalkTime=30), 0.0)
    b.apply({"Event": "QueueCallerJoin", "Queue": "old", "Uniqueid": "z", "Position": "1"}, 0)
    b.resync([
        {"Event": "QueueParams", "Queue": "q", "Holdtime": "12", "Calls": "2"},
        {"Event": "QueueMember", "Queue": "q", "Name": "a1", "Location": "Local/a1@agents",
         "Status": "2", "Paused": "0", "InCall": "1"},
        {"Event": "QueueEntry", "Queue": "q", "Position": "2", "Uniqueid": "u2",
         "Channel": "c2", "Wait": "3"},
        {"Event": "QueueEntry", "Queue": "q", "Position": "1", "Uniqueid": "u1",
         "Channel": "c1", "Wait": "8"},
        {"Event": "QueueStatusComplete"}], 100.0)
    q = b.queues["q"]
    assert [(c.uniqueid, c.joined) for c in q.callers] == [("u1", 92.0), ("u2", 97.0)]
    assert q.members["Local/a1@agents"].busy and q.asterisk_holdtime == 12
    assert q.talk.values(100.0) == [30.0]  # history kept
    assert b.queues["old"].callers == []  # a queue absent from the snapshot is emptied


def test_hand_over_time_is_measured_on_our_clock():
    b = QueueBoard()
    a = "Local/a1@agents"
    b.apply(ev("QueueMemberAdded", Interface=a, Status=1, Paused=0), 0.0)
    # an idle agent: the hand-over is from the caller's join to the answer
    b.apply(ev("QueueCallerJoin", Uniqueid="u1", Position=1), 30.0)
    b.apply(ev("QueueCallerLeave", Uniqueid="u1"), 30.3)
    b.apply(ev("AgentConnect", Uniqueid="u1", Interface=a, HoldTime=0, RingTime=0), 30.3)
    # a caller waiting for the busy agent: from the agent's call end to the answer
    b.apply(ev("QueueCallerJoin", Uniqueid="u2", Position=1), 31.0)
    b.apply(ev("AgentComplete", Uniqueid="u1", Interface=a, TalkTime=10), 40.0)
    b.apply(ev("QueueCallerLeave", Uniqueid="u2"), 40.8)
    b.apply(ev("AgentConnect", Uniqueid="u2", Interface=a, HoldTime=9, RingTime=0), 40.8)
    q = b.queues["q"]
    assert [round(r, 2) for r in q.rings.values(41.0)] == [0.3, 0.8]
    assert [round(w, 2) for w in q.waits.values(41.0)] == [0.3, 9.8]
    assert q.talk.values(41.0) == [9.7]
