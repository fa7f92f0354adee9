"""Every live call, whichever Asterisk node it is on: one task per call, all in one TaskGroup.

Cancelling :meth:`Calls.run` (engine shutdown) cancels every call: a caller still in a menu
is sent to the dialplan fallback, one talking to a user stays bridged (``session.py``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Callable

from .. import metrics
from ..ari import ChannelDestroyed, StasisStart
from ..config import Config
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
            node.dispatcher.unregister(session.channel_id)
            # a hang-up right after a hand-off may already wait in the call's queue: the
            # session ended at StasisEnd and will not read it
            while not session.events.empty():
                ev = session.events.get_nowait()
                if isinstance(ev, ChannelDestroyed) and ev.channel_id == session.channel_id:
                    self.ended(session.channel_id)
            self.sessions.pop(session.channel_id, None)
            self._tasks.pop(session.channel_id, None)

    def ended(self, channel_id: str) -> None:
        """The channel of a call handed to the dialplan is gone."""
        self.services.registry.ended(channel_id)
