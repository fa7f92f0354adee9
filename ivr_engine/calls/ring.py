"""The ringing phase of a call: a ``user:`` destination rings the user's devices (push-then-
wait, ``wakeup/``); an answer leads to the bridged phase, no answer back to the IVR, which
takes the user's no-answer destination. The user is looked up when the call reaches it
(``users.directory.for_call``: the database's user, else the config's), so a change made
through the users API applies from the next call."""

from __future__ import annotations

import logging
import time

from .. import metrics
from ..config.users import CompiledUser
from ..ivr.actions import RingUser
from ..users.directory import for_call
from ..wakeup.ringer import Ringer, RingContext
from ..wakeup.ringing import Finished
from .bridge import BridgePhase
from .exits import announce
from .ivr import IvrPhase
from .phase import Call, Phase, TransferRequest

log = logging.getLogger("ivr_engine.calls")


async def start_ringing(call: Call, ivr: IvrPhase, a: RingUser) -> Phase | None:
    """Start ringing ``a.user``; the next phase (None: the IVR goes on at once, or the
    caller went to the dialplan fallback: nobody to ring)."""
    store = call.services.store
    found = await for_call(call.config, getattr(store, "users", None), a.user,
                           channel=call.channel_id, spawn=call.spawn)
    problems = found.problems(call.config) if found is not None else []
    if found is None or problems:
        log.error("call %s: user %s %s: the caller goes to the dialplan fallback",
                  call.channel_id, a.user, "cannot be rung (" + "; ".join(problems) + ")"
                  if problems else "is neither in the database nor under users:")
        ivr.rescued = True  # as a callback the database could not record (calls/ivr.py)
        await ivr.caller_left()
        await call.rescue()
        return None
    user = found.compile(call.config)
    log.info("call %s: ringing user %s (%s, %s)", call.channel_id, a.user, found.source,
             user.spec.ringing_device)
    wd = call.config.engine.watchdog
    ctx = RingContext(
        ari=call.ari, channel_id=call.channel_id,
        caller_number=call.start.channel.caller_number,
        caller_name=call.start.channel.caller_name,
        prompt=lambda name: call.prompt(name), playback_id=call.playback_id,
        post=call.post, spawn=call.spawn, attach=call.attach, detach=call.detach,
        watchdog=wd.enabled, grace_seconds=wd.grace_seconds,
        db_deadline_seconds=call.config.engine.database.call_deadline_seconds)
    ringer = Ringer(ctx, user.spec, call.services.push, store, call.node.contacts)
    phase = RingPhase(call, ivr, ringer, a.token, user)
    done = await ringer.start()
    if done is not None:
        return await phase.finished(done)
    return phase


class RingPhase:
    def __init__(self, call: Call, ivr: IvrPhase, ringer: Ringer, token: str,
                 user: CompiledUser):
        self.call, self.ivr, self.ringer, self.token = call, ivr, ringer, token
        self.user = user
        self.started = time.monotonic()

    def _measure(self, outcome: str) -> None:
        metrics.WAKEUP_WAIT.labels(outcome).observe(time.monotonic() - self.started)

    async def handle(self, ev: object) -> Phase | None:
        if isinstance(ev, TransferRequest):
            await self.ringer.stop()
            self._measure("transferred")
            return await self._back(await self.ivr.transfer(ev))
        if not self.ringer.owns(ev):
            return None  # the caller's keys and late IVR events wait for nothing now
        done = await self.ringer.handle(ev)
        return await self.finished(done) if done is not None else None

    async def caller_left(self) -> None:
        await self.ringer.stop(caller_left=True)
        self._measure("caller-left")

    async def finished(self, done: Finished) -> Phase | None:
        self._measure("answered" if done.answered else "no-answer")
        rt, now = self.ivr.rt, self.call.clock()
        actions = rt.ring_finished(self.token, done.answered, now, self.user.no_answer)
        if done.answered:
            assert done.leg is not None
            self.call.record("bridged")
            announce(self.call, "call.user")
            return BridgePhase(self.call, done.leg)
        return await self._back(await self.ivr.execute(actions))

    async def _back(self, nxt: Phase | None) -> Phase:
        return nxt if nxt is not None else self.ivr
