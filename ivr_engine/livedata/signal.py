"""What wakes a queue's event streams: an :class:`asyncio.Event` per queue, set (and dropped)
at that queue's next change, and one set (and replaced) at any change. Shared by the
per-node queue monitor (``monitor.py``) and the view over every node (``shared.py``)."""

from __future__ import annotations

import asyncio


class ChangeSignal:
    def __init__(self) -> None:
        # per queue: made when a stream waits, set and dropped at that queue's next change
        self._changed: dict[str, asyncio.Event] = {}
        self._any = asyncio.Event()

    def touch(self, queue: str | None = None) -> None:
        """Wake whoever waits on :meth:`changed` for ``queue``; None: every queue."""
        if queue is None:
            woken, self._changed = list(self._changed.values()), {}
        else:
            one = self._changed.pop(queue, None)
            woken = [one] if one is not None else []
        for event in (*woken, self._any):
            event.set()
        self._any = asyncio.Event()

    def changed(self, queue: str | None = None) -> asyncio.Event:
        """Set at the next change of ``queue`` (None: of any queue). A change of another
        queue does not set it: a stream is woken by its own queue only."""
        if queue is None:
            return self._any
        event = self._changed.get(queue)
        if event is None:
            event = self._changed[queue] = asyncio.Event()
        return event
