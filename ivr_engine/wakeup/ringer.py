"""Push-then-wait, the shell: executes the ringing machine (``ringing.py``) over ARI and push.

A :class:`Ringer` is one phase of a call: the call's session reads the call's event queue and
hands the ringer the events that are its own (:meth:`Ringer.owns`) — its legs, the app's
registration, its wait timer, its message. Everything it starts (push sends, the wait timer,
the legs) belongs to the call: the session stops the ringer when the caller hangs up or a
transfer takes the call elsewhere, and the call's TaskGroup ends the rest.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Coroutine

from ..ari import AriClient, AriError, ChannelDestroyed, ChannelStateChange, PlaybackFinished
from ..ari import StasisEnd, StasisStart
from ..deadlines import CallerWaitFailed, caller_wait
from ..ivr.runtime import WATCHDOG_VARIABLE
from ..push import PushError, WakePayload
from .plan import UserSpec, plan_wakeup
from .ringing import (
    ArmWatchdog,
    Bridge,
    CancelPushes,
    CreateLeg,
    DialLeg,
    Finished,
    HangupLeg,
    Hold,
    PlayMessage,
    RingAction,
    Ringing,
    SendWakePushes,
    StartWaitTimer,
)
from .registrations import ContactAvailable

log = logging.getLogger("ivr_engine.wakeup")

CANCEL_BUDGET_SECONDS = 3.0
_timers = itertools.count(1)


@dataclass(frozen=True, slots=True)
class WaitExpired:
    """Internal event: the wait budget for the mobile's registration is spent."""

    token: str


@dataclass(frozen=True, slots=True)
class RingContext:
    """What a ringing may use of its call (the call's session builds it)."""

    ari: AriClient
    channel_id: str
    caller_number: str
    caller_name: str
    prompt: Callable[[str], tuple[tuple[str, ...], str]]  # message name -> media, language
    playback_id: Callable[[str], str]  # a playback id in the call's scope
    post: Callable[[object], None]  # an internal event onto the call's queue
    spawn: Callable[[Coroutine], asyncio.Task]  # a task of the call's TaskGroup
    attach: Callable[[str], None]  # route a leg's events to the call
    detach: Callable[[str], None]
    watchdog: bool  # whether TIMEOUT(absolute) is kept armed (engine.watchdog.enabled)
    grace_seconds: float
    db_deadline_seconds: float = 2.0  # engine.database.call_deadline_seconds


async def _quietly(request: Coroutine) -> None:
    try:
        await request
    except AriError:
        pass


class Ringer:
    def __init__(self, ctx: RingContext, user: UserSpec, push: Any, store: Any, contacts: Any):
        self.ctx, self.user, self.push, self.store, self.contacts = ctx, user, push, store, contacts
        self.machine: Ringing | None = None
        self.pushed: list[Any] = []  # devices whose wake push was accepted
        self._push_task: asyncio.Task | None = None
        self._tasks: list[asyncio.Task] = []
        self._timer = ""
        self._registered_at: float | None = None
        self._hold_playback: str | None = None
        self._legs: set[str] = set()  # created, not hung up, not handed to a bridge

    # -------------------------------------------------------------- the call's side

    async def start(self) -> Finished | None:
        user = self.user
        reachable = bool(user.mobile_endpoint) and await self.contacts.reachable(
            user.mobile_endpoint)
        plan = plan_wakeup(user, reachable)
        log.info("call %s → user %s (%s): ring uc=%s mobile=%s, push=%s, wait %.1fs",
                 self.ctx.channel_id, user.name, user.ringing_device, plan.ring_uc,
                 plan.ring_mobile, plan.push, plan.wait_seconds)
        self.machine = Ringing(self.ctx.channel_id, user, plan, self.ctx.grace_seconds)
        if plan.push:
            self.contacts.watch(user.mobile_endpoint, self.ctx.post)
        return await self._run(self.machine.start())

    def owns(self, ev: object) -> bool:
        """Is ``ev`` for this ringing (rather than for the IVR)?"""
        if isinstance(ev, (ContactAvailable, WaitExpired)):
            return True
        if isinstance(ev, PlaybackFinished):
            return ev.playback.id in (self.ctx.playback_id("wake"), self._hold_playback)
        cid = getattr(ev, "channel_id", None)
        return cid is not None and cid != self.ctx.channel_id

    async def handle(self, ev: object) -> Finished | None:
        m = self.machine
        assert m is not None
        cid = getattr(ev, "channel_id", None)
        if isinstance(ev, ContactAvailable):
            if ev.aor != self.user.mobile_endpoint:
                return None
            self._registered_at = ev.at
            return await self._run(m.registered())
        if isinstance(ev, WaitExpired):
            if ev.token != self._timer:
                return None
            log.info("call %s: %s did not register within %.1fs", self.ctx.channel_id,
                     self.user.mobile_endpoint, m.plan.wait_seconds)
            return await self._run(m.wait_expired())
        if isinstance(ev, PlaybackFinished):
            if ev.playback.id == self.ctx.playback_id("wake"):
                return await self._run(m.message_finished())
            self._hold_playback = None  # the ringback tone was stopped
            return None
        if isinstance(ev, StasisStart):
            return await self._run(m.leg_in_stasis(ev.channel.id))
        if isinstance(ev, ChannelStateChange) and ev.channel.state == "Up":
            return await self._run(m.leg_answered(cid))  # type: ignore[arg-type]
        if isinstance(ev, ChannelDestroyed):
            self._legs.discard(cid)  # type: ignore[arg-type]
        if isinstance(ev, (ChannelDestroyed, StasisEnd)) and cid in m.legs:
            log.info("call %s: %s leg %s ended", self.ctx.channel_id, m.legs[cid], cid)
            return await self._run(m.leg_gone(cid))
        return None

    async def stop(self, caller_left: bool = False) -> None:
        """A transfer, the caller's hang-up or a failure ends the ringing: legs, pushes, hold.
        A leg the machine no longer counts (answered, its bridge never made) is hung up too."""
        try:
            if self.machine is not None:
                await self._run(self.machine.stop(caller_left))
        finally:
            for leg in list(self._legs):
                await self._hangup(leg)
            self.close()

    def close(self) -> None:
        """Whatever the ringing ended with: stop watching, timers and pushes belong to it."""
        self.contacts.unwatch(self.user.mobile_endpoint or "", self.ctx.post)
        for task in self._tasks:
            task.cancel()

    # -------------------------------------------------------------- actions

    async def _run(self, actions: list[RingAction]) -> Finished | None:
        done: Finished | None = None
        for a in actions:
            if isinstance(a, Finished):
                done = a
            else:
                await self._do(a)
        if done is not None:
            self.close()
        return done

    async def _do(self, a: RingAction) -> None:
        ctx, ari = self.ctx, self.ctx.ari
        if isinstance(a, ArmWatchdog):
            if ctx.watchdog:
                await ari.set_variable(ctx.channel_id, WATCHDOG_VARIABLE, f"{a.seconds:g}")
        elif isinstance(a, SendWakePushes):
            self._push_task = ctx.spawn(self._push_all(a.ttl_seconds))
            self._tasks.append(self._push_task)
        elif isinstance(a, StartWaitTimer):
            self._timer = f"w{next(_timers)}"
            self._tasks.append(ctx.spawn(self._expire(a.seconds, self._timer)))
        elif isinstance(a, PlayMessage):
            media, lang = ctx.prompt(a.name)
            await ari.play(ctx.channel_id, media, playback_id=ctx.playback_id("wake"),
                           lang=lang)
        elif isinstance(a, Hold):
            await self._hold(a.on)
        elif isinstance(a, CreateLeg):
            await self._create(a)
        elif isinstance(a, DialLeg):
            await self._dial(a)
        elif isinstance(a, HangupLeg):
            await self._hangup(a.leg)
        elif isinstance(a, CancelPushes):
            await self._cancel_pushes()
        elif isinstance(a, Bridge):
            log.info("call %s answered by %s (%s)", ctx.channel_id, self.user.name, a.leg)
            bridge = await ari.create_bridge("mixing", bridge_id=f"{ctx.channel_id}-bridge")
            try:
                await ari.add_channel_to_bridge(bridge["id"], [ctx.channel_id, a.leg])
            except AriError:
                await _quietly(ari.destroy_bridge(bridge["id"]))
                raise  # the call fails: stop() hangs the answered leg up
            self._legs.discard(a.leg)  # the bridged phase owns it now

    async def _create(self, a: CreateLeg) -> None:
        self.ctx.attach(a.leg)  # before it exists: no event of it is missed
        self._legs.add(a.leg)
        # the app where it registered (on the node, or through Kamailio); a desk phone
        # (uc) on the node
        target = self.contacts.dial(a.endpoint) if a.kind == "mobile" else f"PJSIP/{a.endpoint}"
        try:
            await self.ctx.ari.create_channel(
                target, app=self.ctx.ari.app,
                app_args=["leg", self.ctx.channel_id], channel_id=a.leg,
                originator=self.ctx.channel_id)
        except AriError as exc:
            log.warning("call %s: cannot ring %s (%s): %s", self.ctx.channel_id, a.endpoint,
                        a.kind, exc)
            await self._hangup(a.leg)
            assert self.machine is not None
            await self._run(self.machine.leg_gone(a.leg))

    async def _dial(self, a: DialLeg) -> None:
        # only now: POST /channels/create answers before the channel is in Stasis, and a
        # dial sent earlier gets 409
        try:
            await self.ctx.ari.dial(a.leg, caller=self.ctx.channel_id, timeout=a.ring_seconds)
        except AriError as exc:
            log.warning("call %s: cannot dial leg %s: %s", self.ctx.channel_id, a.leg, exc)
            await self._hangup(a.leg)
            assert self.machine is not None
            await self._run(self.machine.leg_gone(a.leg))
            return
        assert self.machine is not None
        if self._registered_at is not None and self.machine.legs.get(a.leg) == "mobile":
            log.info("call %s: %s registered, dialled in %.1f ms", self.ctx.channel_id,
                     self.user.mobile_endpoint, (time.monotonic() - self._registered_at) * 1000)

    async def _hold(self, on: bool) -> None:
        w, ctx = self.user.wake, self.ctx
        try:
            if w.hold == "moh":
                if on:
                    await ctx.ari.start_moh(ctx.channel_id, w.moh_class)
                else:
                    await ctx.ari.stop_moh(ctx.channel_id)
            elif on:
                self._hold_playback = ctx.playback_id("ringback")
                await ctx.ari.play(ctx.channel_id, "tone:ring", playback_id=self._hold_playback)
            elif self._hold_playback:
                await ctx.ari.stop_playback(self._hold_playback)
                self._hold_playback = None
        except AriError as exc:
            log.warning("call %s: hold %s failed: %s", ctx.channel_id, "on" if on else "off",
                        exc)

    async def _hangup(self, channel: str) -> None:
        self.ctx.detach(channel)
        self._legs.discard(channel)
        try:
            await self.ctx.ari.hangup(channel)
        except AriError:
            pass

    # -------------------------------------------------------------- push

    async def _expire(self, seconds: float, token: str) -> None:
        await asyncio.sleep(seconds)
        self.ctx.post(WaitExpired(token))

    async def _push_all(self, wait_seconds: float) -> None:
        user, ctx = self.user, self.ctx
        if self.push is None or self.store is None:
            log.error("call %s: user %s needs a push but no push service/store is set up",
                      ctx.channel_id, user.name)
            return
        try:  # the caller hears the hold meanwhile: no device found in time, no push
            devices = await caller_wait(
                ctx.spawn, ctx.db_deadline_seconds, "devices", ctx.channel_id,
                self.store.devices.for_user(user.name, user.app),
                then=f"no wake push for {user.name}: the caller gets the no-answer "
                     "destination when the wait ends")
        except CallerWaitFailed:
            return
        if not devices:
            log.warning("call %s: user %s has no registered device to wake", ctx.channel_id,
                        user.name)
            return
        assert self.machine is not None
        payload = WakePayload.create(ctx.channel_id, ctx.caller_number, ctx.caller_name,
                                     self.machine.plan.ring_seconds)
        ttl = max(1, math.ceil(wait_seconds))

        async def one(device: Any) -> None:
            try:
                result = await self.push.wake(device, payload, ttl, app=user.app)
            except PushError as exc:
                log.error("call %s: push to %s's %s device impossible: %s", ctx.channel_id,
                          user.name, device.platform, exc)
                return
            log.info("call %s: wake push to %s's %s device: %s %s (%.0f ms)", ctx.channel_id,
                     user.name, device.platform, "ok" if result.ok else "failed",
                     result.reason, result.elapsed_ms)
            if result.ok:
                self.pushed.append(device)

        async with asyncio.TaskGroup() as tg:
            for d in devices:
                tg.create_task(one(d))

    async def _cancel_pushes(self) -> None:
        """Tell woken devices the call is gone (never a VoIP push on iOS)."""
        task = self._push_task
        if task is not None and not task.done():
            # the wake pushes are still on their way: let them land, then cancel them
            await asyncio.wait({task}, timeout=CANCEL_BUDGET_SECONDS)
        devices, self.pushed = self.pushed, []
        if not devices or self.push is None:
            return
        ctx = self.ctx

        async def one(device: Any) -> None:
            try:
                r = await self.push.cancel(device, ctx.channel_id, ctx.caller_number,
                                           app=self.user.app)
                log.info("call %s: cancel push to %s's %s device: %s", ctx.channel_id,
                         self.user.name, device.platform, "ok" if r.ok else r.reason)
            except PushError as exc:
                log.error("call %s: cancel push impossible: %s", ctx.channel_id, exc)

        try:
            async with asyncio.timeout(CANCEL_BUDGET_SECONDS):
                async with asyncio.TaskGroup() as tg:
                    for d in devices:
                        tg.create_task(one(d))
        except TimeoutError:
            log.warning("call %s: cancel pushes took longer than %.0fs", ctx.channel_id,
                        CANCEL_BUDGET_SECONDS)
