"""One call in Stasis: feeds ARI events to the pure runtime and executes its actions.

Everything the call owns (the event loop, the digit timer) runs inside one
``asyncio.TaskGroup``. The call ends when its channel leaves Stasis (hang-up or hand-off to
the dialplan): the group is torn down and every task it holds is cancelled. If the engine
itself is shutting down while the caller is still in the IVR, the channel is sent to the
dialplan fallback (``ivr-engine-fallback``) rather than left in Stasis with nobody driving it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Callable, Protocol

from ..ari import (
    AriClient,
    AriError,
    AriNotFound,
    ChannelDestroyed,
    ChannelDtmfReceived,
    PlaybackFinished,
    StasisEnd,
    StasisStart,
)
from ..config import Config
from ..ivr.actions import (
    Action,
    Answer,
    CancelTimer,
    Collect,
    HandOff,
    Hangup,
    Play,
    RecordCallback,
    SetVariables,
    StopPlayback,
)
from ..ivr.runtime import IvrSession
from ..routing.entry import resolve_pstn

log = logging.getLogger("ivr_engine.calls")

FALLBACK_CONTEXT = "ivr-engine-fallback"


class CallbackSink(Protocol):
    async def add_callback(self, *, caller: str, queue: str, language: str, entry: str,
                           path: str, channel_id: str) -> int: ...


@dataclass(frozen=True, slots=True)
class TimerFired:
    """Internal event: a Collect timer ran out (put on the call's own queue)."""

    token: str


class _CallOver(Exception):
    """Raised inside the call's TaskGroup to end it and cancel whatever it still runs."""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class CallSession:
    def __init__(self, ari: AriClient, config: Config, start: StasisStart,
                 events: asyncio.Queue, store: CallbackSink | None,
                 clock: Callable[[], dt.datetime] = _utcnow):
        self.ari = ari
        self.config = config
        self.start = start
        self.events = events
        self.store = store
        self.clock = clock
        self.channel_id = start.channel.id
        self.log = logging.LoggerAdapter(log, {"channel": self.channel_id})
        self.runtime: IvrSession | None = None
        self._timers: dict[str, asyncio.Task] = {}
        self._playbacks: dict[str, str] = {}  # ARI playback id -> runtime token
        self._tg: asyncio.TaskGroup | None = None
        self._left_stasis = False

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Run the call to its end. Never raises, except CancelledError on engine shutdown."""
        try:
            await self._run_group()
        except asyncio.CancelledError:
            if not self._left_stasis:
                await asyncio.shield(self._rescue())
            raise

    async def _run_group(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(self._main())
        except* _CallOver:
            pass
        except* AriNotFound:
            self.log.info("channel %s went away", self.channel_id)
        except* Exception as eg:  # a bug or an Asterisk error must not leave the caller in silence
            self.log.error("call %s failed: %r", self.channel_id, list(eg.exceptions),
                           exc_info=eg.exceptions[0])
            await self._rescue()

    async def _rescue(self) -> None:
        """Send a caller still in Stasis to the dialplan fallback (message + default queue)."""
        if self._left_stasis:
            return
        try:
            async with asyncio.timeout(2):
                await self.ari.continue_in_dialplan(self.channel_id, context=FALLBACK_CONTEXT,
                                                    extension="s", priority=1)
            self.log.warning("call %s sent to the dialplan fallback", self.channel_id)
        except (AriError, TimeoutError, OSError):
            pass

    def _args(self) -> tuple[str, str]:
        args = self.start.args
        kind = args[0] if args else "pstn"
        number = args[1] if len(args) > 1 else self.start.channel.exten
        return kind, number

    async def _main(self) -> None:
        cfg = self.config
        kind, number = self._args()
        ch = self.start.channel
        decision = resolve_pstn(cfg.entries, number, unknown=cfg.model.routing.unknown_number,
                                default_language=cfg.engine.default_language)
        self.runtime = rt = IvrSession(cfg.tree, decision.entry.menu if decision.entry else "",
                                       decision.language, decision.label, ch.caller_number)
        self.log.info("call %s from %r to %s (%s) → %s", self.channel_id, ch.caller_number,
                      number, kind, decision.label)
        now = self.clock()
        if decision.entry is not None:
            await self._execute(rt.start(now))
        else:
            await self._execute(rt.start_at(decision.destination, now))
        while True:
            ev = await self.events.get()
            if isinstance(ev, ChannelDtmfReceived):
                await self._execute(rt.digit(ev.digit, self.clock()))
            elif isinstance(ev, TimerFired):
                self._timers.pop(ev.token, None)
                await self._execute(rt.timer_fired(ev.token, self.clock()))
            elif isinstance(ev, PlaybackFinished):
                token = self._playbacks.pop(ev.playback.id, None)
                if token is not None:
                    await self._execute(rt.playback_finished(token, self.clock()))
            elif isinstance(ev, (StasisEnd, ChannelDestroyed)):
                self._left_stasis = True
                self.log.info("call %s left the engine: path=%s destination=%s", self.channel_id,
                              "/".join(rt.path), rt.destination)
                raise _CallOver()

    # ------------------------------------------------------------------ actions

    async def _timer(self, token: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.events.put_nowait(TimerFired(token))

    async def _execute(self, actions: list[Action]) -> None:
        ari, cid = self.ari, self.channel_id
        for a in actions:
            if isinstance(a, Play):
                pid = f"{cid}.{a.token}"
                self._playbacks[pid] = a.token
                await ari.play(cid, a.media, playback_id=pid, lang=a.language)
            elif isinstance(a, Collect):
                assert self._tg is not None
                self._timers[a.token] = self._tg.create_task(self._timer(a.token, a.seconds))
                await ari.set_variable(cid, "IVR_AWAITING", f"{a.menu}:{a.seq}")
            elif isinstance(a, CancelTimer):
                task = self._timers.pop(a.token, None)
                if task is not None:
                    task.cancel()
            elif isinstance(a, StopPlayback):
                pid = f"{cid}.{a.token}"
                self._playbacks.pop(pid, None)
                await ari.stop_playback(pid)
            elif isinstance(a, SetVariables):
                for name, value in a.variables:
                    await ari.set_variable(cid, name, value)
            elif isinstance(a, Answer):
                await ari.answer(cid)
            elif isinstance(a, HandOff):
                await self._hand_off(a)
            elif isinstance(a, RecordCallback):
                await self._record_callback(a)
            elif isinstance(a, Hangup):
                await ari.hangup(cid)

    async def _hand_off(self, a: HandOff) -> None:
        dp = self.config.engine.dialplan
        context = {"queue": dp.queue, "voicemail": dp.voicemail, "endpoint": dp.endpoint}[
            a.destination.kind]
        if a.destination.kind == "endpoint":
            await self.ari.set_variable(self.channel_id, "IVR_DIAL_TIMEOUT",
                                        str(dp.endpoint_ring_seconds))
        await self.ari.continue_in_dialplan(self.channel_id, context=context, extension="s",
                                            priority=1)

    async def _record_callback(self, a: RecordCallback) -> None:
        if self.store is None:
            self.log.error("callback for %s requested but no store is configured", a.caller)
            return
        row = await self.store.add_callback(caller=a.caller, queue=a.queue, language=a.language,
                                            entry=a.entry, path="/".join(a.path),
                                            channel_id=self.channel_id)
        self.log.info("callback #%d recorded: %s for queue %s", row, a.caller, a.queue)
