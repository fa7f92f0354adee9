"""Push-then-wait, the shell: ring a user's devices for a call in the engine.

Runs inside the call's TaskGroup, reading the call's own event queue (the outbound legs'
events are routed there too). Everything it starts — push sends, the wait timer, the legs —
belongs to the call: a caller hang-up hangs up the legs, sends the push cancel and returns.

Timeline (``mobile`` user, app asleep): message (optional) → music on hold or ringback →
wake-up push to each of the user's devices → the app REGISTERs → ContactStatusChange →
the mobile leg is created and dialled at once → it answers → caller and leg are bridged.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from ..ari import (
    AriError,
    ChannelDestroyed,
    ChannelStateChange,
    PlaybackFinished,
    StasisEnd,
    StasisStart,
)
from ..calls.session import TransferRequest
from ..ivr.runtime import WATCHDOG_VARIABLE
from ..push import PushError, WakePayload
from .plan import UserSpec, WakePlan, plan_wakeup
from .watcher import ContactAvailable

log = logging.getLogger("ivr_engine.wakeup")

CANCEL_BUDGET_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class WaitExpired:
    """Internal event: the wait budget for the mobile's registration is spent."""

    token: str


class CallerGone(Exception):
    """The caller hung up while ringing; the call is over."""


@dataclass
class RingOutcome:
    answered: bool
    transfer: Any = None  # a TransferRequest that interrupted the ringing
    leg: str | None = None


class Ringer:
    def __init__(self, session: Any, user: UserSpec, services: Any):
        self.s = session
        self.user = user
        self.services = services
        self.ari = session.ari
        self.caller = session.channel_id
        self.queue: asyncio.Queue = session.events
        self.legs: dict[str, str] = {}  # leg channel id -> "uc" | "mobile"
        self._pending_dial: dict[str, str] = {}  # created, not in Stasis yet
        self.pushed: list[Any] = []  # devices whose wake push was accepted
        self.waiting = False
        self._ids = itertools.count(1)
        self._wait_token = ""
        self._hold_playback: str | None = None
        self._tasks: list[asyncio.Task] = []
        self._push_task: asyncio.Task | None = None
        self.registered_at: float | None = None

    # ------------------------------------------------------------------ entry point

    async def run(self) -> RingOutcome:
        user, watcher = self.user, self.services.contacts
        mobile_ok = bool(user.mobile_endpoint) and await watcher.reachable(user.mobile_endpoint)
        plan = plan_wakeup(user, mobile_ok)
        log.info("call %s → user %s (%s): ring uc=%s mobile=%s, push=%s, wait %.1fs",
                 self.caller, user.name, user.ringing_device, plan.ring_uc, plan.ring_mobile,
                 plan.push, plan.wait_seconds)
        if plan.push:
            watcher.watch(user.mobile_endpoint, self.queue)
            self.waiting = True
        try:
            return await self._run(plan)
        finally:
            watcher.unwatch(user.mobile_endpoint or "", self.queue)
            for task in self._tasks:
                task.cancel()
            for leg in self.legs:
                self.services.dispatcher.unregister(leg)

    async def _run(self, plan: WakePlan) -> RingOutcome:
        tg = self.s.tg
        if plan.push:
            self._push_task = tg.create_task(self._push_all(plan))
            self._tasks.append(self._push_task)
            self._wait_token = f"w{next(self._ids)}"
            self._tasks.append(tg.create_task(self._expire(plan.wait_seconds,
                                                           self._wait_token)))
        await self._watchdog(plan.wait_seconds + plan.ring_seconds)
        if self.user.wake.message:
            await self._message(self.user.wake.message)
        await self._hold(True)
        if plan.ring_uc:
            await self._ring(self.user.uc_endpoint, "uc", plan)  # type: ignore[arg-type]
        if plan.ring_mobile:
            await self._ring(self.user.mobile_endpoint, "mobile", plan)  # type: ignore[arg-type]
        if not self.legs and not self.waiting:
            return await self._no_answer()
        while True:
            ev = await self.queue.get()
            outcome = await self._on_event(ev, plan)
            if outcome is not None:
                return outcome

    # ------------------------------------------------------------------ events

    async def _on_event(self, ev: Any, plan: WakePlan) -> RingOutcome | None:
        cid = getattr(ev, "channel_id", None)
        if isinstance(ev, ContactAvailable):
            if self.waiting and ev.aor == self.user.mobile_endpoint:
                self.waiting = False
                self.registered_at = ev.at
                await self._ring(self.user.mobile_endpoint, "mobile", plan)  # type: ignore
                if not self.legs:
                    await self._cancel_pushes()
                    return await self._no_answer()
            return None
        if isinstance(ev, StasisStart) and cid in self._pending_dial:
            # only now may the new leg be dialled: POST /channels/create answers before the
            # channel has entered Stasis, and a dial sent earlier gets 409
            kind = self._pending_dial.pop(cid)
            try:
                await self.ari.dial(cid, caller=self.caller, timeout=plan.ring_seconds)
            except AriError as exc:
                log.warning("call %s: cannot dial %s leg %s: %s", self.caller, kind, cid, exc)
                self.legs.pop(cid, None)
                self.services.dispatcher.unregister(cid)
                await self._hangup(cid)
                if not self.legs and not self.waiting:
                    await self._cancel_pushes()
                    return await self._no_answer()
                return None
            if kind == "mobile" and self.registered_at is not None:
                log.info("call %s: %s registered, dialled in %.1f ms", self.caller,
                         self.user.mobile_endpoint, (time.monotonic() - self.registered_at) * 1000)
            return None
        if isinstance(ev, WaitExpired):
            if ev.token != self._wait_token or not self.waiting:
                return None
            self.waiting = False
            log.info("call %s: %s did not register within %.1fs", self.caller,
                     self.user.mobile_endpoint, plan.wait_seconds)
            await self._cancel_pushes()
            if plan.after_wait == "uc-alone" and self.legs:
                return None  # the UC device keeps ringing alone
            return await self._no_answer()
        if isinstance(ev, TransferRequest):
            await self._stop_everything()
            return RingOutcome(False, transfer=ev)
        if cid == self.caller and isinstance(ev, (StasisEnd, ChannelDestroyed)):
            self.s.mark_left()
            await self._stop_everything()
            raise CallerGone()
        if cid in self.legs:
            if isinstance(ev, ChannelStateChange) and ev.channel.state == "Up":
                return await self._answered(cid)
            if isinstance(ev, (ChannelDestroyed, StasisEnd)):
                kind = self.legs.pop(cid)
                self.services.dispatcher.unregister(cid)
                log.info("call %s: %s leg %s ended", self.caller, kind, cid)
                if not self.legs and not self.waiting:
                    await self._cancel_pushes()
                    return await self._no_answer()
        if isinstance(ev, PlaybackFinished) and ev.playback.id == self._hold_playback:
            self._hold_playback = None
        return None

    # ------------------------------------------------------------------ actions

    async def _watchdog(self, seconds: float) -> None:
        """Asterisk's own deadline for this caller if the engine dies (0: none, the caller
        talks). Set before the message and hold: a variable queued behind a play waits."""
        wd = self.s.config.engine.watchdog
        if wd.enabled:
            value = f"{seconds + wd.grace_seconds:g}" if seconds else "0"
            await self.ari.set_variable(self.caller, WATCHDOG_VARIABLE, value)

    async def _message(self, name: str) -> None:
        rt = self.s.runtime
        prompt = self.s.config.tree.messages.resolve(name, rt.language, rt.app)
        pid = self.s.playback_id("wake")
        await self.ari.play(self.caller, prompt.media, playback_id=pid, lang=prompt.language)
        later: list[Any] = []  # what must be handled once the message is over
        while True:
            ev = await self.queue.get()
            if isinstance(ev, PlaybackFinished) and ev.playback.id == pid:
                for item in later:
                    self.queue.put_nowait(item)
                return
            if getattr(ev, "channel_id", None) == self.caller and isinstance(
                    ev, (StasisEnd, ChannelDestroyed)):
                self.s.mark_left()
                await self._cancel_pushes()
                raise CallerGone()
            if isinstance(ev, (ContactAvailable, WaitExpired)):
                later.append(ev)

    async def _hold(self, on: bool) -> None:
        w = self.user.wake
        try:
            if w.hold == "moh":
                if on:
                    await self.ari.start_moh(self.caller, w.moh_class)
                else:
                    await self.ari.stop_moh(self.caller)
            elif on:
                self._hold_playback = self.s.playback_id("ringback")
                await self.ari.play(self.caller, "tone:ring", playback_id=self._hold_playback)
            elif self._hold_playback:
                await self.ari.stop_playback(self._hold_playback)
                self._hold_playback = None
        except AriError as exc:
            log.warning("call %s: hold %s failed: %s", self.caller, "on" if on else "off", exc)

    async def _ring(self, endpoint: str, kind: str, plan: WakePlan) -> None:
        if kind in self.legs.values():
            return
        leg = f"{self.caller}-{kind}{next(self._ids)}"
        self.services.dispatcher.attach(leg, self.queue)
        self.legs[leg] = kind
        self._pending_dial[leg] = kind  # dialled on its StasisStart (see _on_event)
        try:
            await self.ari.create_channel(f"PJSIP/{endpoint}", app=self.ari.app,
                                          app_args=["leg", self.caller], channel_id=leg,
                                          originator=self.caller)
        except AriError as exc:
            log.warning("call %s: cannot ring %s (%s): %s", self.caller, endpoint, kind, exc)
            self.legs.pop(leg, None)
            self._pending_dial.pop(leg, None)
            self.services.dispatcher.unregister(leg)
            await self._hangup(leg)

    async def _answered(self, leg: str) -> RingOutcome:
        kind = self.legs[leg]
        log.info("call %s answered by %s (%s)", self.caller, self.user.name, kind)
        for other in [x for x in self.legs if x != leg]:
            await self._hangup(other)
        self.waiting = False
        if kind != "mobile":  # answered elsewhere: the woken phone must stop ringing
            await self._cancel_pushes()
        await self._hold(False)
        await self._watchdog(0)  # a conversation has no deadline
        del self.legs[leg]  # it now belongs to the bridged call (stays routed to the queue)
        bridge = await self.ari.create_bridge("mixing", bridge_id=f"{self.caller}-bridge")
        await self.ari.add_channel_to_bridge(bridge["id"], [self.caller, leg])
        return RingOutcome(True, leg=leg)

    async def _no_answer(self) -> RingOutcome:
        await self._stop_everything()
        return RingOutcome(False)

    async def _stop_everything(self) -> None:
        self.waiting = False
        for leg in list(self.legs):
            await self._hangup(leg)
        await self._cancel_pushes()
        if not self.s.left:
            await self._hold(False)

    async def _hangup(self, channel: str) -> None:
        try:
            await self.ari.hangup(channel)
        except AriError:
            pass

    # ------------------------------------------------------------------ push

    async def _expire(self, seconds: float, token: str) -> None:
        await asyncio.sleep(seconds)
        self.queue.put_nowait(WaitExpired(token))

    async def _push_all(self, plan: WakePlan) -> None:
        user, push, store = self.user, self.services.push, self.services.store
        if push is None or store is None:
            log.error("call %s: user %s needs a push but no push service/store is set up",
                      self.caller, user.name)
            return
        devices = await store.devices_for_user(user.name, user.app)
        if not devices:
            log.warning("call %s: user %s has no registered device to wake", self.caller,
                        user.name)
            return
        ch = self.s.start.channel
        payload = WakePayload.create(self.caller, ch.caller_number, ch.caller_name,
                                     plan.ring_seconds)
        ttl = max(1, math.ceil(plan.wait_seconds))

        async def one(device: Any) -> None:
            try:
                result = await push.wake(device, payload, ttl, app=user.app)
            except PushError as exc:
                log.error("call %s: push to %s's %s device impossible: %s", self.caller,
                          user.name, device.platform, exc)
                return
            log.info("call %s: wake push to %s's %s device: %s %s (%.0f ms)", self.caller,
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
        if not devices or self.services.push is None:
            return
        ch = self.s.start.channel

        async def one(device: Any) -> None:
            try:
                r = await self.services.push.cancel(device, self.caller, ch.caller_number,
                                                    app=self.user.app)
                log.info("call %s: cancel push to %s's %s device: %s", self.caller,
                         self.user.name, device.platform, "ok" if r.ok else r.reason)
            except PushError as exc:
                log.error("call %s: cancel push impossible: %s", self.caller, exc)

        try:
            async with asyncio.timeout(CANCEL_BUDGET_SECONDS):
                async with asyncio.TaskGroup() as tg:
                    for d in devices:
                        tg.create_task(one(d))
        except TimeoutError:
            log.warning("call %s: cancel pushes took longer than %.0fs", self.caller,
                        CANCEL_BUDGET_SECONDS)
