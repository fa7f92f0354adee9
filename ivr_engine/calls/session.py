"""One call in Stasis: feeds ARI events to the pure runtime and executes its actions.

Everything the call owns (the event loop, the digit timer) runs inside one
``asyncio.TaskGroup``. The call ends when its channel leaves Stasis (hang-up or hand-off to
the dialplan): the group is torn down and every task it holds is cancelled. If the engine
itself is shutting down while the caller is still in the IVR, the prompt that plays is
stopped and the channel is sent to the dialplan fallback (``ivr-engine-fallback``) rather
than left in Stasis with nobody driving it.

A session either starts a new call (a StasisStart) or takes one over (``taken_over``: found
in the application after a reconnect, or back from the dialplan's watchdog with the Stasis
argument ``resume``): then it resumes from the variables on the channel.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

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
    RingUser,
    SetVariables,
    StopPlayback,
)
from ..ivr.destinations import HANDOFF_KINDS, Destination
from ..ivr.resume import plan_resume
from ..ivr.runtime import IvrSession, Watchdog
from ..routing.entry import AppEntry, EntryDecision, after_token, route_app, route_pstn
from ..routing.guard import TokenGuard
from .registry import CallInfo, CallRegistry
from .takeover import read_state, stop_stale
from .webhook import ContextNotifier

log = logging.getLogger("ivr_engine.calls")

FALLBACK_CONTEXT = "ivr-engine-fallback"


class CallStore(Protocol):
    async def add_callback(self, *, caller: str, queue: str, language: str, entry: str,
                           path: str, channel_id: str) -> int: ...

    async def consume_token(self, app: str, token: str, now: dt.datetime,
                            channel_id: str) -> Any: ...

    async def consume_by_caller(self, app: str, caller: str, now: dt.datetime,
                                channel_id: str) -> Any: ...

    async def intent_for_channel(self, channel_id: str) -> Any: ...


@dataclass
class CallServices:
    """What a call may use besides ARI; owned by the engine."""

    store: CallStore | None = None
    registry: CallRegistry = field(default_factory=CallRegistry)
    notifier: ContextNotifier | None = None
    dispatcher: Any = None  # ChannelDispatcher: outbound legs are attached to their call
    push: Any = None  # push.PushService
    contacts: Any = None  # wakeup.watcher.ContactWatcher
    token_guard: TokenGuard = field(default_factory=TokenGuard)


@dataclass(frozen=True, slots=True)
class TransferRequest:
    """Internal event from the API: move the caller to ``destination``."""

    destination: Destination
    done: asyncio.Future


@dataclass(frozen=True, slots=True)
class TimerFired:
    """Internal event: a Collect timer ran out (put on the call's own queue)."""

    token: str


class _CallOver(Exception):
    """Raised inside the call's TaskGroup to end it and cancel whatever it still runs."""


def _leaves(exc: BaseException) -> list[BaseException]:
    """The plain exceptions inside (possibly nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class CallSession:
    def __init__(self, ari: AriClient, config: Config, start: StasisStart,
                 events: asyncio.Queue, services: CallServices,
                 clock: Callable[[], dt.datetime] = _utcnow, *, taken_over: bool = False,
                 bridged_with: str | None = None):
        self.ari = ari
        self.taken_over = taken_over or (bool(start.args) and start.args[0] == "resume")
        self.bridged_with = bridged_with
        self.config = config
        self.start = start
        self.events = events
        self.services = services
        self.store = services.store
        self.clock = clock
        self.info: CallInfo | None = None
        self.channel_id = start.channel.id
        self.log = logging.LoggerAdapter(log, {"channel": self.channel_id})
        self.runtime: IvrSession | None = None
        self._timers: dict[str, asyncio.Task] = {}
        self._playbacks: dict[str, str] = {}  # ARI playback id -> runtime token
        self._tg: asyncio.TaskGroup | None = None
        self._left_stasis = False
        self._bridged_leg: str | None = None

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Run the call to its end. Never raises, except CancelledError on engine shutdown."""
        try:
            await self._run_group()
        except asyncio.CancelledError:
            if self._bridged_leg is not None:
                # a conversation in progress: Asterisk keeps the bridge without us
                self.log.warning("engine stopping: call %s stays bridged with %s",
                                 self.channel_id, self._bridged_leg)
            elif not self._left_stasis:
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
        except* AriError as eg:
            # a request raced the caller's hang-up (400/409/412 on a dying channel) or
            # Asterisk refused something: only the second deserves an error and a rescue
            first = _leaves(eg)[0]
            if await self._channel_gone():
                self.log.info("channel %s went away during %s", self.channel_id, first)
            else:
                self.log.error("call %s failed: %s", self.channel_id, first)
                await self._rescue()
        except* Exception as eg:  # a bug must not leave the caller in silence
            leaves = _leaves(eg)
            self.log.error("call %s failed: %r", self.channel_id, leaves, exc_info=leaves[0])
            await self._rescue()

    async def _channel_gone(self) -> bool:
        if self._left_stasis:
            return True
        try:
            return await self.ari.get_channel(self.channel_id) is None
        except (AriError, OSError):
            return False

    async def _rescue(self) -> None:
        """Send a caller still in Stasis to the dialplan fallback (message + default queue).

        What plays is stopped at the same time: a ``continue`` waits in the channel's command
        queue behind a playing prompt, and nobody should hear a menu no engine drives."""
        if self._left_stasis:
            return
        playing = list(self._playbacks) + ([self.playback_id("wake"),
                                            self.playback_id("ringback")] if self.runtime else [])
        for attempt in (1, 2):
            try:
                async with asyncio.timeout(2):
                    await asyncio.gather(
                        *(self._stop_quietly(pid) for pid in playing),
                        self.ari.continue_in_dialplan(
                            self.channel_id, context=FALLBACK_CONTEXT, extension="s",
                            priority=1))
                self.log.warning("call %s sent to the dialplan fallback", self.channel_id)
                return
            except AriNotFound:
                return
            except (AriError, TimeoutError, OSError) as exc:
                self.log.warning("fallback for call %s failed (attempt %d): %s",
                                 self.channel_id, attempt, exc)

    async def _stop_quietly(self, playback_id: str) -> None:
        try:
            await self.ari.stop_playback(playback_id)
        except AriError:
            pass

    def _args(self) -> tuple[str, str, str]:
        """Stasis(ivr-engine,pstn,<DID>) or Stasis(ivr-engine,app,<app>,<token>)."""
        args = self.start.args
        kind = args[0] if args else "pstn"
        target = args[1] if len(args) > 1 else self.start.channel.exten
        extra = args[2] if len(args) > 2 else ""
        return kind, target, extra

    async def _route(self) -> tuple[EntryDecision, Any]:
        table = self.config.routing
        kind, target, extra = self._args()
        caller = self.start.channel.caller_number
        if kind == "app":  # VoIP from inside the app: the SDK passed its token in a header
            decision = route_app(table, target)
            intent = None
            if decision.app and extra and self.store is not None:
                intent = await self.store.consume_token(decision.app, extra, self.clock(),
                                                        self.channel_id)
            if intent is not None:
                decision = route_app(table, target, intent.language)
            return decision, intent
        decision = route_pstn(table, target, caller)
        if decision.via != "app-fallback":
            return decision, None
        assert decision.app is not None
        intent = await self._match_app_call(table.apps[decision.app], caller)
        self.log.info("call %s on app %r's fallback number: %s", self.channel_id, decision.app,
                      "matched to an app request" if intent else "not from the app")
        return after_token(table, decision, intent is not None,
                           intent.language if intent else None), intent

    async def _match_app_call(self, app: AppEntry, caller: str) -> Any:
        """Answer, read the one-time token the app dials after the number, match it.

        Wrong tokens are counted (per caller number and per app); past a limit the call is
        treated as outside the app without looking at its token (see routing/guard.py)."""
        if self.store is None:
            return None
        await self.ari.answer(self.channel_id)
        intent = None
        token = ""
        if app.match != "caller":
            token = await self._read_token(app.token_digits, app.token_wait_seconds)
        guard, now = self.services.token_guard, time.monotonic()
        refused = guard.check(app.app, caller, app.guess_limits, now)
        if refused is not None:
            self.log.warning("call %s on app %r's fallback number treated as outside the app: "
                             "%s", self.channel_id, app.app, refused)
            return None
        if token:
            intent = await self.store.consume_token(app.app, token, self.clock(),
                                                    self.channel_id)
            if intent is None:
                guard.failed(app.app, caller, now)
                self.log.info("call %s: wrong token for app %r from %r", self.channel_id,
                              app.app, caller)
        if intent is None and app.match != "token":
            intent = await self.store.consume_by_caller(app.app, caller, self.clock(),
                                                        self.channel_id)
        return intent

    async def _read_token(self, digits: int, wait: float) -> str:
        """Post-dial DTMF ``<token>#``; whatever arrived when ``#`` or the deadline comes."""
        got = ""
        try:
            async with asyncio.timeout(wait):
                while True:
                    ev = await self.events.get()
                    if isinstance(ev, ChannelDtmfReceived):
                        if ev.digit == "#":
                            break
                        got += ev.digit
                        if len(got) > digits + 4:
                            break
                    elif isinstance(ev, (StasisEnd, ChannelDestroyed)) and \
                            ev.channel_id == self.channel_id:
                        self._left_stasis = True
                        raise _CallOver()
        except TimeoutError:
            pass
        return got if got.isdigit() else ""

    def _new_runtime(self, menu: str, language: str, label: str,
                     app: str | None) -> IvrSession:
        wd = self.config.engine.watchdog
        self.runtime = IvrSession(
            self.config.tree, menu, language, label, self.start.channel.caller_number, app,
            watchdog=Watchdog(wd.grace_seconds, wd.prompt_seconds) if wd.enabled else None)
        return self.runtime

    def _register(self, label: str, via: str, app: str | None, root: str, language: str,
                  custom: dict[str, str]) -> None:
        ch = self.start.channel
        self.info = self.services.registry.add(CallInfo(
            id=self.channel_id, channel_name=ch.name, caller=ch.caller_number, entry=label,
            via=via, app=app, root_menu=root, language=language, custom_data=custom))

    def playback_id(self, name: str) -> str:
        """``<channel>.p<seq>.<name>``: the id of a playback in the runtime's current scope
        (an engine taking the call over can name it; see ivr/runtime.py)."""
        assert self.runtime is not None
        return f"{self.channel_id}.{self.runtime.play_scope}.{name}"

    async def _main(self) -> None:
        if self.bridged_with is not None:
            self._register("", "taken-over", None, "", self.config.routing.default_language, {})
            self.services.registry.update(self.channel_id, state="bridged")
            self.log.info("call %s taken over: bridged with %s", self.channel_id,
                          self.bridged_with)
            await self._bridged(self.bridged_with)
            return
        if self.taken_over:
            await self._resume_call()
        else:
            await self._new_call()
        await self._loop()

    async def _new_call(self) -> None:
        cfg, ch = self.config, self.start.channel
        decision, intent = await self._route()
        custom = dict(intent.custom_data) if intent is not None else {}
        rt = self._new_runtime(decision.entry.menu if decision.entry else "", decision.language,
                               decision.label, decision.app)
        root = cfg.tree.menus[decision.entry.menu].root if decision.entry else ""
        self._register(decision.label, decision.via, decision.app, root, decision.language,
                       custom)
        self.log.info("call %s from %r (%s) → %s via %s", self.channel_id, ch.caller_number,
                      " ".join(self.start.args), decision.label, decision.via)
        if custom:
            await self._send([self.ari.set_variable(self.channel_id, f"IVR_DATA_{k}", v)
                              for k, v in custom.items()])
        now = self.clock()
        if decision.entry is not None:
            await self._execute(rt.start(now))
        else:
            await self._execute(rt.start_at(decision.destination, now))

    async def _resume_call(self) -> None:
        """Take over a call the engine was driving before it (re)connected."""
        cfg, cid = self.config, self.channel_id
        state = await read_state(self.ari, cid)
        stopped = await stop_stale(self.ari, cid, state)
        kind, target, _ = self._args()
        entry: EntryDecision | None = None
        if state.app:
            entry = route_app(cfg.routing, state.app, state.language or None)
        elif kind == "pstn":
            entry = route_pstn(cfg.routing, target, self.start.channel.caller_number)
            if entry.via == "app-fallback":
                entry = None  # its token was being read: that cannot be taken over
        plan = plan_resume(cfg.tree, state, cfg.users,
                           can_restart=entry is not None and entry.entry is not None)
        self.log.warning("call %s taken over (%s): %s — %s%s", cid, " ".join(self.start.args),
                         plan.how, plan.reason,
                         f"; stopped {stopped} stale playback(s)" if stopped else "")
        if plan.how == "fallback":
            await self._rescue()
            raise _CallOver()
        language = state.language or (entry.language if entry else cfg.routing.default_language)
        label = state.entry or (entry.label if entry else "")
        app = state.app or (entry.app if entry else None)
        custom = await self._custom_data()
        now = self.clock()
        if plan.how == "restart":
            assert entry is not None and entry.entry is not None
            rt = self._new_runtime(entry.entry.menu, entry.language, entry.label, entry.app)
            rt.after_takeover(state.seq)
            actions = rt.start(now)
            root = cfg.tree.menus[entry.entry.menu].root
        elif plan.how == "menu":
            rt = self._new_runtime(plan.menu, language, label, app)
            rt.after_takeover(state.seq)
            actions = rt.resume(plan.menu, list(plan.path), now)
            root = cfg.tree.menus[plan.menu].root
        else:
            assert plan.destination is not None
            rt = self._new_runtime("", language, label, app)
            rt.after_takeover(state.seq)
            actions = rt.start_at(plan.destination, now)
            root = cfg.tree.menus[state.path[0]].root if state.path and \
                state.path[0] in cfg.tree.menus else ""
        self._register(label, "taken-over", app, root, language, custom)
        await self._execute(actions)

    async def _custom_data(self) -> dict[str, str]:
        """An app call's custom data, from the intent its token matched."""
        if self.store is None:
            return {}
        intent = await self.store.intent_for_channel(self.channel_id)
        return dict(intent.custom_data) if intent is not None else {}

    async def _loop(self) -> None:
        """The one reader of the call's event queue until the call leaves the engine."""
        rt = self.runtime
        assert rt is not None
        while True:
            ev = await self.events.get()
            if getattr(ev, "channel_id", self.channel_id) != self.channel_id:
                continue  # a late event of an outbound leg that is already gone
            if isinstance(ev, ChannelDtmfReceived):
                await self._execute(rt.digit(ev.digit, self.clock()))
            elif isinstance(ev, TimerFired):
                self._timers.pop(ev.token, None)
                await self._execute(rt.timer_fired(ev.token, self.clock()))
            elif isinstance(ev, PlaybackFinished):
                token = self._playbacks.pop(ev.playback.id, None)
                if token is not None:
                    await self._execute(rt.playback_finished(token, self.clock()))
            elif isinstance(ev, TransferRequest):
                if rt.finished:
                    ev.done.set_result(False)
                else:
                    await self._execute(rt.transfer(ev.destination, self.clock()))
                    self.info.transfers.append(str(ev.destination))
                    ev.done.set_result(True)
            elif isinstance(ev, (StasisEnd, ChannelDestroyed)):
                self._left_stasis = True
                handed_off = isinstance(ev, StasisEnd) and rt.destination is not None and \
                    rt.destination.kind in HANDOFF_KINDS
                self._finish_record(rt, "handed-off" if handed_off else "ended")
                self.log.info("call %s left the engine: path=%s destination=%s", self.channel_id,
                              "/".join(rt.path), rt.destination)
                raise _CallOver()

    # ------------------------------------------------------------------ actions

    async def _timer(self, token: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.events.put_nowait(TimerFired(token))

    async def _send(self, requests: list) -> None:
        """Send independent ARI requests at once (inside a TaskGroup: one failure cancels the
        rest and surfaces here). Asterisk still runs a channel's commands in order, but the
        HTTP round trips overlap."""
        if len(requests) == 1:
            await requests[0]
        elif requests:
            async with asyncio.TaskGroup() as tg:
                for r in requests:
                    tg.create_task(r)

    async def _execute(self, actions: list[Action]) -> None:
        """Run the runtime's actions in order, overlapping what may overlap.

        Asterisk queues a channel's commands (answer, play, set variable, continue) on the
        channel's control thread, and a play holds that thread until its prompt ends: so a
        variable must never be sent after (or with) a play, and plays go in order. Stopping a
        playback does not use that queue, so stops go out together with what follows them: a
        key pressed during a prompt costs one round trip (stop + next play).
        """
        ari, cid = self.ari, self.channel_id
        batch: list = []
        has_vars = has_play = False
        for a in actions:
            if isinstance(a, StopPlayback):
                pid = f"{cid}.{a.token}"
                self._playbacks.pop(pid, None)
                batch.append(ari.stop_playback(pid))
                continue
            if isinstance(a, (SetVariables, Answer)):
                if has_play:  # a command queued behind a play would wait for the prompt
                    await self._send(batch)
                    batch, has_play = [], False
                if isinstance(a, Answer):  # order against variables does not matter
                    batch.append(ari.answer(cid))
                else:
                    batch.extend(ari.set_variable(cid, n, v) for n, v in a.variables)
                has_vars = True
                continue
            if isinstance(a, Play):
                if has_vars or has_play:  # variables first, and plays in order
                    await self._send(batch)
                    batch, has_vars = [], False
                pid = f"{cid}.{a.token}"
                self._playbacks[pid] = a.token
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
            await self._send(batch)
            batch, has_vars, has_play = [], False, False
            if isinstance(a, Collect):
                assert self._tg is not None
                self._timers[a.token] = self._tg.create_task(self._timer(a.token, a.seconds))
            elif isinstance(a, HandOff):
                await self._hand_off(a)
            elif isinstance(a, RecordCallback):
                await self._record_callback(a)
            elif isinstance(a, RingUser):
                await self._ring_user(a)
            elif isinstance(a, Hangup):
                await ari.hangup(cid)
        await self._send(batch)

    def _before_hand_off(self, dest: Destination) -> list:
        """What the dialplan hand-off needs on the channel first. The engine also stays
        subscribed to the channel, so it knows when the call ends (agents may still transfer
        it over AMI until then)."""
        cid, dp = self.channel_id, self.config.engine.dialplan
        out = [self.ari.subscribe(f"channel:{cid}")]
        if dest.kind == "endpoint":
            out.append(self.ari.set_variable(cid, "IVR_DIAL_TIMEOUT",
                                             str(dp.endpoint_ring_seconds)))
        elif dest.kind == "voicemail":
            out.append(self.ari.set_variable(cid, "IVR_TARGET", dest.target))
        return out

    async def _hand_off(self, a: HandOff) -> None:
        """Continue in the dialplan: queue and endpoint names travel as the extension, a
        mailbox (which may hold an @) as IVR_TARGET (see _before_hand_off)."""
        dest = a.destination
        if dest.kind == "queue":
            self._notify_queue(dest.target)
        dp = self.config.engine.dialplan
        context = {"queue": dp.queue, "voicemail": dp.voicemail, "endpoint": dp.endpoint}[
            dest.kind]
        extension = "s" if dest.kind == "voicemail" else dest.target
        await self.ari.continue_in_dialplan(self.channel_id, context=context,
                                            extension=extension, priority=1)

    # ------------------------------------------------------------------ user: destinations

    @property
    def tg(self) -> asyncio.TaskGroup:
        assert self._tg is not None
        return self._tg

    @property
    def left(self) -> bool:
        return self._left_stasis

    def mark_left(self) -> None:
        self._left_stasis = True

    async def _ring_user(self, a: RingUser) -> None:
        """Push-then-wait, ring, bridge (see wakeup/ringer.py)."""
        from ..wakeup.ringer import CallerGone, Ringer

        spec = self.config.users[a.user]
        rt = self.runtime
        assert rt is not None
        try:
            outcome = await Ringer(self, spec, self.services).run()
        except CallerGone:
            self._finish_record(rt, "ended")
            raise _CallOver() from None
        if outcome.transfer is not None:
            req = outcome.transfer
            await self._execute(rt.transfer(req.destination, self.clock()))
            if self.info is not None:
                self.info.transfers.append(str(req.destination))
            req.done.set_result(True)
            return
        if not outcome.answered:
            await self._execute(rt.ring_finished(a.token, False, self.clock()))
            return
        await self._execute(rt.ring_finished(a.token, True, self.clock()))
        self._finish_record(rt, "bridged")
        await self._bridged(outcome.leg)

    async def _bridged(self, leg: str) -> None:
        """Caller and user talk; whoever hangs up ends the other side too."""
        bridge = f"{self.channel_id}-bridge"
        self._bridged_leg = leg  # the ringer left it routed to this call's queue
        try:
            while True:
                ev = await self.events.get()
                if not isinstance(ev, (StasisEnd, ChannelDestroyed)):
                    continue
                if ev.channel_id == leg:
                    await self.ari.hangup(self.channel_id)
                elif ev.channel_id == self.channel_id:
                    self._left_stasis = True
                    await self.ari.hangup(leg)
                    self._finish_record(self.runtime, "ended")
                    raise _CallOver()
        finally:
            if self._left_stasis:
                self.services.dispatcher.unregister(leg)
                try:
                    await self.ari.destroy_bridge(bridge)
                except AriError:
                    pass

    def _finish_record(self, rt: IvrSession | None, state: str) -> None:
        """The call's context for agents and transfers, as the call leaves the IVR."""
        if rt is None:
            return
        self.services.registry.update(
            self.channel_id, path=list(rt.path), state=state,
            destination=str(rt.destination) if rt.destination else None)

    def _notify_queue(self, queue: str) -> None:
        notifier, info, rt = self.services.notifier, self.info, self.runtime
        if notifier is None or info is None or rt is None:
            return
        notifier.notify({
            "event": "call.queued", "call_id": self.channel_id, "queue": queue,
            "app": info.app, "entry": info.entry, "caller": info.caller,
            "language": info.language, "path": list(rt.path), "custom_data": info.custom_data,
            "timestamp": self.clock().isoformat()})

    async def _record_callback(self, a: RecordCallback) -> None:
        if self.store is None:
            self.log.error("callback for %s requested but no store is configured", a.caller)
            return
        row = await self.store.add_callback(caller=a.caller, queue=a.queue, language=a.language,
                                            entry=a.entry, path="/".join(a.path),
                                            channel_id=self.channel_id)
        self.log.info("callback #%d recorded: %s for queue %s", row, a.caller, a.queue)
