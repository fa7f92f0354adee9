"""One call in Stasis, from its StasisStart to the moment it leaves the engine.

The session is the one reader of its call's event queue. It hands each event to the call's
current phase (``phase.py``: token → IVR → ringing → bridged) and handles the caller leaving
itself, once. Everything the call owns (timers, push sends, outbound legs) runs inside one
``asyncio.TaskGroup``: when the call ends the group is torn down and every task it holds is
cancelled. If the engine itself stops while the caller is still in the IVR, the prompt that
plays is stopped and the channel is sent to the dialplan fallback (``ivr-engine-fallback``)
rather than left in Stasis with nobody driving it; a caller talking to a user stays bridged.

Whatever way the call ends — the caller leaves, a phase raises, the engine stops — the phase
releases what it holds (a user's legs, ringing or answered, are hung up; timers and
registration watches end) and every transfer request the call took is answered.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Coroutine
from urllib.parse import quote

from .. import metrics
from ..logs import CHANNEL
from ..ari import AriClient, AriError, AriNotFound, ChannelDestroyed, StasisEnd, StasisStart
from ..config import Config
from ..ivr.actions import RingUser
from ..ivr.destinations import HANDOFF_KINDS
from ..ivr.runtime import IvrRuntime, Watchdog
from ..apps.guard_db import MemoryGuard
from .bridge import BridgePhase
from .entry import new_call, resume_call
from .exits import announce
from .ivr import IvrPhase
from .phase import Phase, TransferRequest
from .registry import CallInfo, CallRegistry
from .ring import start_ringing
from .sounds import SoundLengths
from .webhook import Webhooks

if TYPE_CHECKING:
    from ..node import AsteriskNode

log = logging.getLogger("ivr_engine.calls")

@dataclass
class CallServices:
    """What every call may use besides its Asterisk node; owned by the composition root."""

    store: Any = None
    registry: CallRegistry = field(default_factory=CallRegistry)
    notifier: Webhooks | None = None  # how calls leave the IVR, to the webhooks
    push: Any = None  # push.PushService
    token_guard: Any = field(default_factory=MemoryGuard)  # apps/guard_db.py
    engine: str | None = None  # this engine's name (config_nodes.engine_name): call records
    offline: Any = None  # lifecycle.offline.OfflineCodes: codes of calls with no data path
    sounds: SoundLengths = field(default_factory=SoundLengths)  # prompt lengths (watchdog)


class _CallOver(Exception):
    """Raised inside the call's TaskGroup to end it and cancel whatever it still runs."""


#: how long a phase may take to release what it holds when the call ends abnormally (its
#: legs are hung up first; cancel pushes may not all be sent within it)
RELEASE_SECONDS = 4.0


def _leaves(exc: BaseException) -> list[BaseException]:
    """The plain exceptions inside (possibly nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class CallSession:
    def __init__(self, node: "AsteriskNode", config: Config, start: StasisStart,
                 events: asyncio.Queue, services: CallServices,
                 clock: Callable[[], dt.datetime] = _utcnow, *, taken_over: bool = False,
                 bridged_with: str | None = None):
        self.node = node
        self.ari: AriClient = node.ari
        self.config = config
        self.start = start
        self.events = events
        self.services = services
        self.clock = clock
        self.taken_over = taken_over or (bool(start.args) and start.args[0] == "resume")
        self.bridged_with = bridged_with
        self.channel_id = start.channel.id
        self.info: CallInfo | None = None
        self.runtime: IvrRuntime | None = None
        self.phase: Phase | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._left = False
        self._released = False
        self._transfers: list[TransferRequest] = []  # claimed, not answered yet
        self.ended_as: str | None = None  # handed-off | ended | failed, once over
        self.announced = bridged_with is not None  # its exit told (exits.py)

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Run the call to its end. Never raises, except CancelledError on engine shutdown."""
        CHANNEL.set(self.channel_id)  # this task's context: every log line of the call
        try:
            await self._run_group()
        except asyncio.CancelledError:
            if isinstance(self.phase, BridgePhase):
                # a conversation in progress: Asterisk keeps the bridge without us
                log.warning("engine stopping: call %s stays bridged with %s", self.channel_id,
                            self.phase.leg)
            elif not self._left:
                await asyncio.shield(self._abandon(rescue=True))
            raise
        finally:
            self._over()

    def _over(self) -> None:
        """The call's bookkeeping once its task ends, however it ended."""
        if self.ended_as is None:
            self.ended_as = "failed"
        for req in self._transfers:
            req.settle(self.ended_as)
        self._transfers.clear()

    def offer(self, req: TransferRequest) -> None:
        """A transfer request from the API: read in order with the call's events, or answered
        at once when the call is already over."""
        if self.ended_as is not None:
            req.settle(self.ended_as)
        else:
            self.post(req)

    async def _abandon(self, *, rescue: bool) -> None:
        """The call ends without its caller leaving (a failure, the engine stopping): the
        phase releases what it holds, then a caller still in Stasis goes to the fallback."""
        await self._release()
        if not rescue:
            return
        if isinstance(self.phase, IvrPhase) and self.phase.handed_off:
            # Asterisk took it to its destination, its StasisEnd not read yet (the engine
            # stopping right after a hand-off): a rescue would fail on a channel out of Stasis
            self.record("handed-off")
            self.ended_as = "handed-off"
            return
        if await self.rescue():
            self.services.registry.update(self.channel_id, state="handed-off",
                                          destination="fallback")
            self.ended_as = "handed-off"
        elif await self._channel_gone():  # hung up meanwhile: no event will tell us now
            self.record("ended")
            self.ended_as = "ended"

    async def _release(self) -> None:
        if self._released or self.phase is None:
            return
        self._released = True
        try:
            async with asyncio.timeout(RELEASE_SECONDS):
                await self.phase.caller_left()
        except (AriError, TimeoutError, OSError) as exc:
            log.warning("call %s: releasing its %s: %s", self.channel_id,
                        type(self.phase).__name__, exc or type(exc).__name__)

    async def _run_group(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(self._main())
        except* _CallOver:
            pass
        except* AriError as eg:
            # a request raced the caller's hang-up (404 or 400/409/412 on a dying channel) or
            # Asterisk refused something: only the second deserves an error and a rescue
            first = _leaves(eg)[0]
            if await self._channel_gone(first):
                log.info("channel %s went away during %s", self.channel_id, first)
                await self._abandon(rescue=False)
                self.record("ended")
                self.ended_as = "ended"
            else:
                log.error("call %s failed: %s", self.channel_id, first)
                await self._abandon(rescue=True)
        except* Exception as eg:  # a bug must not leave the caller in silence
            leaves = _leaves(eg)
            log.error("call %s failed: %r", self.channel_id, leaves, exc_info=leaves[0])
            await self._abandon(rescue=True)

    async def _main(self) -> None:
        self.phase = await self._begin()
        if self.phase is None:
            raise _CallOver()
        while True:
            ev = await self.events.get()
            if isinstance(ev, (StasisEnd, ChannelDestroyed)) and ev.channel_id == self.channel_id:
                await self._caller_left(ev)
            if isinstance(ev, TransferRequest):
                if not ev.claim():
                    continue  # its requester gave up before the call read it
                self._transfers.append(ev)
            nxt = await self.phase.handle(ev)
            if nxt is not None:
                self.phase = nxt
            if self._transfers:  # a call leaving for the dialplan answers at its StasisEnd
                self._transfers = [r for r in self._transfers if not r.settled.is_set()]

    async def _begin(self) -> Phase | None:
        if self.bridged_with is not None:
            self.register("", "taken-over", None, "", self.config.routing.default_language, {})
            self.record("bridged")
            log.info("call %s taken over: bridged with %s", self.channel_id, self.bridged_with)
            return BridgePhase(self, self.bridged_with)
        if self.taken_over:
            return await resume_call(self)
        return await new_call(self)

    async def _caller_left(self, ev: StasisEnd | ChannelDestroyed) -> None:
        self._left = True
        assert self.phase is not None
        self._released = True
        await self.phase.caller_left()
        rt = self.runtime
        handed_off = isinstance(ev, StasisEnd) and isinstance(self.phase, IvrPhase) and \
            rt is not None and rt.destination is not None and \
            rt.destination.kind in HANDOFF_KINDS
        self.record("handed-off" if handed_off else "ended")
        self.ended_as = "handed-off" if handed_off else "ended"
        announce(self, "call.hungup", hung_up_by="caller", reason="caller-hung-up")
        log.info("call %s left the engine: path=%s destination=%s", self.channel_id,
                 "/".join(rt.path) if rt else "", rt.destination if rt else None)
        metrics.CALLS.labels(self.info.via if self.info else "unrouted",
                             self._outcome(handed_off)).inc()
        raise _CallOver()

    def _outcome(self, handed_off: bool) -> str:
        """How the call left: handed-off | answered-by-user | ended-by-engine | caller-left."""
        if handed_off:
            return "handed-off"
        if isinstance(self.phase, BridgePhase):
            return "answered-by-user"
        rt = self.runtime
        return "ended-by-engine" if rt is not None and rt.finished else "caller-left"

    async def _channel_gone(self, err: BaseException | None = None) -> bool:
        if self._left:
            return True
        if isinstance(err, AriNotFound) and err.message == "Channel not found" \
                and err.path.startswith(f"/channels/{quote(self.channel_id, safe='')}/"):
            # Asterisk's word that no channel has this id (409 if outside Stasis); GET
            # /channels/<id> reads its snapshot cache, which keeps a hung-up one a moment more
            return True
        try:
            return await self.ari.get_channel(self.channel_id) is None
        except (AriError, OSError):
            return False

    async def rescue(self) -> bool:
        """Send a caller still in Stasis to the dialplan fallback (message + default queue);
        True when Asterisk took it there.

        What plays is stopped at the same time: a ``continue`` waits in the channel's command
        queue behind a playing prompt, and nobody should hear a menu no engine drives."""
        if self._left:
            return False
        playing = self.phase.playing if isinstance(self.phase, IvrPhase) else []
        if self.runtime is not None:
            playing += [self.playback_id("wake"), self.playback_id("ringback")]
        for attempt in (1, 2):
            try:
                async with asyncio.timeout(2):
                    await asyncio.gather(
                        *(self._stop_quietly(pid) for pid in playing),
                        # its hang-up must still reach the engine: the record then ends
                        self.ari.subscribe(f"channel:{self.channel_id}"),
                        self.ari.continue_in_dialplan(
                            self.channel_id, context=self.config.engine.dialplan.fallback,
                            extension="s", priority=1))
                log.warning("call %s sent to the dialplan fallback", self.channel_id)
                return True
            except AriNotFound:
                return False
            except (AriError, TimeoutError, OSError) as exc:
                log.warning("fallback for call %s failed (attempt %d): %s", self.channel_id,
                            attempt, exc)
        return False

    async def _stop_quietly(self, playback_id: str) -> None:
        try:
            await self.ari.stop_playback(playback_id)
        except AriError:
            pass

    # ------------------------------------------------------------------ for the phases

    def spawn(self, coro: Coroutine) -> asyncio.Task:
        """A task the call owns (cancelled when the call ends)."""
        assert self._tg is not None
        return self._tg.create_task(coro)

    def post(self, event: object) -> None:
        """An internal event for this call (timers, registrations), read in order."""
        self.events.put_nowait(event)

    def attach(self, channel_id: str) -> None:
        """Route another channel's events (a user's leg) to this call (until the call ends:
        the manager then forgets every channel routed to its queue)."""
        self.node.dispatcher.attach(channel_id, self.events)

    def detach(self, channel_id: str) -> None:
        self.node.dispatcher.unregister(channel_id)

    def playback_id(self, name: str) -> str:
        """``<channel>.p<seq>.<name>``: the id of a playback in the runtime's current scope
        (an engine taking the call over can name it; see ivr/runtime.py)."""
        assert self.runtime is not None
        return f"{self.channel_id}.{self.runtime.play_scope}.{name}"

    def prompt(self, name: str) -> tuple[tuple[str, ...], str]:
        """A message's media and language for this call (its language and app)."""
        assert self.runtime is not None
        p = self.config.tree.messages.resolve(name, self.runtime.language, self.runtime.app)
        return p.media, p.language

    def new_runtime(self, menu: str, language: str, label: str,
                    app: str | None) -> IvrRuntime:
        wd = self.config.engine.watchdog
        lengths = functools.partial(self.services.sounds.length, sounds_dir=wd.sounds_dir,
                                    sounds_root=wd.sounds_root)
        self.runtime = IvrRuntime(
            self.config.tree, menu, language, label, self.start.channel.caller_number, app,
            watchdog=Watchdog(wd.grace_seconds, wd.prompt_seconds, lengths)
            if wd.enabled else None)
        return self.runtime

    def register(self, label: str, via: str, app: str | None, root: str, language: str,
                 custom: dict[str, str], user: str | None = None) -> None:
        """The call's context for agents and transfers (GET /v1/calls/<id>); ``user``: the
        verified user it carries."""
        ch = self.start.channel
        self.info = self.services.registry.add(CallInfo(
            id=self.channel_id, channel_name=ch.name, caller=ch.caller_number, entry=label,
            via=via, app=app, root_menu=root, language=language, custom_data=custom,
            user=user, verified=user is not None, node=getattr(self.node, "name", None),
            engine=self.services.engine))

    def record(self, state: str) -> None:
        """The call's state as it leaves the IVR (handed-off, bridged, ended)."""
        rt = self.runtime
        values: dict[str, Any] = {"state": state}
        if rt is not None:
            values.update(path=list(rt.path),
                          destination=str(rt.destination) if rt.destination else None)
        self.services.registry.update(self.channel_id, **values)

    async def ring(self, ivr: IvrPhase, a: RingUser) -> Phase | None:
        return await start_ringing(self, ivr, a)
