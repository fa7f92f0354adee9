"""The scripted Local-channel caller (``ivr-engine call``, the tests, the benchmarks).

It places a real call through Asterisk: a Local channel pair whose ``;1`` half (the caller
side) stays in the caller's own ARI application and whose ``;2`` half (the dialplan side,
``<caller side>-ivr``) runs the dialplan (``from-pstn`` by default), so it enters the
engine like any PSTN call. The pair is created as ulaw, like a trunk (without ``formats``
Asterisk runs it at slin192 and resamples every frame). The caller follows the dialplan
side into a :class:`~ivr_engine.testing.record.CallRecord` and presses keys on the caller
side when its policy says so:

- :class:`PressOnAwaiting` (tests, CLI): one key each time the engine publishes
  ``IVR_AWAITING``, i.e. when the menu waits for input after its prompt; ``t`` sends nothing
  and lets the menu time out; when the keys run out there, the caller hangs up;
- :class:`PressOnLevel` (benchmarks, barge-in): the key of level N as soon as the prompt of
  level N starts (:func:`prompt_levels`, :func:`variable_levels` tell the level).

A key the policy asks for before the caller side is answered is sent once it is (ARI
refuses DTMF on a channel that is not Up). The call ends when it reaches a hand-off
application (``Queue``, ``VoiceMail``, ``Dial``; after ``hold`` seconds), when either side
hangs up, when the policy hangs up, on :meth:`LocalCall.hang_up`, or after ``timeout``; the
caller side is then hung up (Asterisk drops the subscription with the channel).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self

from ..ari import (
    AriClient,
    AriError,
    ChannelDestroyed,
    ChannelHangupRequest,
    ChannelStateChange,
    ChannelVarset,
    Event,
    PlaybackStarted,
    StasisEnd,
    StasisStart,
)
from .record import AriListener, CallRecord, channel_of

#: what a policy returns to hang up
HANG_UP = "hang-up"
#: a key that sends nothing (the menu times out)
NO_KEY = "t"

#: ``policy(event on the dialplan side, record) -> key | NO_KEY | HANG_UP | None``
Policy = Callable[[Event, CallRecord], str | None]


class PressOnAwaiting:
    """One key each time the engine publishes ``IVR_AWAITING``; hang up when none is left."""

    def __init__(self, keys: Sequence[str]):
        self.pending = list(keys)

    def __call__(self, ev: Event, record: CallRecord) -> str | None:
        if not isinstance(ev, ChannelVarset) or ev.variable != "IVR_AWAITING":
            return None
        return self.pending.pop(0) if self.pending else HANG_UP


class PressOnLevel:
    """Barge-in: ``keys[n - 1]`` as soon as the prompt of level ``n`` starts.

    ``level_of(event)`` is the level an event starts (None: not a level signal); the last
    level seen is kept in ``level``. With ``repeat=False`` a level that starts again (a
    native tree replaying after a timeout) is not pressed again."""

    def __init__(self, keys: Sequence[str], level_of: Callable[[Event], int | None], *,
                 repeat: bool = True):
        self.keys = list(keys)
        self.level_of = level_of
        self.repeat = repeat
        self.level = 0
        self.pressed: set[int] = set()

    def __call__(self, ev: Event, record: CallRecord) -> str | None:
        n = self.level_of(ev)
        if n is None:
            return None
        self.level = n
        if not 1 <= n <= len(self.keys) or (not self.repeat and n in self.pressed):
            return None
        self.pressed.add(n)
        return self.keys[n - 1]


def prompt_levels(levels: Mapping[str, int]) -> Callable[[Event], int | None]:
    """Level signal: a PlaybackStarted of one of ``levels`` (media -> level)."""
    def level_of(ev: Event) -> int | None:
        return levels.get(ev.playback.media_uri) if isinstance(ev, PlaybackStarted) else None
    return level_of


def variable_levels(name: str) -> Callable[[Event], int | None]:
    """Level signal: the channel variable ``name`` set to the level (native dialplan)."""
    def level_of(ev: Event) -> int | None:
        if isinstance(ev, ChannelVarset) and ev.variable == name:
            try:
                return int(ev.value)
            except ValueError:
                return None
        return None
    return level_of


def dialplan_side(caller_side: str) -> str:
    """The id of the Local pair's ``;2`` half, from its ``;1`` half's."""
    return caller_side + "-ivr"


async def create_local_pair(ari: AriClient, did: str, context: str, caller_side: str, *,
                            formats: str | None = "ulaw",
                            variables: Mapping[str, str] | None = None) -> str:
    """``POST /channels/create Local/<did>@<context>``: the caller side in ``ari``'s
    application, the dialplan side subscribed to; returns the dialplan side's id. Dial the
    caller side once its StasisStart has arrived (it enters the application
    asynchronously)."""
    b = dialplan_side(caller_side)
    await ari.create_channel(f"Local/{did}@{context}", app=ari.app, channel_id=caller_side,
                             other_channel_id=b, formats=formats or None,
                             variables=dict(variables) if variables else None)
    await ari.subscribe(f"channel:{b}")
    return b


_STOP = object()


class LocalCall:
    """One scripted call (from :meth:`CallerPool.start`); ``record`` fills in as it goes.

    ``outcome`` once finished: ``handoff`` (a hand-off application ran), ``caller-hangup``
    (the policy hung up), ``hangup`` (the dialplan side hung up), ``caller-ended`` (the
    caller side was ended by someone else), ``stopped`` (:meth:`hang_up`), ``timeout`` or
    ``error`` (then ``error`` holds the exception)."""

    def __init__(self, pool: CallerPool, did: str, *, context: str, policy: Policy | None,
                 caller: str | None, timeout: float, hold: float, post_dial: str,
                 variables: Mapping[str, str] | None, formats: str | None, silence: bool,
                 channel_id: str | None, dtmf_ms: int):
        self.pool, self.did, self.context, self.policy = pool, did, context, policy
        self.caller, self.timeout, self.hold, self.post_dial = caller, timeout, hold, post_dial
        self.formats, self.silence, self.dtmf_ms = formats, silence, dtmf_ms
        self.variables = {**({"CONNECTEDLINE(num)": caller, "CONNECTEDLINE(name)": caller}
                             if caller else {}), **(variables or {})}
        self.caller_channel = channel_id or f"caller-{uuid.uuid4().hex[:12]}"
        self.record = CallRecord(caller=caller or "", channel=dialplan_side(self.caller_channel))
        self.outcome: str | None = None
        self.error: BaseException | None = None
        self.keys_used = 0  # keys the policy used, ``t`` included
        self.answered = False  # the caller side is Up
        self.created_at = time.monotonic()
        self.duration_ms = 0.0
        self._queue: asyncio.Queue = asyncio.Queue()
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------------ results

    @property
    def destination(self) -> dict[str, Any] | None:
        """The hand-off Asterisk ran; else, for a call that was hung up, the end the engine
        declared (``IVR_DESTINATION``) or ``hangup``; ``caller-hangup`` when the keys ran
        out; None when the call ended otherwise (timeout, error, stopped)."""
        if self.outcome == "caller-hangup":
            return {"type": "caller-hangup", "target": None}
        d = self.record.handoff
        if d is None and self.outcome in ("hangup", "caller-ended"):
            d = self.record.declared or {"type": "hangup", "target": None}
        return d

    def key_latencies_ms(self) -> list[float]:
        """Per key sent: local time from the send to the next prompt starting."""
        out, sent = [], None
        for t, _, kind, _ in self.record.timeline:
            if kind == "send":
                sent = t
            elif kind == "prompt" and sent is not None:
                out.append((t - sent) * 1000)
                sent = None
        return out

    def as_dict(self) -> dict[str, Any]:
        """The shape ``ivr-engine call --json`` prints (``simulate --json``'s keys and more)."""
        rec = self.record
        return {
            "did": self.did, "caller": self.caller, "channel": rec.channel,
            "prompts": list(rec.prompts), "path": list(rec.path),
            "destination": self.destination,
            "declared_destination": rec.variables.get("IVR_DESTINATION"),
            "fallback": "IVR_FALLBACK" in rec.variables, "keys_used": self.keys_used,
            "key_latencies_ms": self.key_latencies_ms(),
            "dialplan": [list(x) for x in rec.dialplan], "dial_status": list(rec.dial_status),
            "duration_ms": round(self.duration_ms, 1),
        }

    # ------------------------------------------------------------------ control

    @property
    def done(self) -> bool:
        """The call has ended (``outcome`` says how)."""
        return self._task is not None and self._task.done()

    def hang_up(self) -> None:
        """End the call now (the caller side is hung up); await :meth:`finished`."""
        self._queue.put_nowait((time.monotonic(), _STOP))

    async def finished(self) -> LocalCall:
        """Wait until the call has ended (cancelling the wait cancels the call, which is
        then hung up)."""
        assert self._task is not None
        await self._task
        return self

    def _route(self, now: float, ev: Event) -> None:
        self._queue.put_nowait((now, ev))

    def _start(self) -> None:
        a, b = self.caller_channel, self.record.channel
        self.pool.routes[a] = self.pool.routes[b] = self._route
        self._task = asyncio.create_task(self._run(), name=f"call-{a}")

    async def _run(self) -> None:
        ari, a = self.pool.ari, self.caller_channel
        self.created_at = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                await create_local_pair(ari, self.did, self.context, a, formats=self.formats,
                                        variables=self.variables)
                while True:  # the caller side enters our application asynchronously
                    now, ev = await self._queue.get()
                    if ev is _STOP:
                        self.outcome = "stopped"
                        return
                    if isinstance(ev, StasisStart) and ev.channel_id == a:
                        break
                    if channel_of(ev) == self.record.channel:
                        self.record.observe(ev, now)
                await ari.dial(a, timeout=int(self.timeout))
                await self._follow()
        except TimeoutError as exc:
            self.outcome, self.error = "timeout", exc
        except Exception as exc:  # noqa: BLE001 - reported in the outcome
            self.outcome, self.error = "error", exc
        finally:
            self.duration_ms = (time.monotonic() - self.created_at) * 1000
            self.pool.routes.pop(a, None)
            self.pool.routes.pop(self.record.channel, None)
            with contextlib.suppress(Exception):  # 404 when it is gone already
                await asyncio.wait_for(ari.hangup(a), 10)

    async def _follow(self) -> None:
        rec, a = self.record, self.caller_channel
        deferred: list[str] = []
        hold_until: float | None = None
        while True:
            if hold_until is None:
                now, ev = await self._queue.get()
            else:
                try:
                    now, ev = await asyncio.wait_for(self._queue.get(),
                                                     hold_until - time.monotonic())
                except TimeoutError:
                    return
            if ev is _STOP:
                self.outcome = self.outcome or "stopped"
                return
            if channel_of(ev) == a:  # the caller's own side
                if isinstance(ev, (StasisEnd, ChannelHangupRequest, ChannelDestroyed)):
                    self.outcome = self.outcome or "caller-ended"
                    rec.end(now)
                    return
                if isinstance(ev, ChannelStateChange) and ev.channel.state == "Up" \
                        and not self.answered:
                    self.answered = True
                    await self._on_answer()
                    for key in deferred:
                        await self._send(key)
                    deferred.clear()
                continue
            kind = rec.observe(ev, now)
            if kind in ("hangup", "ended"):
                self.outcome = self.outcome or "hangup"
                rec.end(now)
                return
            action = self.policy(ev, rec) if self.policy is not None else None
            if action == HANG_UP:
                self.outcome = self.outcome or "caller-hangup"
                return
            if action is not None:
                self.keys_used += 1
                if action != NO_KEY:
                    if self.answered:
                        await self._send(action)
                    else:
                        deferred.append(action)
            if kind == "app" and self.outcome is None and rec.handoff is not None:
                self.outcome = "handoff"
                if self.hold <= 0:
                    return
                hold_until = time.monotonic() + self.hold

    async def _on_answer(self) -> None:
        ari, a = self.pool.ari, self.caller_channel
        if self.silence:
            # like a trunk, send audio from the answer on: without it, dialplan Answer()
            # waits 500 ms for a first media frame on the silent Local pair
            with contextlib.suppress(AriError):
                await ari.request("POST", f"/channels/{a}/silence")
        if self.post_dial:  # like a phone dialling "+17144505656,,482913#"
            self.record.add("post-dial", self.post_dial)
            await ari.send_dtmf(a, self.post_dial, between=80, duration=80)

    async def _send(self, key: str) -> None:
        self.record.add("send", key)
        # between=1: ARI's DTMF stream sleeps `between` ms (default 100) after the digit,
        # which would hold back the next request queued on the caller's channel
        await self.pool.ari.send_dtmf(self.caller_channel, key, duration=self.dtmf_ms,
                                      between=1)


class CallerPool(AriListener):
    """One ARI connection (its own application) shared by many concurrent scripted calls."""

    def __init__(self, ari_url: str, username: str, password: str, app: str | None = None, *,
                 request_timeout: float = 10.0, max_connections: int = 100):
        super().__init__(ari_url, username, password,
                         app or f"ivr-caller-{uuid.uuid4().hex[:8]}",
                         request_timeout=request_timeout, max_connections=max_connections)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    def start(self, did: str, *, context: str = "from-pstn", keys: Sequence[str] | None = None,
              policy: Policy | None = None, caller: str | None = None, timeout: float = 120.0,
              hold: float = 0.0, post_dial: str = "", variables: Mapping[str, str] | None = None,
              formats: str | None = "ulaw", silence: bool = False,
              channel_id: str | None = None, dtmf_ms: int = 100) -> LocalCall:
        """Start a call to ``Local/<did>@<context>`` and return it at once.

        ``keys``: pressed on ``IVR_AWAITING`` (:class:`PressOnAwaiting`); or ``policy``
        (neither: no key is ever pressed). ``caller``: the caller ID the dialplan side
        gets. ``hold``: seconds to stay on the line once a hand-off application runs (e.g.
        for an endpoint to answer). ``post_dial``: DTMF sent as soon as the call is
        answered (an app's token). ``variables``: for the caller side (``__NAME`` ones are
        inherited by the dialplan side). ``silence``: send silence once answered.
        ``channel_id``: the caller side's id (the dialplan side's is ``<id>-ivr``)."""
        if keys is not None:
            policy = PressOnAwaiting(keys)
        call = LocalCall(self, did, context=context, policy=policy, caller=caller,
                         timeout=timeout, hold=hold, post_dial=post_dial, variables=variables,
                         formats=formats, silence=silence, channel_id=channel_id,
                         dtmf_ms=dtmf_ms)
        call._start()
        return call

    async def place(self, did: str, **kw: Any) -> LocalCall:
        """:meth:`start` a call and wait until it has ended (never raises for the call's
        own failures: see ``outcome`` and ``error``)."""
        return await self.start(did, **kw).finished()

    async def call(self, *, did: str, caller: str, keys: Sequence[str], timeout: float = 120.0,
                   context: str = "from-pstn", hold: float = 0.0, post_dial: str = "",
                   variables: dict[str, str] | None = None) -> dict[str, Any]:
        """Place one call with keys pressed on ``IVR_AWAITING``; returns
        :meth:`LocalCall.as_dict`. Raises TimeoutError or the ARI error if it failed."""
        placed = await self.place(did, context=context, keys=keys, caller=caller,
                                  timeout=timeout, hold=hold, post_dial=post_dial,
                                  variables=variables)
        if placed.error is not None:
            raise placed.error
        return placed.as_dict()


async def place_call(ari_url: str, username: str, password: str, *, did: str, caller: str,
                     keys: Sequence[str], timeout: float = 120.0,
                     context: str = "from-pstn") -> dict[str, Any]:
    """One call on a connection of its own (``ivr-engine call``)."""
    async with CallerPool(ari_url, username, password) as pool:
        return await pool.call(did=did, caller=caller, keys=keys, timeout=timeout,
                               context=context)
