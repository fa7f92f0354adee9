"""Crash recovery, pure parts: the watchdog the runtime keeps armed, play tokens an engine can
find again, resuming from a channel's variables, the dispatcher holding events meanwhile."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ivr_engine.ari import ChannelDispatcher, parse_event
from ivr_engine.calls.takeover import stasis_args
from ivr_engine.config import load_config
from ivr_engine.ivr.actions import Collect, Play, SetVariables
from ivr_engine.ivr.destinations import Destination
from ivr_engine.ivr.resume import channel_state, plan_resume, stale_playbacks
from ivr_engine.ivr.runtime import WATCHDOG_VARIABLE, IvrRuntime, Watchdog

FIXTURE = Path(__file__).parent.parent / "fixtures" / "ivr.yaml"
T0 = dt.datetime(2026, 11, 23, 17, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def cfg():
    return load_config(FIXTURE, {})


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def watchdog_values(actions) -> list[str]:
    return [v for a in actions if isinstance(a, SetVariables) for n, v in a.variables
            if n == WATCHDOG_VARIABLE]


def one(actions, kind):
    found = [a for a in actions if isinstance(a, kind)]
    assert len(found) == 1, actions
    return found[0]


# --------------------------------------------------------------------------- watchdog


def test_watchdog_armed_before_the_first_prompt_and_tight_while_waiting(cfg):
    s = IvrRuntime(cfg.tree, "top", "en", "did:100", "+1555", watchdog=Watchdog(3, 120))
    acts = s.start(T0)
    assert watchdog_values(acts) == ["120"]
    # the variable goes before the play (a variable queued behind a play waits for it)
    assert acts.index(one(acts, Play)) > max(i for i, a in enumerate(acts)
                                             if isinstance(a, SetVariables))
    wait = s.playback_finished(one(acts, Play).token, at(1))
    assert watchdog_values(wait) == ["4"]  # top's timeout 1 s + grace 3 s, with IVR_AWAITING
    assert dict(one(wait, SetVariables).variables)["IVR_AWAITING"] == "top:1"


def test_a_key_after_a_wait_rearms_for_the_prompt_barge_in_does_not(cfg):
    s = IvrRuntime(cfg.tree, "top", "en", "did:100", "+1555", watchdog=Watchdog(3, 120))
    p = one(s.start(T0), Play)
    s.playback_finished(p.token, at(1))
    acts = s.digit("1", at(1.5))  # from a tight wait into menu a: re-armed before its prompt
    assert watchdog_values(acts) == ["120"]
    acts = s.digit("1", at(2))  # barge-in through a's prompt: still plenty left, no request
    assert watchdog_values(acts) == []
    assert one(acts, Play).media == ("sound:digits/3",)


def test_long_barge_in_chains_rearm_when_half_the_budget_is_gone(cfg):
    s = IvrRuntime(cfg.tree, "top", "en", "did:100", "+1555", watchdog=Watchdog(3, 120))
    s.start(T0)
    assert watchdog_values(s.digit("#", at(30))) == []
    assert watchdog_values(s.digit("#", at(61))) == ["120"]


def test_no_watchdog_policy_no_variable(cfg):
    s = IvrRuntime(cfg.tree, "top", "en", "did:100", "+1555")
    acts = s.start(T0)
    assert watchdog_values(acts) == []
    assert watchdog_values(s.playback_finished(one(acts, Play).token, T0)) == []


def test_play_tokens_count_from_the_last_wait(cfg):
    s = IvrRuntime(cfg.tree, "top", "en", "did:100", "+1555")
    p1 = one(s.start(T0), Play)
    assert p1.token == "p0.1"
    p2 = one(s.digit("1", T0), Play)  # barge-in: the second play since no wait
    assert p2.token == "p0.2"
    c = one(s.playback_finished(p2.token, T0), Collect)
    assert c.seq == 1
    assert one(s.digit("1", T0), Play).token == "p1.1"


# --------------------------------------------------------------------------- resume


def test_channel_state_parses_and_never_raises():
    st = channel_state({"IVR_ENTRY": "did:100", "IVR_LANGUAGE": "fr",
                        "IVR_PATH": "top/a", "IVR_AWAITING": "a:7",
                        "IVR_DESTINATION": "not a destination"})
    assert (st.awaiting, st.seq, st.path, st.language) == ("a", 7, ("top", "a"), "fr")
    assert st.destination is None
    assert channel_state({}).awaiting == "" and channel_state({"IVR_AWAITING": "x:y"}).seq == 0


def test_resume_in_the_menu_the_caller_waited_in(cfg):
    st = channel_state({"IVR_ENTRY": "did:100", "IVR_PATH": "top/a", "IVR_AWAITING": "a:3"})
    plan = plan_resume(cfg.tree, st, cfg.users, can_restart=True)
    assert (plan.how, plan.menu, plan.path, plan.seq) == ("menu", "a", ("top", "a"), 3)
    s = IvrRuntime(cfg.tree, "a", "en", "did:100", "+1555", watchdog=Watchdog())
    s.after_takeover(plan.seq)
    acts = s.resume(plan.menu, list(plan.path), T0)
    play = one(acts, Play)
    # numbered after the dead engine's last wait: never the id of its prompt still playing
    assert play.media == ("sound:digits/2",) and play.token == "p4.1"
    assert s.path == ["top", "a"]
    # the path the channel carries is not published again; the next wait is number 5
    c = one(s.playback_finished(play.token, T0), Collect)
    assert c.seq == 5
    s.digit("1", T0)
    assert s.path == ["top", "a", "b"]


@pytest.mark.parametrize("variables, can_restart, how, dest", [
    ({"IVR_ENTRY": "did:100"}, True, "restart", None),
    ({"IVR_ENTRY": "did:100"}, False, "fallback", None),
    ({}, True, "fallback", None),
    ({"IVR_ENTRY": "e", "IVR_AWAITING": "gone:2"}, True, "fallback", None),
    ({"IVR_ENTRY": "e", "IVR_DESTINATION": "message-then-hangup:bye"}, True, "destination",
     Destination("message-then-hangup", "bye")),
    ({"IVR_ENTRY": "e", "IVR_DESTINATION": "callback:support"}, True, "destination",
     Destination("message-then-hangup", "thanks")),  # never recorded twice
    ({"IVR_ENTRY": "e", "IVR_DESTINATION": "hangup"}, True, "destination",
     Destination("hangup")),
    ({"IVR_ENTRY": "e", "IVR_DESTINATION": "user:nobody"}, True, "fallback", None),
])
def test_resume_plans(cfg, variables, can_restart, how, dest):
    plan = plan_resume(cfg.tree, channel_state(variables), cfg.users, can_restart)
    assert plan.how == how, plan
    assert plan.destination == dest
    assert plan.reason


def test_stale_playbacks_are_named_from_the_last_wait():
    st = channel_state({"IVR_AWAITING": "a:3"})
    ids = stale_playbacks("chan-1", st, probes=2)
    assert ids == ["chan-1.p3.1", "chan-1.p3.2", "chan-1.p3.wake", "chan-1.p3.ringback"]
    assert stale_playbacks("chan-1", channel_state({}), probes=1) == [
        "chan-1.p0.1", "chan-1.p0.wake", "chan-1.p0.ringback"]  # before the first wait


def test_stasis_args_only_for_our_application():
    ch = {"id": "c", "dialplan": {"app_name": "Stasis", "app_data": "ivr-engine,pstn,100"}}
    assert stasis_args(ch, "ivr-engine") == ("pstn", "100")
    assert stasis_args(ch, "other") is None
    assert stasis_args({"id": "c", "dialplan": {"app_name": "Queue"}}, "ivr-engine") is None
    assert stasis_args({"id": "c"}, "ivr-engine") is None


# --------------------------------------------------------------------------- dispatcher


def _event(kind: str, channel: str, **extra):
    return parse_event({"type": kind, "application": "a", "timestamp": "",
                        "channel": {"id": channel}, **extra})


async def test_dispatcher_holds_unknown_channels_events_until_release():
    others: list = []
    d = ChannelDispatcher(lambda ev: None, on_other=others.append)
    d.hold()
    d(_event("ChannelDtmfReceived", "old", digit="5"))
    d(_event("ChannelDtmfReceived", "gone", digit="6"))
    queue = d.register("old")  # taken back
    d.release()
    assert queue.get_nowait().digit == "5"
    assert [e.digit for e in others] == ["6"]
    d(_event("ChannelDtmfReceived", "late", digit="7"))  # not holding any more
    assert [e.digit for e in others] == ["6", "7"]
