"""The IVR phase of a call: the pure runtime's events in, its actions executed over ARI.

Asterisk queues a channel's commands (answer, play, set variable, continue) on the channel's
control thread, and a play holds that thread until its prompt ends: so a variable is never sent
after (or with) a play, and plays go in order. Stopping a playback does not use that queue, so
stops go out together with what follows them: a key pressed during a prompt costs one round
trip (stop + next play). Independent requests of one step go out at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from .. import metrics
from ..ari import ChannelDtmfReceived, PlaybackFinished
from ..deadlines import CallerWaitFailed, caller_wait
from ..ivr.actions import (
    Action,
    Answer,
    CancelTimer,
    Collect,
    HandOff,
    Hangup,
    Play,
    RecordCallback,
    RingUser,
    SetVariables,
    StopPlayback,
)
from ..ivr.destinations import HANDOFF_KINDS, Destination
from ..ivr.runtime import IvrRuntime
from .exits import EVENT_OF, announce, announce_engine_end
from .phase import Call, Phase, TimerFired, TransferRequest


log = logging.getLogger("ivr_engine.calls")


async def send_all(requests: list) -> None:
    """Send independent ARI requests at once (one failure cancels the rest and surfaces)."""
    if len(requests) == 1:
        await requests[0]
    elif requests:
        async with asyncio.TaskGroup() as tg:
            for r in requests:
                tg.create_task(r)


class IvrPhase:
    def __init__(self, call: Call, runtime: IvrRuntime):
        self.call = call
        self.rt = runtime
        self.playbacks: dict[str, str] = {}  # ARI playback id -> runtime token
        self._sent: dict[str, tuple[tuple[str, ...], str, float]] = {}  # media, lang, when
        self._timers: dict[str, asyncio.Task] = {}
        self.rescued = False  # sent to the dialplan fallback: nothing more to drive
        self.handed_off = False  # Asterisk took the continue to its destination

    # -------------------------------------------------------------- events

    async def handle(self, ev: object) -> Phase | None:
        rt, now = self.rt, self.call.clock()
        if self.rescued:
            if isinstance(ev, TransferRequest):
                ev.done.set_result(False)
            return None
        if getattr(ev, "channel_id", self.call.channel_id) != self.call.channel_id:
            return None  # a late event of a user's leg that is already gone
        if isinstance(ev, ChannelDtmfReceived):
            t0 = time.perf_counter()
            actions = rt.digit(ev.digit, now)
            nxt = await self.execute(actions)
            if any(isinstance(a, Play) for a in actions):
                metrics.DTMF_TO_PROMPT.observe(time.perf_counter() - t0)
            return nxt
        if isinstance(ev, TimerFired):
            self._timers.pop(ev.token, None)
            return await self.execute(rt.timer_fired(ev.token, now))
        if isinstance(ev, PlaybackFinished):
            token = self.playbacks.pop(ev.playback.id, None)
            sent = self._sent.pop(ev.playback.id, None)
            if sent is not None and ev.playback.state != "failed":  # played to its end
                self.call.services.sounds.learn(sent[0], sent[1], time.monotonic() - sent[2])
            if token is not None:
                return await self.execute(rt.playback_finished(token, now))
        elif isinstance(ev, TransferRequest):
            return await self.transfer(ev)
        return None

    async def transfer(self, req: TransferRequest) -> Phase | None:
        """Move the caller where the API asked. A call already leaving for the dialplan is
        answered by the session at its StasisEnd (``handed-off``: an AMI redirect may follow);
        one the engine is ending itself (message, callback, hang-up) is not moved."""
        rt = self.rt
        if rt.finished:
            if rt.destination is None or rt.destination.kind not in HANDOFF_KINDS:
                req.settle("ending")
            return None
        nxt = await self.execute(rt.transfer(req.destination, self.call.clock()))
        if self.call.info is not None:
            self.call.info.transfers.append(str(req.destination))
        req.settle("moved")
        return nxt

    async def caller_left(self) -> None:
        for task in self._timers.values():
            task.cancel()

    @property
    def playing(self) -> list[str]:
        """Ids of the runtime's playbacks still known to be playing."""
        return list(self.playbacks)

    # -------------------------------------------------------------- actions

    async def execute(self, actions: list[Action]) -> Phase | None:
        """Run the runtime's actions in order, overlapping what may overlap. A ``RingUser``
        hands the call to the ringing phase, which is returned."""
        call, ari, cid = self.call, self.call.ari, self.call.channel_id
        batch: list = []
        has_vars = has_play = False
        nxt: Phase | None = None
        for a in actions:
            if isinstance(a, StopPlayback):
                pid = f"{cid}.{a.token}"
                self.playbacks.pop(pid, None)
                self._sent.pop(pid, None)
                batch.append(ari.stop_playback(pid))
                continue
            if isinstance(a, (SetVariables, Answer)):
                if has_play:  # a command queued behind a play would wait for the prompt
                    await send_all(batch)
                    batch, has_play = [], False
                if isinstance(a, Answer):  # order against variables does not matter
                    batch.append(ari.answer(cid))
                else:
                    batch.extend(ari.set_variable(cid, n, v) for n, v in a.variables)
                has_vars = True
                continue
            if isinstance(a, Play):
                if has_vars or has_play:  # variables first, and plays in order
                    await send_all(batch)
                    batch, has_vars = [], False
                pid = f"{cid}.{a.token}"
                self.playbacks[pid] = a.token
                self._sent[pid] = (a.media, a.language, time.monotonic())
                # may go out with the stop of the previous prompt: queued behind it, it
                # starts the moment that one is stopped
                batch.append(ari.play(cid, a.media, playback_id=pid, lang=a.language))
                has_play = True
                continue
            if isinstance(a, CancelTimer):
                task = self._timers.pop(a.token, None)
                if task is not None:
                    task.cancel()
                continue
            if isinstance(a, HandOff):  # its variables go with the batch before the continue
                batch.extend(self._before_hand_off(a.destination))
            await send_all(batch)
            batch, has_vars, has_play = [], False, False
            if isinstance(a, Collect):
                self._timers[a.token] = call.spawn(self._timer(a.token, a.seconds))
            elif isinstance(a, HandOff):
                await self._hand_off(a.destination)
            elif isinstance(a, RecordCallback):
                if not await self._record_callback(a):
                    return None  # the caller is in the fallback: what followed is void
            elif isinstance(a, RingUser):
                nxt = await call.ring(self, a)
            elif isinstance(a, Hangup):
                announce_engine_end(call)
                await ari.hangup(cid)
        await send_all(batch)
        announce_engine_end(call)  # a closing message decided: the engine ends the call
        return nxt

    async def _timer(self, token: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.call.post(TimerFired(token))

    def _before_hand_off(self, dest: Destination) -> list:
        """What the dialplan hand-off needs on the channel first. The engine also stays
        subscribed to the channel, so it knows when the call ends (agents may still transfer
        it over AMI until then)."""
        call = self.call
        cid, dp = call.channel_id, call.config.engine.dialplan
        out = [call.ari.subscribe(f"channel:{cid}")]
        if dest.kind == "endpoint":
            out.append(call.ari.set_variable(cid, "IVR_DIAL_TIMEOUT",
                                             str(dp.endpoint_ring_seconds)))
        elif dest.kind == "voicemail":
            out.append(call.ari.set_variable(cid, "IVR_TARGET", dest.target))
        return out

    async def _hand_off(self, dest: Destination) -> None:
        """Continue in the dialplan: queue and endpoint names travel as the extension, a
        mailbox (which may hold an @) as IVR_TARGET (see _before_hand_off)."""
        call = self.call
        announce(call, EVENT_OF[dest.kind])
        dp = call.config.engine.dialplan
        context = {"queue": dp.queue, "voicemail": dp.voicemail, "endpoint": dp.endpoint}[
            dest.kind]
        extension = "s" if dest.kind == "voicemail" else dest.target
        await call.ari.continue_in_dialplan(call.channel_id, context=context,
                                            extension=extension, priority=1)
        self.handed_off = True

    async def _record_callback(self, a: RecordCallback) -> bool:
        """Record the callback; False when the database could not within the caller's
        deadline: the caller is then sent to the dialplan fallback (a person now, rather
        than a callback promised and never recorded)."""
        call, info = self.call, self.call.info
        store: Any = call.services.store
        if store is None:
            log.error("callback for %s requested but no store is configured", a.caller)
            return True
        try:
            row = await caller_wait(
                call.spawn, call.config.engine.database.call_deadline_seconds, "callback",
                call.channel_id, store.callbacks.add(
                    caller=a.caller, queue=a.queue, language=a.language, entry=a.entry,
                    path="/".join(a.path), channel_id=call.channel_id,
                    app=info.app if info else None, user=info.user if info else None,
                    verified=bool(info and info.verified), now=call.clock()))
        except CallerWaitFailed:
            self.rescued = True
            call.announced = True  # it leaves for the fallback: no exit to announce
            await self.caller_left()  # its timers
            await call.rescue()
            return False
        log.info("callback #%d recorded: %s for queue %s", row.id, a.caller, a.queue)
        announce(call, "callback.requested", callback={
            "id": row.id, "state": row.state, "attempts": 0, "outcome": None})
        return True
