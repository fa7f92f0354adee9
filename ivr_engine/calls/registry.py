"""What the engine knows about calls: context for agents and transfer rules.

Live calls are kept in memory; every change is also written to the call records (``repo``,
``calls/repo.py``), so a call's context outlives the call and the engine. The call path never
waits for the database: ``add``/``update``/``ended`` change the in-memory ``CallInfo`` and
mark it changed; ``run`` (a task in the engine's TaskGroup) writes the changes in batches,
then forgets the calls that have ended. ``lookup`` answers live calls from memory and reads
ended ones back from the records; ``expire`` deletes records past the retention period.
``close`` drains every pending change before the store closes, retrying a locked database
for up to ``SHUTDOWN_SECONDS``.

Without a repository (tools, some tests) ended calls stay in memory, the last ``max_calls``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterable, Protocol

log = logging.getLogger("ivr_engine.calls")

#: how long the engine's exit waits for the call records to be written (a locked database)
SHUTDOWN_SECONDS = 15.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class CallInfo:
    id: str
    channel_name: str
    caller: str
    entry: str
    via: str
    app: str | None
    root_menu: str  # the structure the call entered: transfers to queues stay inside it
    language: str
    custom_data: dict[str, str] = field(default_factory=dict)
    path: list[str] = field(default_factory=list)
    destination: str | None = None
    state: str = "ivr"  # ivr | handed-off | bridged | ended
    transfers: list[str] = field(default_factory=list)
    started_at: dt.datetime = field(default_factory=_now)
    updated_at: dt.datetime = field(default_factory=_now)
    user: str | None = None  # the app's user the call carries (a session's plan, an offline code)
    verified: bool = False  # True: proven by the customer's backend; never by the app's key
    node: str | None = None  # the Asterisk node the call is on (its name)
    engine: str | None = None  # the engine driving it (engine.name): API calls go there

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["started_at"] = self.started_at.isoformat()
        d["updated_at"] = self.updated_at.isoformat()
        return d

    def snapshot(self) -> "CallInfo":
        return replace(self, custom_data=dict(self.custom_data), path=list(self.path),
                       transfers=list(self.transfers))


class CallRecords(Protocol):
    """What the registry needs of ``calls.repo.CallRecordRepo``."""

    async def save(self, infos: Iterable[CallInfo]) -> None: ...
    async def mark_ended(self, call_ids: Iterable[str], now: dt.datetime) -> None: ...
    async def get(self, call_id: str) -> CallInfo | None: ...
    async def purge(self, before: dt.datetime) -> int: ...


class CallRegistry:
    def __init__(self, repo: CallRecords | None = None, *, max_calls: int = 10_000,
                 batch_seconds: float = 0.2):
        self.repo = repo
        self.max_calls = max_calls
        self.batch_seconds = batch_seconds  # at most one write per this, whatever the load
        self._calls: OrderedDict[str, CallInfo] = OrderedDict()  # live + ended not yet written
        self._dirty: dict[str, None] = {}  # changed since the last write (an ordered set)
        self._ended_elsewhere: set[str] = set()  # known only from their records
        self._changed = asyncio.Event()
        self._writing = asyncio.Lock()

    # ------------------------------------------------------------------ the call path

    def add(self, info: CallInfo) -> CallInfo:
        self._calls[info.id] = info
        self._calls.move_to_end(info.id)
        self._touch(info.id)
        self._trim()
        return info

    def get(self, call_id: str) -> CallInfo | None:
        """A call in memory: live, or ended and not yet written."""
        return self._calls.get(call_id)

    def update(self, call_id: str, **values: Any) -> None:
        info = self._calls.get(call_id)
        if info is None:
            return
        for k, v in values.items():
            setattr(info, k, v)
        info.updated_at = _now()
        self._touch(call_id)

    def ended(self, call_id: str) -> None:
        """The channel of a call handed to the dialplan is gone (hung up, transferred away)."""
        info = self._calls.get(call_id)
        if info is None:
            if self.repo is not None:  # began under an earlier engine: fix its record
                self._ended_elsewhere.add(call_id)
                self._changed.set()
            return
        if info.state != "ended":
            info.state = "ended"
            info.updated_at = _now()
            self._touch(call_id)

    def live(self) -> list[CallInfo]:
        """The calls in progress, oldest first."""
        return [i for i in self._calls.values() if i.state != "ended"]

    def __len__(self) -> int:
        return len(self._calls)

    async def lookup(self, call_id: str) -> CallInfo | None:
        """A call from memory, else from its record (ended, or begun before a restart)."""
        info = self._calls.get(call_id)
        if info is None and self.repo is not None:
            info = await self.repo.get(call_id)
        return info

    def _touch(self, call_id: str) -> None:
        if self.repo is not None:
            self._dirty[call_id] = None
            self._changed.set()

    def _trim(self) -> None:
        """Never more than ``max_calls`` in memory; only ended calls are dropped (with a
        repository, ones whose record could not be written: the database is down)."""
        excess = len(self._calls) - self.max_calls
        if excess <= 0:
            return
        ended = (cid for cid, i in self._calls.items() if i.state == "ended")
        for cid in list(itertools.islice(ended, excess)):
            del self._calls[cid]
            if cid in self._dirty:
                del self._dirty[cid]
                log.warning("call %s: its record was never written (database unavailable)",
                            cid)

    # ------------------------------------------------------------------ the records

    async def flush(self) -> None:
        """Write every change made so far; then forget the ended calls that were written."""
        if self.repo is None:
            return
        async with self._writing:
            ids, self._dirty = list(self._dirty), {}
            gone, self._ended_elsewhere = self._ended_elsewhere, set()
            written = [self._calls[cid].snapshot() for cid in ids if cid in self._calls]
            try:
                await self.repo.save(written)
                if gone:
                    await self.repo.mark_ended(gone, _now())
            except BaseException:  # failed or cancelled: kept for the next write
                self._dirty = {**dict.fromkeys(ids), **self._dirty}
                self._ended_elsewhere |= gone
                raise
            for rec in written:
                info = self._calls.get(rec.id)
                if rec.state == "ended" and rec.id not in self._dirty and info is not None \
                        and info.state == "ended":
                    del self._calls[rec.id]

    async def close(self, budget_seconds: float = SHUTDOWN_SECONDS,
                    retry_seconds: float = 0.25) -> None:
        """Write every change left when the engine stops, before the store closes. A failed
        write (a locked database, a lost connection) is tried again until it succeeds or
        ``budget_seconds`` have passed (an attempt under way may overrun it by the
        database's own busy timeout); only then is the loss logged, never raised."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget_seconds
        attempts = 0
        while True:
            attempts += 1
            try:
                await self.flush()
            except Exception as exc:  # noqa: BLE001 - the engine is stopping anyway
                left = deadline - loop.time()
                if left <= 0:
                    log.error("call records: %d changes not written at shutdown after %d "
                              "attempts in %.0f s: %s", len(self._dirty) + len(
                                  self._ended_elsewhere), attempts, budget_seconds, exc)
                    return
                log.warning("call records: writing %d changes at shutdown failed (%s); "
                            "retrying for %.1f s more", len(self._dirty), exc, left)
                await asyncio.sleep(min(retry_seconds, left))
                continue
            if (self._dirty or self._ended_elsewhere) and loop.time() < deadline:
                continue  # changed while it was writing
            if attempts > 1:
                log.info("call records: written at shutdown after %d attempts", attempts)
            return

    async def run(self, retry_seconds: float = 1.0, retry_max_seconds: float = 30.0) -> None:
        """Write changes as they come, at most one batch per ``batch_seconds``; a database
        error is logged and retried with backoff, never raised (it would stop the engine)."""
        if self.repo is None:
            return
        delay = retry_seconds
        while True:
            await self._changed.wait()
            self._changed.clear()
            try:
                await self.flush()
                delay = retry_seconds
                await asyncio.sleep(self.batch_seconds)
            except Exception as exc:  # noqa: BLE001 - see the docstring
                log.error("call records not written (%d calls pending), retrying in %.0f s: %s",
                          len(self._dirty), delay, exc)
                self._changed.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, retry_max_seconds)

    async def expire(self, retention_days: Callable[[], float],
                     every_seconds: float = 3600) -> None:
        """Delete the records not updated for ``retention_days()`` days: at start, then every
        ``every_seconds`` (a task in the engine's TaskGroup)."""
        if self.repo is None:
            return
        while True:
            days = retention_days()
            try:
                n = await self.repo.purge(_now() - dt.timedelta(days=days))
                if n:
                    log.info("call records: %d older than %g days deleted", n, days)
            except Exception as exc:  # noqa: BLE001 - retried at the next round
                log.error("call records: purge failed: %s", exc)
            await asyncio.sleep(every_seconds)
