"""Route ARI events to one asyncio.Queue per channel, so a slow call never stalls another.

Use an instance as the handler of :meth:`AriClient.run`::

    dispatcher = ChannelDispatcher(on_stasis_start=engine.new_call)
    await ari.run(dispatcher)

``on_stasis_start`` is called for a StasisStart of a channel that is not registered yet; it
is expected to ``dispatcher.register(channel_id)`` (and spawn the call's task reading that
queue).  If it did, the StasisStart itself is then queued as the first event of the call.

Each event reaches one queue once: the dispatcher never sees an event twice because the
application it serves holds no ``endpoint:`` subscription (Asterisk would repeat the channel
events of that endpoint's channels); registrations have an application of their own.

After a reconnect the engine takes back the calls still in its application; between the
websocket coming up and those calls being registered, :meth:`hold` keeps the events of
unknown channels and :meth:`release` delivers them, so not a key is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .events import Event, StasisStart

__all__ = ["ChannelDispatcher"]

log = logging.getLogger("ivr_engine.ari")

#: events of not-yet-registered channels kept while calls are being taken over
MAX_HELD = 10_000


class ChannelDispatcher:
    def __init__(
        self,
        on_stasis_start: Callable[[StasisStart], None],
        *,
        on_other: Callable[[Event], None] | None = None,
    ) -> None:
        self._on_stasis_start = on_stasis_start
        self._on_other = on_other
        self._queues: dict[str, asyncio.Queue[Event]] = {}
        self._held: list[Event] | None = None

    def register(self, channel_id: str) -> asyncio.Queue[Event]:
        """Queue for ``channel_id`` (the existing one if already registered)."""
        queue = self._queues.get(channel_id)
        if queue is None:
            queue = self._queues[channel_id] = asyncio.Queue()
        return queue

    def attach(self, channel_id: str, queue: asyncio.Queue[Event]) -> None:
        """Route ``channel_id``'s events to an existing queue (a call's outbound legs go to
        the call's own queue). Attach before creating the channel so no event is missed."""
        self._queues[channel_id] = queue

    def unregister(self, channel_id: str) -> None:
        self._queues.pop(channel_id, None)

    def forget(self, queue: asyncio.Queue[Event]) -> list[str]:
        """Stop routing every channel whose events go to ``queue`` (a call that ended, with
        the legs attached to it); returns their ids."""
        gone = [cid for cid, q in self._queues.items() if q is queue]
        for cid in gone:
            del self._queues[cid]
        return gone

    def hold(self) -> None:
        """Keep the events of unregistered channels (at most ``MAX_HELD``) until release()."""
        if self._held is None:
            self._held = []

    def release(self) -> None:
        """Deliver the held events in order: to the channels registered since, else as
        unknown (``on_other``)."""
        held, self._held = self._held or [], None
        for event in held:
            self(event)

    def __contains__(self, channel_id: object) -> bool:
        return channel_id in self._queues

    def __len__(self) -> int:
        return len(self._queues)

    def __call__(self, event: Event) -> None:
        channel_id = event.channel_id
        queue = self._queues.get(channel_id) if channel_id is not None else None
        if queue is None and isinstance(event, StasisStart):
            try:
                self._on_stasis_start(event)
            except Exception:  # noqa: BLE001 - never break the websocket loop
                log.exception("on_stasis_start failed for channel %s", channel_id)
            queue = self._queues.get(channel_id)  # type: ignore[arg-type]
            if queue is None:
                log.debug("StasisStart for %s not registered by on_stasis_start", channel_id)
                return
        if queue is not None:
            queue.put_nowait(event)
        elif self._held is not None and channel_id is not None:
            if len(self._held) < MAX_HELD:
                self._held.append(event)
            else:
                log.warning("dropping %s for %s: too many events held", event.type, channel_id)
        elif self._on_other is not None:
            self._on_other(event)
        else:
            log.debug("dropping %s for unregistered channel %s", event.type, channel_id)
