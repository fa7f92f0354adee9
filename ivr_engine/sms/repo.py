"""The spool, the do-not-contact list and the dialers' run state.

Crash safety rests on two transactions per batch: ``claim`` moves up to ``limit`` rows of a
lane from TO_PROCESS to SENDING (recording the worker and the time) and moves the ones on the
do-not-contact list to BLOCKED, in one transaction, before anything is sent; ``record``
writes each send's outcome afterwards, only on rows still SENDING. Just before a request leaves, its
row is marked attempted (``mark_attempted``: once for a batch sent at once, per message
otherwise). A worker that dies leaves rows in SENDING: ``in_flight`` finds them for the next
start; those never attempted were certainly not sent.

The claim is one ``WITH picked AS MATERIALIZED (SELECT … ORDER BY priority, position, id
LIMIT n FOR UPDATE SKIP LOCKED) UPDATE … WHERE id IN picked RETURNING``: on PostgreSQL two
workers skip each other's rows and a claim never takes more than n (the CTE runs once, whatever
the plan); SQLite has no row locks (the clause is dropped) but runs one writer at a time, so a
claim is still whole — run one worker per SQLite spool (a second waits for the file lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterable

from sqlalchemy import bindparam, delete, func, insert, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .models import (
    BLOCKED,
    FAILED,
    NONE,
    OTHER,
    SENDING,
    SENT,
    TO_PROCESS,
    DialerState,
    DncEntry,
    SpoolRow,
)

T = SpoolRow.__table__
UNPROCESSED = (NONE, TO_PROCESS, BLOCKED, FAILED, OTHER)  # what "delete a campaign" removes


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    lane: str
    campaign: str | None
    destination: str
    message: str
    segments: int
    encoding: str
    idem_key: str
    provider: str | None = None
    claimed_by: str | None = None
    attempted: bool = False  # handed to the provider (the request may have left)


def _claimed(r: Any) -> Claimed:
    return Claimed(r.id, r.lane, r.campaign, r.destination, r.message, r.segments, r.encoding,
                   r.idem_key, r.provider, r.claimed_by, r.attempted_at is not None)


_COLS = (T.c.id, T.c.lane, T.c.campaign, T.c.destination, T.c.message, T.c.segments,
         T.c.encoding, T.c.idem_key, T.c.provider, T.c.claimed_by, T.c.priority, T.c.position,
         T.c.attempted_at)


class SmsRepo:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], dialect: str = "sqlite"):
        self._sessions = sessions
        # SQLite: one writer at a time. Batches in flight together take turns here instead
        # of meeting at the file lock (where the loser sleeps in the busy handler)
        self._writer = asyncio.Lock() if dialect == "sqlite" else contextlib.nullcontext()

    @property
    def writer(self) -> Any:
        """The SQLite writers' turn (shared with the inbound messages' repository)."""
        return self._writer

    # ----------------------------------------------------------------- spool in

    async def enqueue(self, rows: list[dict[str, Any]]) -> None:
        """Insert spool rows (dicts of SpoolRow columns)."""
        if not rows:
            return
        async with self._writer, self._sessions() as s, s.begin():
            await s.execute(insert(T), rows)

    async def enqueue_one(self, row: dict[str, Any]) -> int:
        async with self._writer, self._sessions() as s, s.begin():
            return (await s.execute(insert(T).values(**row).returning(T.c.id))).scalar_one()

    async def import_spool(self, batches: AsyncIterator[list[dict[str, Any]]]) -> int:
        """An upload's rows, checked already: one transaction, one ``executemany`` per
        batch, all or nothing. How many rows."""
        n = 0
        async with self._writer, self._sessions() as s, s.begin():
            async for rows in batches:
                if rows:
                    await s.execute(insert(T), rows)
                    n += len(rows)
        return n

    async def import_dnc(self, batches: AsyncIterator[list[tuple[str, str]]]) -> int:
        """A do-not-contact upload's pairs, in one transaction; how many were new."""
        n = 0
        async with self._writer, self._sessions() as s, s.begin():
            async for pairs in batches:
                n += await self._dnc_add(s, list(dict.fromkeys(pairs)))
        return n

    # ----------------------------------------------------------------- claim, record

    async def claim(self, lane: str, worker: str, now: dt.datetime, limit: int,
                    dnc: bool, provider: str | None = None,
                    attempt: bool = False) -> tuple[list[Claimed], int]:
        """Up to ``limit`` rows of ``lane`` moved to SENDING, by priority then position; with
        ``dnc``, those on the do-not-contact list (number + campaign, or global) go to
        BLOCKED instead. Rows without a provider get ``provider`` (the one a restart asks
        about them). With ``attempt`` they are marked attempted at once (a batch sent the
        moment it is claimed). The rows to send and how many were blocked."""
        # a MATERIALIZED CTE runs once; ``id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)``
        # may be rerun by PostgreSQL once per candidate row (a nested-loop semi-join), each
        # run skipping the rows the statement itself just locked: the LIMIT bounds nothing
        pick = (select(T.c.id).where(T.c.state == TO_PROCESS, T.c.lane == lane)
                .order_by(T.c.priority, T.c.position, T.c.id).limit(limit)
                .with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED"))
        stmt = (update(T).where(T.c.id.in_(select(pick.c.id)), T.c.state == TO_PROCESS)
                .values(state=SENDING, claimed_by=worker, claimed_at=now,
                        attempted_at=now if attempt else None,
                        provider=func.coalesce(T.c.provider, provider))
                .returning(*_COLS))
        async with self._sessions() as s:  # an idle lane costs a read, not a write lock
            if (await s.execute(select(T.c.id).where(T.c.state == TO_PROCESS, T.c.lane == lane)
                                .limit(1))).first() is None:
                return [], 0
        async with self._writer, self._sessions() as s, s.begin():
            rows = sorted((await s.execute(stmt)).all(),
                          key=lambda r: (r.priority, r.position, r.id))
            if not rows or not dnc:
                return [_claimed(r) for r in rows], 0
            listed = set((await s.execute(
                select(DncEntry.number, DncEntry.campaign)
                .where(DncEntry.number.in_({r.destination for r in rows})))).all())
            blocked = [r.id for r in rows if (r.destination, "") in listed
                       or (r.destination, r.campaign or "") in listed]
            if blocked:
                await s.execute(update(T).where(T.c.id.in_(blocked)).values(
                    state=BLOCKED, done_at=now, provider_answer="on the do-not-contact list"))
            gone = set(blocked)
            return [_claimed(r) for r in rows if r.id not in gone], len(blocked)

    async def record(self, outcomes: list[dict[str, Any]]) -> None:
        """Each dict: ``rid`` and the new ``state``, ``provider``, ``channel``,
        ``message_id``, ``answer``, ``done_at``; written only on rows still SENDING."""
        if not outcomes:
            return
        stmt = (update(T).where(T.c.id == bindparam("rid"), T.c.state == SENDING)
                .values(state=bindparam("new_state"), provider=bindparam("prov"),
                        channel=bindparam("chan"), provider_message_id=bindparam("message_id"),
                        provider_answer=bindparam("answer"), done_at=bindparam("done")))
        params = [{"rid": o["rid"], "new_state": o["state"], "prov": o.get("provider"),
                   "chan": o.get("channel"), "message_id": o.get("message_id"),
                   "answer": o.get("answer"), "done": o.get("done_at")} for o in outcomes]
        async with self._writer, self._sessions() as s, s.begin():
            await s.execute(stmt, params)

    async def mark_attempted(self, ids: list[int], now: dt.datetime) -> None:
        """The rows are about to be handed to the provider: from now on a crash leaves
        their outcome unknown (before, they were certainly not sent)."""
        if not ids:
            return
        async with self._writer, self._sessions() as s, s.begin():
            await s.execute(update(T).where(T.c.id.in_(ids)).values(attempted_at=now))

    async def touch(self, ids: list[int], now: dt.datetime) -> None:
        """Renew the claim on rows still waiting in a spaced batch (their lease)."""
        async with self._writer, self._sessions() as s, s.begin():
            await s.execute(update(T).where(T.c.id.in_(ids), T.c.state == SENDING)
                            .values(claimed_at=now))

    async def in_flight(self, *, worker: str | None = None, not_worker: str | None = None,
                        claimed_before: dt.datetime | None = None) -> list[Claimed]:
        """Rows left in SENDING: by ``worker`` (this worker before it restarted), or claimed
        before ``claimed_before`` by anyone but ``not_worker`` (a worker that died and never
        came back)."""
        q = select(*_COLS).where(T.c.state == SENDING)
        if worker is not None:
            q = q.where(T.c.claimed_by == worker)
        if not_worker is not None:
            q = q.where(T.c.claimed_by != not_worker)
        if claimed_before is not None:
            q = q.where(T.c.claimed_at < claimed_before)
        async with self._sessions() as s:
            return [_claimed(r) for r in (await s.execute(q.order_by(T.c.id))).all()]

    # ----------------------------------------------------------------- reports

    async def get(self, row_id: int) -> SpoolRow | None:
        async with self._sessions() as s:
            return await s.get(SpoolRow, row_id)

    async def search(self, f: Any, *, after: int = 0, limit: int = 100) -> list[SpoolRow]:
        """Spool rows matching ``f`` (``search.Filters``) with an id above ``after``, oldest
        first by id, at most ``limit``."""
        q = select(SpoolRow).where(T.c.created_at >= f.start, T.c.created_at < f.end,
                                   T.c.id > after)
        if f.campaign is not None:
            q = q.where(or_(T.c.campaign.is_(None), T.c.campaign == "") if f.campaign == ""
                        else T.c.campaign == f.campaign)
        if f.destination is not None:
            q = q.where(T.c.destination == f.destination)
        if f.states:
            q = q.where(T.c.state.in_(f.states))
        if f.provider is not None:
            q = q.where(T.c.provider == f.provider)
        async with self._sessions() as s:
            return list((await s.execute(q.order_by(T.c.id).limit(limit))).scalars())

    async def delivery_report(self, provider: str, status: str, *, message_id: str | None = None,
                              key: str | None = None) -> int:
        """A provider's delivery report: the row's delivery status, found by the provider's
        message id or by our idempotency key (Vonage's client-ref, Infobip's messageId)."""
        where = [T.c.provider == provider]
        if key:
            where.append(T.c.idem_key == key)
        elif message_id:
            where.append(T.c.provider_message_id == message_id)
        else:
            return 0
        async with self._sessions() as s, s.begin():
            res = await s.execute(update(T).where(*where).values(delivery_status=status[:64]))
            return res.rowcount or 0

    async def delete_unprocessed(self, campaign: str) -> int:
        async with self._sessions() as s, s.begin():
            res = await s.execute(delete(T).where(T.c.campaign == campaign,
                                                  T.c.state.in_(UNPROCESSED)))
            return res.rowcount or 0

    async def counts(self, now: dt.datetime, window: float = 60.0) -> dict[str, dict[str, Any]]:
        """Per campaign (single sends without one under ""): rows per state, and messages
        and segments sent per second over the last ``window`` seconds."""
        since = now - dt.timedelta(seconds=window)
        out: dict[str, dict[str, Any]] = {}
        async with self._sessions() as s:
            for camp, state, n in (await s.execute(
                    select(T.c.campaign, T.c.state, func.count())
                    .group_by(T.c.campaign, T.c.state))).all():
                out.setdefault(camp or "", {}).setdefault("states", {})[state] = n
            for camp, n, segs in (await s.execute(
                    select(T.c.campaign, func.count(), func.sum(T.c.segments))
                    .where(T.c.state == SENT, T.c.done_at >= since)
                    .group_by(T.c.campaign))).all():
                out.setdefault(camp or "", {})["rate"] = (n / window, (segs or 0) / window)
        return out

    # ----------------------------------------------------------------- do-not-contact

    async def dnc_add(self, pairs: Iterable[tuple[str, str]]) -> int:
        """Add (number, campaign) pairs ("" campaign: every campaign); ones already listed
        are skipped. How many were new."""
        pairs = list(dict.fromkeys(pairs))
        async with self._writer, self._sessions() as s, s.begin():
            return await self._dnc_add(s, pairs)

    async def _dnc_add(self, s: AsyncSession, pairs: list[tuple[str, str]]) -> int:
        return await add_dnc(s, pairs)

    async def dnc_count(self) -> int:
        async with self._sessions() as s:
            return (await s.execute(select(func.count()).select_from(DncEntry))).scalar_one()

    # ----------------------------------------------------------------- dialers

    async def dialer_running(self, name: str) -> bool:
        async with self._sessions() as s:
            row = await s.get(DialerState, name)
            return True if row is None else row.running

    async def set_dialer(self, name: str, running: bool, now: dt.datetime) -> None:
        async with self._sessions() as s, s.begin():
            row = await s.get(DialerState, name)
            if row is None:
                s.add(DialerState(name=name, running=running, updated_at=now))
            else:
                row.running, row.updated_at = running, now



async def add_dnc(s: AsyncSession, pairs: list[tuple[str, str]], *, reason: str | None = None,
                  now: dt.datetime | None = None) -> int:
    """Add (number, campaign) pairs in ``s``'s transaction, skipping the ones listed already
    (their reason stays) — also when another transaction lists one meanwhile (``ON CONFLICT
    DO NOTHING``: two opt-outs of one number at once); how many were new."""
    if not pairs:
        return 0
    known = set((await s.execute(select(DncEntry.number, DncEntry.campaign).where(
        tuple_(DncEntry.number, DncEntry.campaign).in_(pairs)))).all())
    new = [{"number": n, "campaign": c, "reason": reason, "added_at": now}
           for n, c in pairs if (n, c) not in known]
    if new:
        dialect = postgresql if s.bind.dialect.name == "postgresql" else sqlite
        await s.execute(dialect.insert(DncEntry.__table__).on_conflict_do_nothing(
            index_elements=["number", "campaign"]), new)
    return len(new)
