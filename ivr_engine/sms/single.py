"""A single SMS from the API (SendSMS, app links): queued in the single lane, the lane woken,
and optionally waited for until it leaves (``wait_seconds``).

The wait does not poll the database when the dialers run in this process
(``sms.in_engine``): the single lane tells ``Outcomes`` which rows it recorded and the waiter
reads its row once then (and once more at the deadline if nothing came). With the dialer in
another process (``ivr-engine sms dialer``) nothing can tell this process: the waiter reads
its row every ``SLOW_POLL_SECONDS`` until the outcome or the deadline.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from typing import Any, Iterable, Iterator

from .models import SENDING, TO_PROCESS

SLOW_POLL_SECONDS = 0.5  # the dialer runs in another process


class Outcomes:
    """The single lane's recorded outcomes, for the waiters in this process."""

    def __init__(self) -> None:
        self._waiting: dict[int, asyncio.Event] = {}
        # rows recorded lately: a waiter that starts watching just after (its enqueue still
        # returning) is not left waiting for its deadline
        self._recent: collections.deque[int] = collections.deque(maxlen=256)

    @contextlib.contextmanager
    def watch(self, row_id: int) -> Iterator[asyncio.Event]:
        event = self._waiting[row_id] = asyncio.Event()
        if row_id in self._recent:
            event.set()
        try:
            yield event
        finally:
            self._waiting.pop(row_id, None)

    def recorded(self, row_ids: Iterable[int], *, everyone: bool = False) -> None:
        """The lane wrote these rows' outcomes (or put them back in the queue); with
        ``everyone`` (rows blocked by the do-not-contact list, whose ids the claim does not
        return) every waiter looks at its row."""
        if everyone:
            for event in self._waiting.values():
                event.set()
            return
        for rid in row_ids:
            self._recent.append(rid)
            event = self._waiting.get(rid)
            if event is not None:
                event.set()


def _pending(row: Any) -> bool:
    return row.state in (TO_PROCESS, SENDING)


async def send_single(repo: Any, service: Any, row: Any,
                      wait_seconds: float) -> tuple[Any, bool]:
    """Queue ``row`` (``repo``: the SmsRepo; ``service``: the in-engine SmsService, woken at
    once, or None); return its spool row after at most ``wait_seconds`` and whether it
    reached an outcome (sent, failed, blocked, ...) by then."""
    rid = await repo.enqueue_one(row)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    if service is None:  # the dialer is another process: read the row now and then
        got = await repo.get(rid)
        while _pending(got) and (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(SLOW_POLL_SECONDS, left))
            got = await repo.get(rid)
        return got, not _pending(got)
    with service.outcomes.watch(rid) as recorded:
        service.wake_single.set()
        while True:
            left = deadline - loop.time()
            if left > 0:
                try:
                    await asyncio.wait_for(recorded.wait(), left)
                except TimeoutError:
                    pass
            recorded.clear()
            got = await repo.get(rid)
            if not _pending(got) or deadline <= loop.time():
                return got, not _pending(got)
