"""How a call left the IVR (issue 19, item 2): the runtime says why it went where it went,
every exit is announced once in one payload shape, and each webhook URL gets the events it
asked for (``context_webhook`` keeps today's ``call.queued`` only), signed as before — checked
with a real local receiver."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import pytest

from ivr_engine.calls.exits import announce, announce_engine_end
from ivr_engine.calls.registry import CallInfo
from ivr_engine.calls.webhook import build_webhooks
from ivr_engine.config import load_config, parse_config
from ivr_engine.ivr.actions import Collect, Play
from ivr_engine.ivr.destinations import Destination
from ivr_engine.ivr.runtime import IvrRuntime
from tests.support.hooks import HookReceiver

FIXTURE = Path(__file__).parent.parent / "fixtures" / "ivr.yaml"
T0 = dt.datetime(2026, 11, 23, 17, 0, tzinfo=dt.timezone.utc)  # Monday noon in New York
SECRET = "exit-hook-secret-0123456789abcdef0123"


@pytest.fixture(scope="module")
def cfg():
    return load_config(FIXTURE, {})


def walk(cfg, keys: str, menu: str = "top") -> IvrRuntime:
    """Drive a runtime: prompts play to their end, ``t`` lets a menu time out."""
    rt = IvrRuntime(cfg.tree, menu, "en", "did:100", "+15551112222")
    acts = rt.start(T0)
    pending = list(keys.split())
    for _ in range(50):
        if rt.finished or rt.destination is not None and not any(
                isinstance(a, (Play, Collect)) for a in acts):
            break
        play = next((a for a in acts if isinstance(a, Play)), None)
        collect = next((a for a in acts if isinstance(a, Collect)), None)
        if collect is not None and pending:
            key = pending.pop(0)
            acts = rt.timer_fired(collect.token, T0) if key == "t" else rt.digit(key, T0)
        elif play is not None:
            acts = rt.playback_finished(play.token, T0)
        else:
            break
    return rt


@pytest.mark.parametrize("keys, destination, reason", [
    ("2", "queue:support", "option"),
    ("0", "queue:operator", "dial0"),
    ("8 8", "message-then-hangup:bye", "invalid"),
    ("t t", "message-then-hangup:bye", "timeout"),
    ("5", "voicemail:2000@default", "after-hours"),
    ("1 1 1", "queue:sales", "option"),
    ("4", "callback:support", "option"),
])
def test_the_runtime_says_why_the_call_went_there(cfg, keys, destination, reason):
    rt = walk(cfg, keys)
    assert (str(rt.destination), rt.reason) == (destination, reason)


def test_transfers_and_entries_have_their_reasons(cfg):
    rt = IvrRuntime(cfg.tree, "top", "en", "did:100", "+1555")
    rt.start(T0)
    rt.transfer(Destination("queue", "billing"), T0)
    assert (str(rt.destination), rt.reason) == ("queue:billing", "transfer")
    rt = IvrRuntime(cfg.tree, "", "en", "unknown", "+1555")
    rt.start_at(Destination("message-then-hangup", "bye"), T0)
    assert rt.reason == "entry"


def call_of(rt: IvrRuntime | None, notifier) -> SimpleNamespace:
    info = CallInfo(id="chan-1", channel_name="PJSIP/carrier-1", caller="+15551112222",
                    entry="did:100", via="did", app="customer", root_menu="top",
                    language="en", custom_data={"order": "A-42"}, user="alice",
                    verified=True)
    return SimpleNamespace(announced=False, services=SimpleNamespace(notifier=notifier),
                           info=info, runtime=rt, channel_id="chan-1", clock=lambda: T0)


async def test_each_url_gets_the_events_it_asked_for_once_signed(cfg):
    async with HookReceiver() as hook:
        model = parse_config(FIXTURE.read_text() + f"""
context_webhook:
  url: {hook.url('/legacy')}
  secret: {SECRET}
webhooks:
  - url: {hook.url('/all')}
  - url: {hook.url('/ends')}
    events: [call.hungup, callback.requested]
  - url: {hook.url('/off')}
    enabled: false
""", "hooks.yaml", {}).model
        hooks = build_webhooks(model)
        assert [n.url.rsplit("/", 1)[1] for n in hooks.notifiers] == ["legacy", "all", "ends"]
        sender = asyncio.create_task(hooks.run())
        try:
            queued = call_of(walk(cfg, "2"), hooks)
            announce(queued, "call.queued")
            announce(queued, "call.queued")  # once per call
            ended = call_of(walk(cfg, "t t"), hooks)
            announce_engine_end(ended)
            announce(ended, "call.hungup", hung_up_by="caller", reason="caller-hung-up")
            left = call_of(walk(cfg, "1"), hooks)  # waiting in menu a
            announce_engine_end(left)  # not an end the engine decided: nothing
            announce(left, "call.hungup", hung_up_by="caller", reason="caller-hung-up")
            await hook.wait(lambda d: d.path == "/all", count=3)
            await hook.wait(lambda d: d.path == "/ends", count=2)
            await hook.wait(lambda d: d.path == "/legacy")
            await asyncio.sleep(0.2)  # nothing more comes
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
    by_path = {p: [d.payload for d in hook.matching(lambda d, p=p: d.path == p)]
               for p in ("/legacy", "/all", "/ends")}
    assert [p["event"] for p in by_path["/legacy"]] == ["call.queued"]
    assert [p["event"] for p in by_path["/all"]] == ["call.queued", "call.hungup",
                                                    "call.hungup"]
    assert [p["event"] for p in by_path["/ends"]] == ["call.hungup", "call.hungup"]
    (legacy,) = hook.matching(lambda d: d.path == "/legacy")
    assert legacy.signed_with(SECRET)
    q = legacy.payload
    # every key call.queued had before issue 19, with the same values
    assert {k: q[k] for k in ("event", "call_id", "queue", "app", "entry", "caller",
                              "language", "path", "custom_data", "user", "verified",
                              "timestamp")} == {
        "event": "call.queued", "call_id": "chan-1", "queue": "support", "app": "customer",
        "entry": "did:100", "caller": "+15551112222", "language": "en", "path": ["top"],
        "custom_data": {"order": "A-42"}, "user": "alice", "verified": True,
        "timestamp": T0.isoformat()}
    assert (q["destination"], q["target"], q["reason"], q["hung_up_by"], q["callback"]) == \
        ("queue:support", "support", "option", None, None)
    engine_end, caller_left = by_path["/all"][1:]
    assert (engine_end["destination"], engine_end["reason"], engine_end["hung_up_by"],
            engine_end["queue"]) == ("message-then-hangup:bye", "timeout", "engine", None)
    assert (caller_left["destination"], caller_left["reason"], caller_left["hung_up_by"],
            caller_left["path"]) == (None, "caller-hung-up", "caller", ["top", "a"])
    assert all(set(p) == set(q) for p in by_path["/all"])


def test_context_webhook_alone_keeps_its_old_events():
    model = parse_config(FIXTURE.read_text() + """
context_webhook:
  url: http://127.0.0.1:9/hook
""", "hooks.yaml", {}).model
    (only,) = build_webhooks(model).notifiers
    assert only.wants("call.queued") and not only.wants("call.hungup")
    assert build_webhooks(load_config(FIXTURE, {}).model) is None


# ---------------------------------------------------------------- through real sessions

CALLBACKS = Path(__file__).parent.parent / "fixtures" / "callbacks.yaml"


class Callbacks:
    """The store's callbacks as the IVR uses them: recorded, or a database that never
    answers (the caller's deadline sends the caller to the fallback)."""

    def __init__(self, stuck: bool) -> None:
        self.stuck = stuck

    async def add(self, **kw):
        if self.stuck:
            await asyncio.Event().wait()
        return SimpleNamespace(id=7, state="requested")


@pytest.fixture
async def line():
    """One call through the real call manager and session over the scripted ARI of
    test_callsafe_session, announcing to a local receiver."""
    from ivr_engine.calls.manager import Calls
    from ivr_engine.calls.registry import CallRegistry
    from ivr_engine.calls.session import CallServices

    from .test_callsafe_session import Node, ScriptedAri

    config = load_config(CALLBACKS, {"IVR_WEBHOOK_URL": "http://127.0.0.1:9"})
    async with HookReceiver() as hook:
        hooks = build_webhooks(parse_config(FIXTURE.read_text() + f"""
webhooks:
  - url: {hook.url('/all')}
""", "hooks.yaml", {}).model)
        ari = ScriptedAri()
        node = Node(ari, config)
        store = SimpleNamespace(callbacks=Callbacks(stuck=False))
        calls = Calls(lambda: config, CallServices(store=store, registry=CallRegistry(),
                                                   notifier=hooks))
        node.calls = calls
        tasks = [asyncio.create_task(calls.run()), asyncio.create_task(hooks.run())]
        yield SimpleNamespace(ari=ari, node=node, calls=calls, hook=hook, store=store)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def dial_and_press(line, key: str | None) -> None:
    from .test_callsafe_session import CID, event, until

    assert line.calls.start(line.node, event("StasisStart", CID, args=["pstn", "200"]))
    await until(lambda: line.ari.calls("play"), "the menu's prompt")
    if key is not None:
        line.node.dispatcher(event("ChannelDtmfReceived", CID, digit=key, duration_ms=100))


async def leaves(line) -> None:
    """The caller's channel leaves Stasis and is gone (both events, as Asterisk sends)."""
    from .test_callsafe_session import CID, event, until

    line.node.dispatcher(event("StasisEnd", CID))
    line.node.dispatcher(event("ChannelDestroyed", CID))
    await until(lambda: CID not in line.calls.sessions, "the call's task ended")
    await asyncio.sleep(0.3)  # what would be delivered for it is delivered by now


async def test_a_recorded_callback_is_the_calls_one_exit(line):
    await dial_and_press(line, "6")
    (got,) = await line.hook.wait(lambda d: True)
    assert (got.payload["event"], got.payload["callback"]) == (
        "callback.requested", {"id": 7, "state": "requested", "attempts": 0, "outcome": None})
    await leaves(line)  # the engine hangs up after the message: not a second exit
    assert [d.payload["event"] for d in line.hook.deliveries] == ["callback.requested"]


async def test_a_callback_the_database_never_recorded_announces_nothing(line):
    line.store.callbacks.stuck = True
    await dial_and_press(line, "6")
    from .test_callsafe_session import CID, until

    await until(lambda: any(k.get("context") == "ivr-engine-fallback"
                            for _, k in line.ari.calls("continue_in_dialplan")),
                "the caller sent to the fallback", timeout=6)
    await leaves(line)  # it left for the fallback queue, not by hanging up
    assert line.hook.deliveries == [], [d.payload for d in line.hook.deliveries]
    assert CID not in line.calls.sessions


async def test_a_caller_hanging_up_in_a_menu_is_announced_once(line):
    await dial_and_press(line, None)
    await leaves(line)
    (got,) = await line.hook.wait(lambda d: True)
    p = got.payload
    assert (p["event"], p["hung_up_by"], p["reason"], p["destination"], p["path"]) == (
        "call.hungup", "caller", "caller-hung-up", None, ["top"])
    assert len(line.hook.deliveries) == 1
