"""A fault in any phase of a call leaves nothing behind (issue 17), at unit level: the real
call manager, sessions, phases, ringer, dispatcher and contact watcher, over a scripted ARI
that fails where told (the one double here; tests/integration/test_callsafe_cleanup.py and
tests/e2e/test_callsafe_ringing.py do the same against the real Asterisk).

For each phase — reading an app token, the IVR, ringing a user (waiting for a phone app,
or answered when the bridge cannot be made), bridged — the phase raises, then: the caller
is sent to the dialplan fallback, every leg the call created is hung up, the dispatcher
routes no channel of it, the contact watcher holds no wait of it, a transfer request it had
taken is answered, and the call's record ends when its channel does.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ivr_engine.ari import AriError, AriNotFound, ChannelDispatcher, parse_event
from ivr_engine.calls.manager import Calls
from ivr_engine.calls.phase import TransferRequest
from ivr_engine.calls.registry import CallRegistry
from ivr_engine.calls.session import CallServices
from ivr_engine.config import load_config
from ivr_engine.ivr.destinations import Destination
from ivr_engine.wakeup.watcher import ContactAvailable, ContactWatcher

CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "callsafe.yaml"
CID = "caller-1"


class Injected(Exception):
    """The fault a test injects (not an ARI error: a bug anywhere in a phase)."""


class ScriptedAri:
    """Answers the requests a call makes; ``fail[name]`` decides per request (a callable of
    the arguments returning an exception to raise, or None)."""

    app = "ivr-engine"

    def __init__(self) -> None:
        self.log: list[tuple[str, tuple, dict]] = []
        self.fail: dict[str, object] = {}
        self.gone: set[str] = set()  # channels get_channel no longer finds
        self.on_connected = self.on_disconnected = None

    def calls(self, name: str) -> list[tuple[tuple, dict]]:
        return [(a, k) for n, a, k in self.log if n == name]

    def __getattr__(self, name: str):
        async def request(*args, **kwargs):
            self.log.append((name, args, kwargs))
            await asyncio.sleep(0)
            rule = self.fail.get(name)
            exc = rule(*args, **kwargs) if callable(rule) else None
            if exc is not None:
                raise exc
            if name == "create_bridge":
                return {"id": kwargs.get("bridge_id")}
            if name == "get_channel":
                return None if args[0] in self.gone else {"id": args[0]}
            if name == "get_endpoint":
                return {"state": "offline"}
            if name in ("get_variable",):
                return None
            return True
        return request


class Node:
    def __init__(self, ari: ScriptedAri, config) -> None:
        self.name = "asterisk"
        self.ari = ari
        self.calls: Calls | None = None
        self.dispatcher = ChannelDispatcher(lambda ev: None, on_other=self._other)
        self.contacts = ContactWatcher(ari, None, lambda: config)  # type: ignore[arg-type]

    def _other(self, ev) -> None:
        if ev.type == "ChannelDestroyed" and self.calls is not None:
            self.calls.ended(ev.channel_id)


class Intents:
    async def consume_token(self, *a, **k):
        raise Injected("the token phase fails")


class Store:
    intents = Intents()


def event(kind: str, channel: str, **extra) -> object:
    data = {"type": kind, "application": "ivr-engine", "timestamp": "",
            "channel": {"id": channel, "name": f"PJSIP/{channel}", "state": "Up",
                        "caller": {"number": "+15550001111"}}, **extra}
    return parse_event(data)


async def until(predicate, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.005)


@pytest.fixture
async def world():
    config = load_config(CONFIG, {})
    ari = ScriptedAri()
    node = Node(ari, config)
    registry = CallRegistry()
    calls = Calls(lambda: config, CallServices(store=Store(), registry=registry))
    node.calls = calls
    task = asyncio.get_running_loop().create_task(calls.run())
    await until(lambda: calls._tg is not None, "the calls' TaskGroup")
    yield ari, node, calls, registry
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def start(calls: Calls, node: Node, did: str) -> None:
    ev = event("StasisStart", CID, args=["pstn", did])
    assert calls.start(node, ev)  # type: ignore[arg-type]


def press(node: Node, digit: str) -> None:
    node.dispatcher(event("ChannelDtmfReceived", CID, digit=digit, duration_ms=100))


def played(ari: ScriptedAri) -> int:
    return len(ari.calls("play"))


async def into_ringing(ari: ScriptedAri, node: Node, calls: Calls, key: str) -> None:
    start(calls, node, "300")
    await until(lambda: played(ari) == 1, "the top menu's prompt")
    press(node, key)
    await until(lambda: type(calls.sessions[CID].phase).__name__ == "RingPhase", "ringing")


async def answered(ari: ScriptedAri, node: Node, leg: str) -> None:
    await until(lambda: ari.calls("create_channel"), "bob's leg created")
    node.dispatcher(event("StasisStart", leg, args=["leg", CID]))
    await until(lambda: ari.calls("dial"), "bob's leg dialled")
    node.dispatcher(event("ChannelStateChange", leg))  # state Up: answered


async def fault_token(ari, node, calls):
    start(calls, node, "+17145550300")  # the app's fallback number: a token is read
    await until(lambda: ari.calls("answer"), "answered for the token")
    for digit in "123#":
        press(node, digit)


async def fault_ivr(ari, node, calls):
    ari.fail["play"] = lambda cid, media, **k: AriError(400, "POST", "play", "bad media") \
        if "recording:" in str(media) else None
    start(calls, node, "300")
    await until(lambda: played(ari) == 1, "the top menu's prompt")
    press(node, "5")  # menu broken: Asterisk refuses its prompt


async def fault_ringing(ari, node, calls):
    ari.fail["create_channel"] = lambda *a, **k: Injected("creating the phone's leg")
    await into_ringing(ari, node, calls, "3")  # alice: pushed, her registration waited for
    await until(lambda: node.contacts.waiting() == 1, "waiting for alice's phone")
    calls.sessions[CID].post(ContactAvailable("alice", "sip:alice@127.0.0.1", time.monotonic()))


async def fault_answered(ari, node, calls):
    ari.fail["create_bridge"] = lambda *a, **k: AriError(409, "POST", "bridges",
                                                         "Bridge already exists")
    await into_ringing(ari, node, calls, "4")
    await answered(ari, node, f"{CID}-uc1")


async def fault_bridged(ari, node, calls):
    ari.fail["hangup"] = lambda cid, *a, **k: AriError(500, "DELETE", "channel", "boom") \
        if cid == CID else None
    await into_ringing(ari, node, calls, "4")
    await answered(ari, node, f"{CID}-uc1")
    await until(lambda: type(calls.sessions[CID].phase).__name__ == "BridgePhase", "bridged")
    node.dispatcher(event("StasisEnd", f"{CID}-uc1"))  # bob hangs up: ending the caller fails


@pytest.mark.parametrize("fault", [fault_token, fault_ivr, fault_ringing, fault_answered,
                                   fault_bridged], ids=lambda f: f.__name__[6:])
async def test_a_phase_that_raises_leaves_nothing_behind(world, fault):
    ari, node, calls, registry = world
    req = TransferRequest(Destination("queue", "billing"))
    await fault(ari, node, calls)
    if CID in calls.sessions:
        calls.sessions[CID].offer(req)  # taken, or still queued, when the phase fails
    await until(lambda: CID not in calls.sessions, "the call's task ended")
    fallback = [a for a, k in ari.calls("continue_in_dialplan")
                if k.get("context") == "ivr-engine-fallback"]
    assert fallback == [(CID,)], ari.log  # the caller rescued, once
    created = {k.get("channel_id") for _, k in ari.calls("create_channel")}
    hung_up = {a[0] for a, _ in ari.calls("hangup")}
    assert created <= hung_up, f"legs left in Stasis: {created - hung_up}"
    assert len(node.dispatcher) == 0, node.dispatcher._queues
    assert node.contacts.waiting() == 0
    if req.picked.is_set():
        assert req.settled.is_set() and req.outcome is not None and not req.outcome.moved
    info = registry.get(CID)
    if info is not None:  # routed before the fault: handed to the fallback, then ended
        assert (info.state, info.destination) == ("handed-off", "fallback")
        node.dispatcher(event("ChannelDestroyed", CID))
        assert registry.live() == []


def gone_404(path: str) -> AriNotFound:
    """What Asterisk answers a request on a channel that no longer exists (res_ari's
    find_control: 404 only when no channel has that id; 409 when it exists outside Stasis)."""
    return AriNotFound(404, "POST", path, "Channel not found")


async def test_a_hang_up_racing_a_request_ends_the_record_without_an_error(world, caplog):
    """The caller hangs up while a key's request is in flight (bench/soak.py hit it 1 in 300
    calls): Asterisk answers 404 "Channel not found", while GET /channels/<id> still finds
    the channel (it reads the snapshot cache, which keeps a hung-up channel a moment longer).
    The call must end as a hang-up: no error, no rescue, and its record ended although no
    ChannelDestroyed will come (the channel has left the application)."""
    ari, node, calls, registry = world
    start(calls, node, "300")
    await until(lambda: played(ari) == 1, "the top menu's prompt")
    # from now on the channel is gone for every request on it, not for GET /channels/<id>
    ari.fail["set_variable"] = lambda cid, *a, **k: gone_404(f"/channels/{cid}/variable")
    ari.fail["continue_in_dialplan"] = lambda cid, *a, **k: gone_404(f"/channels/{cid}/continue")
    ari.fail["subscribe"] = lambda *a, **k: AriError(422, "POST", "subscription",
                                                     "Event source does not exist")
    press(node, "1")   # queue:support: the variables set as the caller hangs up
    await until(lambda: CID not in calls.sessions, "the call's task ended")
    assert registry.live() == [], [(i.id, i.state) for i in registry.live()]
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
    fallback = [k for _, k in ari.calls("continue_in_dialplan")
                if k.get("context") == "ivr-engine-fallback"]
    assert fallback == []   # nobody to rescue


async def test_a_caller_gone_before_the_rescue_ends_the_record(world):
    """A request fails for another reason (Asterisk refuses a prompt), and the caller hangs
    up before the rescue: the rescue finds no channel, and the record must end (no event
    will say so any more)."""
    ari, node, calls, registry = world
    ari.fail["play"] = lambda cid, media, **k: AriError(400, "POST", "play", "bad media") \
        if "recording:" in str(media) else None

    def hung_up(cid, *a, **k):
        ari.gone.add(cid)
        return gone_404(f"/channels/{cid}/continue")

    ari.fail["continue_in_dialplan"] = hung_up
    ari.fail["subscribe"] = lambda *a, **k: AriError(422, "POST", "subscription",
                                                     "Event source does not exist")
    start(calls, node, "300")
    await until(lambda: played(ari) == 1, "the top menu's prompt")
    press(node, "5")   # menu broken: Asterisk refuses its prompt
    await until(lambda: CID not in calls.sessions, "the call's task ended")
    assert ari.calls("continue_in_dialplan"), "a rescue was tried"
    assert registry.live() == [], [(i.id, i.state) for i in registry.live()]


async def test_the_engine_stopping_right_after_a_hand_off_records_it_handed_off(world):
    """SIGTERM between the hand-off's `continue` and its StasisEnd (seen in CI under load:
    `test_sigterm_right_after_hand_offs_writes_every_record`): the call is Asterisk's now —
    no rescue into the fallback (it fails on a channel out of Stasis) and its record says
    handed-off to its queue."""
    ari, node, calls, registry = world
    start(calls, node, "300")
    await until(lambda: played(ari) == 1, "the top menu's prompt")
    press(node, "1")  # Queue(support)
    await until(lambda: any(k.get("context") == "ivr-engine-queue"
                            for _, k in ari.calls("continue_in_dialplan")), "the hand-off")
    calls._tg._parent_task.cancel()  # the engine stops before the StasisEnd is read
    await until(lambda: CID not in calls.sessions, "the call's task ended")
    contexts = [k.get("context") for _, k in ari.calls("continue_in_dialplan")]
    assert contexts == ["ivr-engine-queue"], contexts
    info = registry.get(CID)
    assert info is not None and (info.state, info.destination) == \
        ("handed-off", "queue:support"), info


@pytest.mark.parametrize("enabled", [True, False])
async def test_the_engine_takes_over_the_dialplans_entry_watchdog(tmp_path, enabled):
    """The dialplan arms TIMEOUT(absolute) for IVR_ENTRY_WATCHDOG seconds before Stasis; the
    engine's first request on a call replaces it: its own deadline before the first prompt,
    or 0 when engine.watchdog is off (else the entry watchdog would take the caller out of
    the menus 15 s in)."""
    text = CONFIG.read_text()
    if not enabled:
        text = text.replace("  watchdog:\n", "  watchdog:\n    enabled: false\n", 1)
    path = tmp_path / "callsafe.yaml"
    path.write_text(text)
    config = load_config(path, {})
    assert config.engine.watchdog.enabled is enabled
    ari = ScriptedAri()
    node = Node(ari, config)
    calls = Calls(lambda: config, CallServices(store=Store(), registry=CallRegistry()))
    node.calls = calls
    task = asyncio.get_running_loop().create_task(calls.run())
    try:
        await until(lambda: calls._tg is not None, "the calls' TaskGroup")
        start(calls, node, "300")
        await until(lambda: played(ari) == 1, "the top menu's prompt")
        names = [n for n, _, _ in ari.log]
        arms = [(i, float(a[2])) for i, (n, a, _) in enumerate(ari.log)
                if n == "set_variable" and a[1] == "TIMEOUT(absolute)"]
        assert arms and arms[0][0] < names.index("play"), ari.log  # before the caller hears
        if enabled:
            assert arms[0][1] > 0, ari.log
        else:  # the engine's very first request, and nothing armed after it
            assert arms[0] == (0, 0.0) and len(arms) == 1, ari.log
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
