"""Deadlines on what a caller waits for (principle 11): a query a caller waits on ends by
``engine.database.call_deadline_seconds``, in its answer or in :class:`CallerWaitFailed`,
which the call turns into the fallback — never into silence.

The query runs as a task of the call's own TaskGroup (``spawn``) and the caller waits for it
at most the deadline. Past it the task is cancelled, but the caller does not wait for the
cancellation to finish: a driver cleaning up after a cancelled query (asyncpg rolling back on
a server that stopped answering, aiosqlite's thread still in SQLite's busy wait) can take
seconds more. The call's TaskGroup still owns the task and collects it when the call ends.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Coroutine, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from . import metrics

log = logging.getLogger("ivr_engine.calls")

T = TypeVar("T")
#: what a failing database raises (TimeoutError: the driver's own statement timeout)
DATABASE_ERRORS = (SQLAlchemyError, OSError, TimeoutError)


class CallerWaitFailed(Exception):
    """A caller's wait ran past its deadline (``reason`` "deadline") or the database failed
    ("error"); the caller goes to the fallback."""

    def __init__(self, wait: str, reason: str, detail: str):
        super().__init__(f"{wait}: {detail}")
        self.wait, self.reason = wait, reason


async def _outcome(coro: Coroutine[Any, Any, T]) -> tuple[bool, Any]:
    """The query's value or its exception, as a value: a failing query must not abort the
    call's TaskGroup (the call decides what the caller hears)."""
    try:
        return True, await coro
    except Exception as exc:  # noqa: BLE001 - handed back to caller_wait
        return False, exc


async def caller_wait(spawn: Callable[[Coroutine], asyncio.Task], seconds: float, wait: str,
                      channel: str, coro: Coroutine[Any, Any, T], *,
                      then: str = "the caller goes to the fallback") -> T:
    """``await coro`` for call ``channel``, at most ``seconds``; ``wait`` names it in the log
    and in ``ivr_caller_wait_fallbacks_total{wait, reason}``, ``then`` says what the caller
    gets instead. Raises CallerWaitFailed."""
    task = spawn(_outcome(coro))
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()  # collected by the call's TaskGroup, without the caller waiting
        reason, detail = "deadline", f"no answer from the database within {seconds:g} s"
    else:
        ok, value = task.result()
        if ok:
            return value
        if not isinstance(value, DATABASE_ERRORS):
            raise value  # a bug, not the database: the session's own rescue handles it
        reason, detail = "error", f"the database failed: {type(value).__name__}: {value}"
        detail = " ".join(detail.split())[:300]
    metrics.CALLER_WAIT_FALLBACKS.labels(wait, reason).inc()
    log.warning("call %s: %s: %s; %s", channel, wait, detail, then)
    raise CallerWaitFailed(wait, reason, detail)
