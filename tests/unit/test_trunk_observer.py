"""The SIPp observers behind Kamailio (ivr_engine/testing/sipp.py): a caller whose INVITE one
node refused before answering (its engine away: ``ivr-engine-next-node``) and that Kamailio
sent on to the other node is one call, followed on the node that took it; the refused
channel is kept apart (``call.refused``), whichever node's events arrive first."""

from __future__ import annotations

from ivr_engine.ari.events import parse_event
from ivr_engine.testing.sipp import TrunkObserver

CALLER = "+15550001234"


def _ev(kind: str, channel: str, ts: str, state: str = "Ring", **extra) -> dict:
    return {"type": kind, "application": "obs", "timestamp": f"2026-12-04T10:00:{ts}+0000",
            "channel": {"id": channel, "name": f"PJSIP/carrier-{channel[-1]}", "state": state,
                        "caller": {"number": CALLER, "name": ""},
                        "dialplan": {"context": "from-pstn", "exten": "100", "priority": 1}},
            **extra}


def _observers():
    a = TrunkObserver("http://127.0.0.2:8088", "u", "p")
    b = TrunkObserver("http://127.0.0.3:8088", "u", "p")
    call = a.expect(CALLER)
    b.expect(CALLER, call)
    return a, b, call


def _refused_on_a(a) -> None:
    for ev in (_ev("ChannelDialplan", "node-a-1.1", "00.100", dialplan_app="Stasis",
                   dialplan_app_data="ivr-engine,pstn,100"),
               _ev("ChannelDialplan", "node-a-1.1", "00.101", dialplan_app="PJSIPHangup",
                   dialplan_app_data="503"),
               _ev("ChannelDestroyed", "node-a-1.1", "00.102", cause=34,
                   cause_txt="Circuit/channel congestion")):
        a._handle(parse_event(ev))


def _taken_on_b(b) -> None:
    for ev in (_ev("ChannelDialplan", "node-b-1.1", "00.110", dialplan_app="Stasis",
                   dialplan_app_data="ivr-engine,pstn,100"),
               _ev("ChannelStateChange", "node-b-1.1", "00.150", state="Up"),
               _ev("ChannelDialplan", "node-b-1.1", "01.900", state="Up",
                   dialplan_app="Queue", dialplan_app_data="sales")):
        b._handle(parse_event(ev))


def test_the_call_is_the_channel_of_the_node_that_took_it_in_either_order():
    for order in ("a first", "b first"):
        a, b, call = _observers()
        if order == "a first":
            _refused_on_a(a)
            _taken_on_b(b)
        else:
            _taken_on_b(b)
            _refused_on_a(a)
        assert call.channel == "node-b-1.1", order
        assert call.answered and not call.ended, order
        assert call.destination == {"type": "queue", "target": "sales"}, order
        assert call.apps == ["Stasis", "Queue"], order
        assert list(call.refused) == ["node-a-1.1"], order
        refused = call.refused["node-a-1.1"]
        assert refused.apps == ["Stasis", "PJSIPHangup"] and refused.ended, order
        assert not refused.answered, order


def test_on_one_node_only_the_first_channel_is_followed():
    a, _, call = _observers()
    _refused_on_a(a)
    a._handle(parse_event(_ev("ChannelDialplan", "node-a-1.2", "00.200",
                              dialplan_app="Stasis", dialplan_app_data="x")))
    assert call.channel == "node-a-1.1" and call.refused == {}
