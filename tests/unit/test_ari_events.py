"""Pure tests of ARI event parsing and per-channel dispatch (no network)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from ivr_engine.ari import (
    AriError,
    AriNotFound,
    ApplicationReplaced,
    Channel,
    ChannelDestroyed,
    ChannelDialplan,
    ChannelDispatcher,
    ChannelDtmfReceived,
    ChannelEnteredBridge,
    ChannelHangupRequest,
    ChannelLeftBridge,
    ChannelStateChange,
    ChannelVarset,
    ContactStatusChange,
    Dial,
    EndpointStateChange,
    Event,
    Playback,
    PlaybackContinuing,
    PlaybackFinished,
    PlaybackStarted,
    StasisEnd,
    StasisStart,
    UnknownEvent,
    parse_event,
)
from ivr_engine.ari.client import AriClient

TS = "2026-01-01T10:00:00.000+0000"


def chan(cid: str = "1700000000.1", **over) -> dict:
    data = {
        "id": cid,
        "name": "PJSIP/alice-00000001",
        "state": "Ring",
        "protocol_id": "abc@host",
        "caller": {"name": "Alice", "number": "+33123456789"},
        "connected": {"name": "", "number": ""},
        "accountcode": "",
        "dialplan": {
            "context": "from-pstn",
            "exten": "+33900000000",
            "priority": 2,
            "app_name": "Stasis",
            "app_data": "ivr-engine,pstn,+33900000000",
        },
        "creationtime": TS,
        "language": "fr",
    }
    data.update(over)
    return data


def ev(type_: str, **fields) -> dict:
    return {"type": type_, "application": "ivr-engine", "timestamp": TS,
            "asterisk_id": "00:11:22:33:44:55", **fields}


def playback(pid: str = "pb-1", target: str = "channel:1700000000.1", **over) -> dict:
    data = {
        "id": pid,
        "media_uri": "sound:hello-world",
        "target_uri": target,
        "language": "en",
        "state": "playing",
    }
    data.update(over)
    return data


# ------------------------------------------------------------------ models


def test_channel_from_json_full():
    c = Channel.from_json(chan())
    assert c == Channel(
        id="1700000000.1",
        name="PJSIP/alice-00000001",
        state="Ring",
        caller_number="+33123456789",
        caller_name="Alice",
        language="fr",
        context="from-pstn",
        exten="+33900000000",
        priority=2,
    )


def test_channel_from_json_minimal():
    c = Channel.from_json({"id": "x"})
    assert c.id == "x"
    assert c.caller_number == "" and c.context == "" and c.priority is None


def test_models_are_frozen_and_slotted():
    c = Channel.from_json(chan())
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.id = "other"  # type: ignore[misc]
    assert not hasattr(c, "__dict__")
    e = parse_event(ev("StasisEnd", channel=chan()))
    assert not hasattr(e, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.type = "x"  # type: ignore[misc]


def test_playback_channel_id():
    assert Playback.from_json(playback()).channel_id == "1700000000.1"
    assert Playback.from_json(playback(target="bridge:b1")).channel_id is None
    assert Playback.from_json({"id": "p"}).channel_id is None
    p = Playback.from_json(playback(next_media_uri="sound:beep"))
    assert p.next_media_uri == "sound:beep"
    assert Playback.from_json(playback()).next_media_uri is None


# ------------------------------------------------------------------ events


def test_stasis_start():
    e = parse_event(ev("StasisStart", args=["pstn", "+33900000000"], channel=chan()))
    assert isinstance(e, StasisStart)
    assert e.type == "StasisStart" and e.application == "ivr-engine" and e.timestamp == TS
    assert e.args == ("pstn", "+33900000000")
    assert e.channel.caller_number == "+33123456789"
    assert e.channel_id == "1700000000.1"
    assert e.replace_channel is None
    assert e.raw["asterisk_id"] == "00:11:22:33:44:55"


def test_stasis_start_replace_channel_and_no_args():
    e = parse_event(ev("StasisStart", channel=chan(), replace_channel=chan("old.1")))
    assert isinstance(e, StasisStart)
    assert e.args == ()
    assert e.replace_channel is not None and e.replace_channel.id == "old.1"


def test_channel_events():
    c = chan()
    cases = [
        (ev("StasisEnd", channel=c), StasisEnd, {}),
        (ev("ChannelStateChange", channel=chan(state="Up")), ChannelStateChange, {}),
        (ev("ChannelDtmfReceived", channel=c, digit="5", duration_ms=120), ChannelDtmfReceived,
         {"digit": "5", "duration_ms": 120}),
        (ev("ChannelHangupRequest", channel=c, cause=16, soft=True), ChannelHangupRequest,
         {"cause": 16, "soft": True}),
        (ev("ChannelDestroyed", channel=c, cause=16, cause_txt="Normal Clearing", tech_cause=0),
         ChannelDestroyed, {"cause": 16, "cause_txt": "Normal Clearing"}),
        (ev("ChannelVarset", channel=c, variable="FOO", value="bar"), ChannelVarset,
         {"variable": "FOO", "value": "bar"}),
        (ev("ChannelDialplan", channel=c, dialplan_app="Queue", dialplan_app_data="support"),
         ChannelDialplan, {"dialplan_app": "Queue", "dialplan_app_data": "support"}),
        (ev("ChannelEnteredBridge", channel=c, bridge={"id": "br-1"}), ChannelEnteredBridge,
         {"bridge_id": "br-1"}),
        (ev("ChannelLeftBridge", channel=c, bridge={"id": "br-1"}), ChannelLeftBridge,
         {"bridge_id": "br-1"}),
    ]
    for data, cls, attrs in cases:
        e = parse_event(data)
        assert type(e) is cls, data["type"]
        assert e.channel_id == "1700000000.1"
        for k, v in attrs.items():
            assert getattr(e, k) == v, (cls, k)


def test_hangup_request_without_optional_fields():
    e = parse_event(ev("ChannelHangupRequest", channel=chan()))
    assert isinstance(e, ChannelHangupRequest)
    assert e.cause is None and e.soft is False


def test_global_varset_has_no_channel():
    e = parse_event(ev("ChannelVarset", variable="GLOBALVAR", value="1"))
    assert isinstance(e, ChannelVarset)
    assert e.channel is None and e.channel_id is None


@pytest.mark.parametrize(
    "name,cls", [("PlaybackStarted", PlaybackStarted), ("PlaybackContinuing", PlaybackContinuing),
                 ("PlaybackFinished", PlaybackFinished)]
)
def test_playback_events(name, cls):
    e = parse_event(ev(name, playback=playback(state="done")))
    assert type(e) is cls
    assert e.playback.id == "pb-1" and e.playback.state == "done"
    assert e.channel_id == "1700000000.1"


def test_application_replaced():
    e = parse_event(ev("ApplicationReplaced"))
    assert isinstance(e, ApplicationReplaced)
    assert e.channel_id is None


def test_contact_status_change():
    e = parse_event(ev(
        "ContactStatusChange",
        endpoint={"technology": "PJSIP", "resource": "alice", "state": "online",
                  "channel_ids": []},
        contact_info={"uri": "sip:alice@127.0.0.1:5070", "contact_status": "Reachable",
                      "aor": "alice", "roundtrip_usec": "1234"},
    ))
    assert isinstance(e, ContactStatusChange)
    assert (e.endpoint_tech, e.endpoint_resource, e.aor) == ("PJSIP", "alice", "alice")
    assert e.uri == "sip:alice@127.0.0.1:5070" and e.contact_status == "Reachable"
    assert e.roundtrip_usec == 1234
    assert e.channel_id is None
    e = parse_event(ev("ContactStatusChange", endpoint={}, contact_info={"roundtrip_usec": "N/A"}))
    assert isinstance(e, ContactStatusChange) and e.roundtrip_usec is None


def test_endpoint_state_change():
    e = parse_event(ev("EndpointStateChange",
                       endpoint={"technology": "PJSIP", "resource": "bob", "state": "offline"}))
    assert isinstance(e, EndpointStateChange)
    assert (e.endpoint_tech, e.endpoint_resource, e.state) == ("PJSIP", "bob", "offline")


def test_dial_channel_id_is_peer():
    e = parse_event(ev("Dial", caller=chan("caller.1"), peer=chan("peer.2"), dialstatus="ANSWER",
                       forward="", dialstring="alice"))
    assert isinstance(e, Dial)
    assert e.caller is not None and e.caller.id == "caller.1"
    assert e.peer is not None and e.peer.id == "peer.2"
    assert e.channel_id == "peer.2" and e.dialstatus == "ANSWER"
    e = parse_event(ev("Dial", peer=chan("peer.3"), dialstatus=""))
    assert isinstance(e, Dial) and e.caller is None and e.channel_id == "peer.3"
    e = parse_event(ev("Dial"))
    assert isinstance(e, Dial) and e.channel_id is None


def test_unknown_and_malformed_events_never_raise():
    e = parse_event(ev("BridgeCreated", bridge={"id": "b"}))
    assert isinstance(e, UnknownEvent) and e.type == "BridgeCreated"
    assert e.raw["bridge"] == {"id": "b"} and e.channel_id is None
    # A known type missing its required object degrades to UnknownEvent.
    for t in ("StasisStart", "ChannelDtmfReceived", "PlaybackStarted"):
        e = parse_event(ev(t))
        assert isinstance(e, UnknownEvent) and e.type == t
    for weird in ({}, {"type": None}, {"type": ["x"]}, {"type": "StasisStart", "channel": None},
                  {"type": "StasisStart", "channel": chan(), "args": None}):
        assert isinstance(parse_event(weird), Event)
    assert isinstance(parse_event(["not", "a", "dict"]), UnknownEvent)  # type: ignore[arg-type]
    e = parse_event(ev("ChannelDtmfReceived", channel=chan(), digit="1", duration_ms="oops"))
    assert isinstance(e, ChannelDtmfReceived) and e.duration_ms == 0


def test_events_hashable_despite_raw_dict():
    e = parse_event(ev("StasisEnd", channel=chan()))
    hash(e)
    assert e == parse_event(ev("StasisEnd", channel=chan(), extra="ignored in eq"))


# ------------------------------------------------------------------ client (offline bits)


def test_client_repr_and_errors_hide_password():
    secret = "s3cr3t-Pa55word"
    client = AriClient("http://127.0.0.1:8088/", "ivr", secret, "app")
    assert client.api_url == "http://127.0.0.1:8088/ari"
    assert AriClient("http://h:1/ari", "u", "p", "a").api_url == "http://h:1/ari"
    assert secret not in repr(client) and secret not in str(vars(client))
    err = AriNotFound(404, "GET", "/channels/x", "Channel not found")
    assert isinstance(err, AriError) and err.status == 404 and err.message == "Channel not found"
    assert "404" in str(err) and "/channels/x" in str(err)


# ------------------------------------------------------------------ dispatcher


def _start(cid: str) -> StasisStart:
    e = parse_event(ev("StasisStart", args=["pstn"], channel=chan(cid)))
    assert isinstance(e, StasisStart)
    return e


def _dtmf(cid: str, digit: str = "1") -> Event:
    return parse_event(ev("ChannelDtmfReceived", channel=chan(cid), digit=digit, duration_ms=100))


async def test_dispatcher_registers_from_stasis_start_and_routes():
    started: list[StasisStart] = []
    others: list[Event] = []
    disp: ChannelDispatcher

    def on_start(e: StasisStart) -> None:
        started.append(e)
        disp.register(e.channel.id)

    disp = ChannelDispatcher(on_start, on_other=others.append)
    assert len(disp) == 0
    disp(_start("A"))
    assert started and "A" in disp and len(disp) == 1
    q = disp.register("A")  # idempotent: same queue
    first = q.get_nowait()
    assert isinstance(first, StasisStart) and first.channel_id == "A"
    disp(_dtmf("A", "7"))
    assert q.get_nowait().digit == "7"  # type: ignore[attr-defined]
    # playback events route by their target channel
    disp(parse_event(ev("PlaybackStarted", playback=playback(target="channel:A"))))
    assert isinstance(q.get_nowait(), PlaybackStarted)
    # unknown channel and channel-less events go to on_other
    disp(_dtmf("B"))
    disp(parse_event(ev("EndpointStateChange", endpoint={"technology": "PJSIP", "resource": "x"})))
    assert [e.type for e in others] == ["ChannelDtmfReceived", "EndpointStateChange"]
    # a second StasisStart for a registered channel does not call on_stasis_start again
    disp(_start("A"))
    assert len(started) == 1 and isinstance(q.get_nowait(), StasisStart)
    disp.unregister("A")
    disp.unregister("A")  # harmless
    assert "A" not in disp and len(disp) == 0
    disp(_dtmf("A"))
    assert q.empty() and others[-1].channel_id == "A"


async def test_dispatcher_stasis_start_not_registered_is_dropped():
    calls = []
    others: list[Event] = []
    disp = ChannelDispatcher(calls.append, on_other=others.append)
    disp(_start("X"))
    assert len(calls) == 1 and "X" not in disp and others == []


async def test_dispatcher_without_on_other_drops_and_survives_bad_callback():
    def boom(e: StasisStart) -> None:
        raise RuntimeError("bug in engine")

    disp = ChannelDispatcher(boom)
    disp(_start("Y"))  # logged, not raised
    disp(_dtmf("Z"))  # dropped
    assert len(disp) == 0


async def test_dispatcher_queues_are_independent():
    disp = ChannelDispatcher(lambda e: None)
    qa, qb = disp.register("A"), disp.register("B")
    for i in range(3):
        disp(_dtmf("A", str(i)))
    disp(_dtmf("B", "9"))
    assert qa.qsize() == 3 and qb.qsize() == 1
    got = await asyncio.wait_for(qb.get(), 1)
    assert got.digit == "9"  # type: ignore[attr-defined]
