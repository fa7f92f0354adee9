"""Every live call, whichever Asterisk node it is on: one task per call, all in one TaskGroup.

Cancelling :meth:`Calls.run` (engine shutdown) cancels every call: a caller still in a menu
is sent to the dialplan fallback, one talking to a user stays bridged (``session.py``).

When a call's task ends, however it ended, nothing of it is left behind: the node's
dispatcher forgets every channel routed to the call's queue (its legs too), the contact
watcher every wait the call made, and whatever was still queued for it is answered (a
hang-up of a handed-off call, a transfer request). ``ivr_held{kind}`` (``/metrics``) shows
what is held, 0 everywhere when no call is in progress.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Callable

from .. import metrics
from ..ari import ChannelDestroyed, StasisStart
from ..config import Config
from .phase import TransferRequest
from .session import CallServices, CallSession

if TYPE_CHECKING:
    from ..node import AsteriskNode

log = logging.getLogger("ivr_engine.calls")


class Calls:
    def __init__(self, config: Callable[[], Config], services: CallServices):
        self.config = config
        self.services = services
        self.sessions: dict[str, CallSession] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._nodes: dict[str, "AsteriskNode"] = {}
        self._homes: dict[str, str] = {}  # handed-off call -> its node's name, until it ends
        held = metrics.HELD.labels
        held("sessions").set_function(lambda: len(self.sessions))
        held("channels").set_function(
            lambda: sum(len(n.dispatcher) for n in self._nodes.values()))
        held("registration_waits").set_function(
            lambda: sum(n.contacts.waiting() for n in self._nodes.values()))
        held("live_records").set_function(lambda: len(self.services.registry.live()))

    def __contains__(self, channel_id: object) -> bool:
        return channel_id in self.sessions

    def __len__(self) -> int:
        return len(self.sessions)

    def get(self, call_id: str) -> CallSession | None:
        return self.sessions.get(call_id)

    async def run(self) -> None:
        """Hold the calls' TaskGroup until cancelled; then every call ends as described."""
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                await asyncio.Event().wait()
        finally:
            self._tg = None

    def start(self, node: "AsteriskNode", ev: StasisStart, *, taken_over: bool = False,
              bridged_with: str | None = None) -> bool:
        """A call entered (or is found in) ``node``'s application: its session starts now,
        reading the queue the node's dispatcher fills for its channel. False when the engine
        is stopping (the node sends the caller to the fallback)."""
        if self._tg is None:
            return False
        cid = ev.channel.id
        self._nodes[node.name] = node
        queue = node.dispatcher.register(cid)
        if bridged_with is not None:
            node.dispatcher.attach(bridged_with, queue)
        session = CallSession(node, self.config(), ev, queue, self.services,
                              taken_over=taken_over, bridged_with=bridged_with)
        self.sessions[cid] = session
        self._tasks[cid] = self._tg.create_task(self._run(node, session), name=f"call-{cid}")
        return True

    async def _run(self, node: "AsteriskNode", session: CallSession) -> None:
        metrics.CALLS_IN_PROGRESS.inc()
        try:
            await session.run()
        finally:
            metrics.CALLS_IN_PROGRESS.dec()
            cid = session.channel_id
            routed = node.dispatcher.forget(session.events)
            waits = node.contacts.forget(session.post)
            if len(routed) > 1 or waits:
                log.info("call %s ended: %d leg(s) and %d registration wait(s) released",
                         cid, len(routed) - 1, waits)
            if session.ended_as == "handed-off":
                self._homes[cid] = node.name  # its hang-up comes as an unrouted event
            # a hang-up right after a hand-off may already wait in the call's queue: the
            # session ended at StasisEnd and will not read it; nor a transfer request
            while not session.events.empty():
                ev = session.events.get_nowait()
                if isinstance(ev, ChannelDestroyed) and ev.channel_id == cid:
                    self.ended(cid)
                elif isinstance(ev, TransferRequest):
                    ev.settle(session.ended_as or "ended")
            self.sessions.pop(cid, None)
            self._tasks.pop(cid, None)

    def ended(self, channel_id: str) -> None:
        """The channel of a call handed to the dialplan is gone."""
        self._homes.pop(channel_id, None)
        self.services.registry.ended(channel_id)

    def reconcile(self, node: "AsteriskNode", present: set[str]) -> list[str]:
        """After ``node`` (re)connected: the calls this engine handed to its dialplan whose
        channel Asterisk no longer has ended while nobody was listening (their
        ChannelDestroyed was lost with the connection); mark them ended. Returns their ids."""
        gone = [info.id for info in self.services.registry.live()
                if info.id not in present and info.id not in self.sessions
                and self._homes.get(info.id, node.name) == node.name]
        for cid in gone:
            self.ended(cid)
        return gone
