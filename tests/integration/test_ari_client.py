"""AriClient and ChannelDispatcher against the real sandbox Asterisk 22 (no mocks).

How a test gets a channel into its own (uniquely named) Stasis app
------------------------------------------------------------------
``originate("Local/s@ivr-engine-fallback", app=<test app>, channel_id=A, other_channel_id=B)``:
the ``;2`` half (id B) runs the dialplan context ``ivr-engine-fallback`` (Answer, Playback,
Queue(ivr-fallback) with no members: it stays up until hung up); as soon as it answers, the
``;1`` half (id A) enters the test app (StasisStart with the originate's appArgs).  We do not
go through ``from-pstn``: it enters the fixed app name ``ivr-engine``, which a running engine
may own.  ARI's originate also subscribes the app to *both* Local halves, so the ``;2``
half's events (ChannelDialplan, ChannelDtmfReceived, ...) reach the test app too.

Facts these tests pin down (Asterisk 22.10)
-------------------------------------------
* One play request with several media: one PlaybackStarted per item, one PlaybackContinuing
  per transition, one PlaybackFinished (see AriClient.play).
* App subscriptions to a channel are reference counted: the originate holds one, being in
  Stasis holds one (dropped at StasisEnd), each explicit ``subscribe`` holds one.  A channel
  that entered from the dialplan therefore stops producing events at StasisEnd unless it was
  subscribed explicitly; with ``subscribe("channel:ID")`` ChannelDialplan / ChannelVarset /
  ChannelHangupRequest / ChannelDestroyed keep coming after StasisEnd.
* ``ari shutdown websocket session <id>`` (CLI) closes one ARI websocket server-side (close
  code 1000): that is how the reconnect test forces a disconnect.
* A second websocket for the same app name gets the app; the first receives
  ApplicationReplaced.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest

from ivr_engine.ari import (
    AriAppReplaced,
    AriClient,
    AriError,
    AriNotFound,
    ChannelDestroyed,
    ChannelDialplan,
    ChannelDispatcher,
    ChannelDtmfReceived,
    ChannelEnteredBridge,
    ChannelLeftBridge,
    ChannelVarset,
    Dial,
    Event,
    PlaybackContinuing,
    PlaybackFinished,
    PlaybackStarted,
    StasisEnd,
    StasisStart,
)

pytestmark = pytest.mark.sandbox

LOCAL_ENDPOINT = "Local/s@ivr-engine-fallback"


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def on(channel_id: str):
    return lambda e: e.channel_id == channel_id


async def enter_app(ari, *, args=("pstn", "+33900000000"), variables=None):
    """Originate a Local pair whose ;1 half enters ``ari.app``. Returns (id1, id2, start)."""
    ch1, ch2 = _id("t1"), _id("t2")
    created = await ari.originate(
        LOCAL_ENDPOINT,
        app=ari.app,
        app_args=list(args),
        channel_id=ch1,
        other_channel_id=ch2,
        variables=variables,
    )
    assert created["id"] == ch1
    start = await ari.next_event(StasisStart, timeout=10, predicate=on(ch1))
    return ch1, ch2, start


# ------------------------------------------------------------------ 1. connect / auth


async def test_connect_info_and_auth_errors(sandbox, ari, caplog):
    assert ari.connected
    info = await ari.asterisk_info()
    assert info["system"]["version"].startswith("22")

    # Unknown resources: None / False / AriNotFound, never a crash.
    assert await ari.get_channel("no-such-channel") is None
    assert await ari.hangup("no-such-channel") is False
    assert await ari.get_variable("no-such-channel", "X") is None
    with pytest.raises(AriNotFound) as not_found:
        await ari.answer("no-such-channel")
    assert not_found.value.status == 404 and not_found.value.message

    wrong = "wrong-" + sandbox.ari_password
    caplog.set_level(logging.DEBUG, logger="ivr_engine.ari")
    async with AriClient(sandbox.ari_url, sandbox.ari_username, wrong, _id("ivr-test-bad"),
                         reconnect_min=0.05, reconnect_max=0.1) as bad:
        with pytest.raises(AriError) as exc_info:
            await bad.asterisk_info()
        exc = exc_info.value
        assert exc.status == 401 and exc.method == "GET" and exc.path == "/asterisk/info"
        assert exc.message  # Asterisk's JSON error text
        for text in (str(exc), repr(exc), repr(bad)):
            assert wrong not in text and sandbox.ari_password not in text

        # The websocket is refused too: run() keeps retrying, never connects, logs no secret.
        task = asyncio.create_task(bad.run(lambda e: None))
        with pytest.raises(TimeoutError):
            await bad.wait_connected(timeout=0.5)
        assert not bad.connected and not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert "401" in caplog.text
    assert sandbox.ari_password not in caplog.text


# ------------------------------------------------------------------ 2. stasis + playback


async def test_stasis_start_answer_and_playbacks(ari):
    ch1, ch2, start = await enter_app(ari, args=("pstn", "+33900000000"))
    assert start.args == ("pstn", "+33900000000")
    assert start.application == ari.app
    assert start.channel.name.startswith("Local/s@ivr-engine-fallback")
    await ari.answer(ch1)
    assert (await ari.get_channel(ch1))["state"] == "Up"

    # Single media with our own playback id.
    pb = await ari.play(ch1, "sound:hello-world", playback_id="pb-hello", lang="en")
    assert pb["id"] == "pb-hello"
    started = await ari.next_event(PlaybackStarted, predicate=lambda e: e.playback.id == "pb-hello")
    assert started.channel_id == ch1 and started.playback.media_uri == "sound:hello-world"
    finished = await ari.next_event(PlaybackFinished,
                                    predicate=lambda e: e.playback.id == "pb-hello")
    assert finished.channel_id == ch1 and finished.playback.state == "done"
    assert finished.timestamp >= started.timestamp

    # Several media in one request: Started per item, Continuing per transition, one Finished.
    media = ["sound:digits/1", "sound:digits/2", "sound:digits/3"]
    pb = await ari.play(ch1, media, playback_id="pb-list")
    assert pb["id"] == "pb-list"
    await ari.next_event(PlaybackFinished, timeout=10,
                         predicate=lambda e: e.playback.id == "pb-list")
    seq = [(type(e).__name__, e.playback.media_uri, e.playback.next_media_uri)
           for e in ari.history
           if isinstance(e, (PlaybackStarted, PlaybackContinuing, PlaybackFinished))
           and e.playback.id == "pb-list"]
    assert seq == [
        ("PlaybackStarted", media[0], media[1]),
        ("PlaybackContinuing", media[0], media[1]),
        ("PlaybackStarted", media[1], media[2]),
        ("PlaybackContinuing", media[1], media[2]),
        ("PlaybackStarted", media[2], None),
        ("PlaybackFinished", media[2], None),
    ], seq

    # Language is honoured (the French prompts are installed).
    pb = await ari.play(ch1, "sound:beep", playback_id="pb-fr", lang="fr")
    assert pb["language"] == "fr"
    await ari.next_event(PlaybackFinished, predicate=lambda e: e.playback.id == "pb-fr")

    # Stop mid-way: a long list is cut short with a single PlaybackFinished.
    await ari.play(ch1, ["sound:pls-hold-while-try", "sound:hello-world"], playback_id="pb-long")
    await ari.next_event(PlaybackStarted, predicate=lambda e: e.playback.id == "pb-long")
    t0 = time.monotonic()
    assert await ari.stop_playback("pb-long") is True
    stopped = await ari.next_event(PlaybackFinished, timeout=2,
                                   predicate=lambda e: e.playback.id == "pb-long")
    assert time.monotonic() - t0 < 1.0  # well before the 2.5 s prompt would have ended
    assert stopped.playback.media_uri == "sound:pls-hold-while-try"
    # a channel plays one thing at a time: once a marker played after the stop has
    # finished, the list's second item would have started before it if it ever did
    await ari.play(ch1, "sound:beep", playback_id="pb-marker")
    await ari.next_event(PlaybackFinished, predicate=lambda e: e.playback.id == "pb-marker")
    assert not [e for e in ari.history if isinstance(e, PlaybackStarted)
                and e.playback.id == "pb-long" and e.playback.media_uri == "sound:hello-world"]

    assert await ari.stop_playback("pb-long") is False  # already finished
    assert await ari.stop_playback("no-such-playback") is False


async def test_create_channel_then_dial(ari):
    ch1, ch2 = _id("c1"), _id("c2")
    created = await ari.create_channel(LOCAL_ENDPOINT, app=ari.app, app_args="created,x",
                                       channel_id=ch1, other_channel_id=ch2,
                                       variables={"IVR_TEST_VAR": "v-42"})
    assert created["id"] == ch1 and created["state"] == "Down"
    start = await ari.next_event(StasisStart, predicate=on(ch1))
    assert start.args == ("created", "x")  # in the app before being dialled
    assert await ari.get_variable(ch1, "IVR_TEST_VAR") == "v-42"
    # Unlike originate, create does not subscribe the app to the ;2 half: do it ourselves.
    app = await ari.subscribe(f"channel:{ch2}")
    assert ch2 in app["channel_ids"]
    await ari.dial(ch1, timeout=10)
    dial = await ari.next_event(Dial, predicate=lambda e: e.channel_id == ch1
                                and e.dialstatus == "ANSWER")
    assert dial.peer is not None and dial.peer.id == ch1
    # The ;2 half answers (ivr-engine-fallback disarms the watchdog, then Answer()):
    # ;1 goes Up.
    await ari.next_event("ChannelStateChange", predicate=lambda e: e.channel_id == ch1
                         and e.channel.state == "Up")
    answer = await ari.next_event(ChannelDialplan, predicate=lambda e: e.channel_id == ch2
                                  and e.dialplan_app == "Answer")
    assert answer.channel.context == "ivr-engine-fallback"
    assert (await ari.get_channel(ch1))["state"] == "Up"


# ------------------------------------------------------------------ 3. DTMF


async def test_dtmf_crosses_the_local_pair(ari):
    ch1, ch2, _ = await enter_app(ari)
    # ;2 is already subscribed by the originate; an explicit subscription is harmless.
    app = await ari.subscribe(f"channel:{ch2}")
    assert ch2 in app["channel_ids"]
    t0 = time.monotonic()
    await ari.send_dtmf(ch1, "12#", between=50, duration=80)
    digits = []
    for _ in range(3):
        ev = await ari.next_event(ChannelDtmfReceived, timeout=5, predicate=on(ch2))
        digits.append(ev.digit)
        assert ev.duration_ms >= 60
    assert digits == ["1", "2", "#"]
    assert time.monotonic() - t0 < 3
    # DTMF written to ;1 is *received* by ;2 only.
    assert not [e for e in ari.history if isinstance(e, ChannelDtmfReceived)
                and e.channel_id == ch1]


# ------------------------------------------------------------------ 4. variables, dialplan


async def test_variables_continue_and_subscription_after_stasis_end(ari):
    ch1, ch2, _ = await enter_app(ari)
    await ari.set_variable(ch1, "IVR_TEST", "héllo wörld")
    varset = await ari.next_event(ChannelVarset, predicate=lambda e: e.channel_id == ch1
                                  and e.variable == "IVR_TEST")
    assert varset.value == "héllo wörld"
    assert await ari.get_variable(ch1, "IVR_TEST") == "héllo wörld"
    assert await ari.get_variable(ch1, "IVR_NEVER_SET") is None
    # ;2 is not in Stasis: ARI refuses to set its variables (409).
    with pytest.raises(AriError) as exc_info:
        await ari.set_variable(ch2, "IVR_TEST", "x")
    assert exc_info.value.status == 409

    # Make ch1 look like a call that came in from the dialplan: drop the reference the
    # originate holds, so only "in Stasis" keeps the app subscribed; then subscribe.
    await ari.unsubscribe(f"channel:{ch1}")
    await ari.subscribe(f"channel:{ch1}")
    await ari.set_variable(ch1, "IVR_TARGET", "support")
    await ari.continue_in_dialplan(ch1, "ivr-engine-queue", "support", 1)
    await ari.next_event(StasisEnd, predicate=on(ch1))
    queue_app = await ari.next_event(ChannelDialplan, predicate=lambda e: e.channel_id == ch1
                                     and e.dialplan_app == "Queue")
    assert queue_app.dialplan_app_data == "support"
    assert queue_app.channel.context == "ivr-engine-queue"
    # Queue() sets variables after StasisEnd: still delivered thanks to the subscription.
    await ari.next_event(ChannelVarset, predicate=lambda e: e.channel_id == ch1
                         and e.variable == "QUEUEWAIT")
    # ARI reads variables of channels outside Stasis too.
    assert await ari.get_variable(ch1, "IVR_TARGET") == "support"
    # Hanging up a channel that left Stasis works; its end is still reported.
    assert await ari.hangup(ch1) is True
    destroyed = await ari.next_event(ChannelDestroyed, predicate=on(ch1))
    assert destroyed.cause == 16


async def test_no_events_after_stasis_end_without_subscription(ari):
    """Control for the test above: without an explicit subscription the events stop."""
    ch1, ch2, _ = await enter_app(ari)
    await ari.unsubscribe(f"channel:{ch1}")  # only "in Stasis" left, as for a dialplan call
    await ari.set_variable(ch1, "IVR_TARGET", "support")
    await ari.continue_in_dialplan(ch1, "ivr-engine-queue", "support", 1)
    await ari.next_event(StasisEnd, predicate=on(ch1))
    with pytest.raises(TimeoutError):
        await ari.next_event(ChannelDialplan, timeout=1.0, predicate=on(ch1))
    app = await ari.request("GET", f"/applications/{ari.app}")
    assert ch1 not in app["channel_ids"]
    assert await ari.hangup(ch1) is True
    with pytest.raises(TimeoutError):
        await ari.next_event(ChannelDestroyed, timeout=1.0, predicate=on(ch1))


# ------------------------------------------------------------------ 5. hangup


async def test_hangup(ari):
    ch1, ch2, _ = await enter_app(ari)
    assert await ari.hangup(ch1, reason="normal") is True
    end = await ari.next_event(StasisEnd, predicate=on(ch1))
    destroyed = await ari.next_event(ChannelDestroyed, predicate=on(ch1))
    assert destroyed.cause == 16 and destroyed.cause_txt == "Normal Clearing"
    assert end.timestamp <= destroyed.timestamp
    # The other half goes too (the pair was subscribed by the originate).
    await ari.next_event(ChannelDestroyed, predicate=on(ch2))
    assert await ari.hangup(ch1) is False
    assert await ari.get_channel(ch1) is None
    assert ch1 not in {c["id"] for c in await ari.list_channels()}


# ------------------------------------------------------------------ bridges, endpoints


async def test_bridge_and_endpoint_subscription(ari):
    a1, _, _ = await enter_app(ari)
    b1, _, _ = await enter_app(ari)
    bridge_id = _id("br")
    bridge = await ari.create_bridge("mixing", bridge_id=bridge_id, name="test")
    assert bridge["id"] == bridge_id
    await ari.add_channel_to_bridge(bridge_id, [a1, b1])
    for ch in (a1, b1):
        entered = await ari.next_event(ChannelEnteredBridge, predicate=on(ch))
        assert entered.bridge_id == bridge_id
    await ari.remove_channel_from_bridge(bridge_id, a1)
    left = await ari.next_event(ChannelLeftBridge, predicate=on(a1))
    assert left.bridge_id == bridge_id
    assert await ari.destroy_bridge(bridge_id) is True
    # Right after the DELETE the bridge can still be half-gone for a moment: ARI then
    # answers 409 "Bridge not in Stasis application" instead of 404.
    for _ in range(40):
        try:
            assert await ari.destroy_bridge(bridge_id) is False
            break
        except AriError as exc:
            assert exc.status == 409, exc
            await asyncio.sleep(0.05)
    else:
        pytest.fail("bridge never reported as gone")

    endpoints = await ari.list_endpoints()
    assert {"PJSIP/alice", "PJSIP/bob"} <= {f"{e['technology']}/{e['resource']}" for e in endpoints}
    assert (await ari.get_endpoint("PJSIP", "alice"))["resource"] == "alice"
    assert await ari.get_endpoint("PJSIP", "nobody-here") is None
    app = await ari.subscribe("endpoint:PJSIP/alice")
    assert "PJSIP/alice" in app["endpoint_ids"]
    app = await ari.unsubscribe("endpoint:PJSIP/alice")
    assert "PJSIP/alice" not in app["endpoint_ids"]


# ------------------------------------------------------------------ 6. app replaced


async def test_second_client_with_same_app_replaces_first(ari, ari_factory, ws_sessions):
    first = ari
    second = await ari_factory(app=first.app)
    with pytest.raises(AriAppReplaced):
        await asyncio.wait_for(first.task, timeout=5)
    assert not first.connected
    # No ping-pong: the first one's run() has ended (it never reconnects to take the app
    # back), and the app works for the new owner, which is still its only websocket after
    # a call went through it.
    assert first.task.done()
    ch1, _, _ = await enter_app(second)
    assert ch1 not in {e.channel_id for e in first.history}
    assert second.connected and not second.task.done()
    assert [apps for apps in ws_sessions().values() if first.app in apps] == [[first.app]]


# ------------------------------------------------------------------ 7. reconnect


async def test_reconnects_after_server_side_close(ari_factory, ws_sessions, sandbox):
    client = await ari_factory(reconnect_min=0.1, reconnect_max=1.0)
    transitions: list[tuple[str, float]] = []
    client.on_connected = lambda: transitions.append(("up", time.monotonic()))
    client.on_disconnected = lambda: transitions.append(("down", time.monotonic()))
    ch_before, _, _ = await enter_app(client)  # a call in progress across the blip

    [old_session] = [sid for sid, apps in ws_sessions().items() if client.app in apps]
    t0 = time.monotonic()
    out = sandbox.cli(f"ari shutdown websocket session {old_session}")
    assert "Shutting down" in out
    for _ in range(100):
        if [k for k, _ in transitions] == ["down", "up"]:
            break
        await asyncio.sleep(0.05)
    assert [k for k, _ in transitions] == ["down", "up"], transitions
    assert client.connected and not client.task.done()
    reconnect_s = transitions[1][1] - t0
    assert reconnect_s < 2.0, reconnect_s
    [new_session] = [sid for sid, apps in ws_sessions().items() if client.app in apps]
    assert new_session != old_session

    # A new channel entering the app after the reconnect is delivered ...
    ch_after, _, start = await enter_app(client)
    assert start.channel_id == ch_after
    # ... and the call that was in Stasis during the blip is still ours.
    await client.play(ch_before, "sound:beep", playback_id="pb-after-blip")
    done = await client.next_event(PlaybackFinished,
                                   predicate=lambda e: e.playback.id == "pb-after-blip")
    assert done.channel_id == ch_before


async def test_heartbeat_and_cancel_close_the_websocket(ari_factory, ws_sessions):
    # Asterisk answers the client's pings: a 0.3 s heartbeat must not drop the socket over
    # five periods (watched all along: the first drop fails the test at once).
    client = await ari_factory(heartbeat=0.3)
    downs: list[float] = []
    client.on_disconnected = lambda: downs.append(time.monotonic())
    watch_until = time.monotonic() + 1.5
    while time.monotonic() < watch_until:
        assert client.connected and downs == [], downs
        await asyncio.sleep(0.05)
    assert client.connected and downs == []
    assert any(client.app in apps for apps in ws_sessions().values())
    # Cancelling run() closes the websocket (Asterisk forgets the session) and reports it.
    client.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await client.task
    assert not client.connected and len(downs) == 1
    for _ in range(40):
        if not any(client.app in apps for apps in ws_sessions().values()):
            break
        await asyncio.sleep(0.05)
    assert not any(client.app in apps for apps in ws_sessions().values())


async def test_backoff_doubles_with_jitter_up_to_max(caplog):
    """Against a closed local port: retry delays grow 0.05 -> 0.1 -> 0.2 (max), ±20 %."""
    caplog.set_level(logging.INFO, logger="ivr_engine.ari")
    async with AriClient("http://127.0.0.1:9", "u", "p", "nowhere",
                         reconnect_min=0.05, reconnect_max=0.2) as client:
        task = asyncio.create_task(client.run(lambda e: None))
        for _ in range(100):
            delays = [r.args[1] for r in caplog.records if "reconnecting in" in r.msg]
            if len(delays) >= 5:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    expected = [0.05, 0.1, 0.2, 0.2, 0.2]
    assert len(delays) >= 5, delays
    for got, want in zip(delays, expected):
        assert want * 0.8 <= got <= want * 1.2, (delays, expected)
    assert not client.connected


# ------------------------------------------------------------------ 8. dispatcher


async def until(cond, timeout: float, what: str, every: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(every)


async def test_dispatcher_isolates_a_slow_call(sandbox):
    """Channel A's handler is stuck on each event until the test lets it go; channel B's
    events reach B's handler meanwhile (a dispatcher that made B wait behind A would never
    deliver them: the wait times out), and A's own events then follow one at a time, in
    order."""
    app = _id("ivr-test-disp")
    received: dict[str, list[tuple[str, float]]] = {}
    workers: list[asyncio.Task] = []
    slow_channel: list[str] = []
    go_a: asyncio.Queue[float] = asyncio.Queue()  # one token per A event it may finish
    released: list[float] = []
    disp: ChannelDispatcher

    async def worker(channel_id: str, queue: asyncio.Queue[Event]) -> None:
        while True:
            event = await queue.get()
            if isinstance(event, ChannelVarset) and event.variable == "TICK":
                received.setdefault(channel_id, []).append((event.value, time.monotonic()))
                if channel_id in slow_channel:
                    released.append(await go_a.get())  # a call stuck in slow work
            if isinstance(event, StasisEnd):
                disp.unregister(channel_id)
                return

    def on_stasis_start(event: StasisStart) -> None:
        queue = disp.register(event.channel.id)
        workers.append(asyncio.create_task(worker(event.channel.id, queue)))

    others: list[Event] = []
    disp = ChannelDispatcher(on_stasis_start, on_other=others.append)
    async with AriClient(sandbox.ari_url, sandbox.ari_username, sandbox.ari_password, app) as c:
        run = asyncio.create_task(c.run(disp))
        try:
            await c.wait_connected(10)
            a, b = _id("A"), _id("B")
            slow_channel.append(a)
            for ch in (a, b):
                await c.originate(LOCAL_ENDPOINT, app=app, channel_id=ch)
            await until(lambda: a in disp and b in disp, 10, "A and B registered")
            assert len(disp) == 2

            for i in range(3):
                await c.set_variable(a, "TICK", f"a{i}")
            await until(lambda: len(received.get(a, [])) == 1, 10, "A stuck on its first")
            for i in range(3):
                await c.set_variable(b, "TICK", f"b{i}")
            await until(lambda: len(received.get(b, [])) == 3, 10, "B's events, A stuck")
            assert [v for v, _ in received[b]] == ["b0", "b1", "b2"]
            assert len(received[a]) == 1  # A is still busy with its first event

            for _ in range(3):  # A catches up, one event at a time, in order
                n = len(received[a])
                go_a.put_nowait(time.monotonic())
                if n < 3:
                    await until(lambda: len(received[a]) > n or n == 3, 10, "A's next")
            got_a = received[a]
            assert [v for v, _ in got_a] == ["a0", "a1", "a2"]
            # each A event reached the handler only after the one before was let go
            await until(lambda: len(released) == 3, 10, "A's last event let go")
            assert got_a[1][1] >= released[0] and got_a[2][1] >= released[1]
            # Unregistered channels (the ;2 halves, and A/B before their StasisStart: an
            # originated channel's Dial/ChannelStateChange come first) went to on_other ...
            assert any(e.channel_id and e.channel_id not in (a, b) for e in others)
            # ... but nothing of A/B once registered.
            assert not [e for e in others if isinstance(e, ChannelVarset)
                        and e.variable == "TICK"]

            for ch in (a, b):
                await c.hangup(ch)
            await asyncio.wait_for(asyncio.gather(*workers), 5)
            assert len(disp) == 0
        finally:
            for w in workers:
                w.cancel()
            run.cancel()
            await asyncio.gather(run, *workers, return_exceptions=True)


async def test_websocket_requests_are_served_in_order(ari_factory):
    """Pins down the Asterisk fact behind the engine's command-order rule on the websocket
    transport: requests of one websocket are served one after another, so a command that
    waits for a channel's control thread (a variable set behind a playing prompt) holds the
    requests sent after it, even for other resources; over HTTP they do not wait."""
    waits = {}
    for transport in ("http", "websocket"):
        ari = await ari_factory(transport=transport)
        ch1, _, _ = await enter_app(ari)
        await ari.answer(ch1)
        await ari.play(ch1, "sound:hello-world", playback_id=_id("pb"))
        await ari.next_event(PlaybackStarted, predicate=on(ch1))
        blocked = asyncio.ensure_future(ari.set_variable(ch1, "IVR_T", "1"))
        if ari._ws_rest is not None:  # the variable's request is on the websocket first
            await until(lambda: ari._ws_rest._pending, 5, "the set_variable request sent")
        else:
            await asyncio.sleep(0.05)  # (HTTP: on its own connection either way)
        await ari.asterisk_info()
        waits[transport] = blocked.done()  # had the info to wait for the variable?
        await blocked
    assert waits == {"http": False, "websocket": True}, waits  # hello-world lasts ~1.2 s
