"""Callback requests in the database. Every change of state is one compare-and-set: an
``UPDATE … WHERE id = … AND status = <the state the caller saw> [AND owner] RETURNING``, so
of two engines (or an engine and an API client) that race for one request exactly one wins
and the other sees None. The placer's batch claim is ``WITH picked AS MATERIALIZED (SELECT …
LIMIT n FOR UPDATE SKIP LOCKED) UPDATE … WHERE id IN picked RETURNING``: on PostgreSQL two
engines skip each other's rows; SQLite (one writer at a time) drops the clause and stays
whole.

The engine's claims carry a lease: ``updated_at``, renewed while the placement lasts. A
placement whose engine stopped renewing it is taken over (:meth:`take_over`, a
compare-and-set on the ``updated_at`` it saw) by the next engine that looks.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..store.models import CallbackRequest as CB
from .policy import API_OWNER, CLAIMED, DIALING, ENGINE_OWNER, EXPIRED, FINAL, REQUESTED, \
    Next


class CallbackRepo:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def _one(self, stmt: Any) -> CB | None:
        async with self._sessions() as s, s.begin():
            return (await s.scalars(stmt.returning(CB))).first()

    async def _many(self, stmt: Any) -> list[CB]:
        async with self._sessions() as s, s.begin():
            return sorted((await s.scalars(stmt.returning(CB))).all(), key=lambda r: r.id)

    # ---------------------------------------------------------------- the IVR, readers

    async def add(self, *, caller: str, queue: str, language: str, entry: str, path: str,
                  channel_id: str, app: str | None = None, user: str | None = None,
                  verified: bool = False, now: dt.datetime | None = None) -> CB:
        now = now or dt.datetime.now(dt.timezone.utc)
        async with self._sessions() as s, s.begin():
            row = CB(created_at=now, updated_at=now, caller=caller, queue=queue,
                     language=language, entry=entry, path=path, channel_id=channel_id,
                     app=app, user=user, verified=verified, state=REQUESTED, attempts=0,
                     placements=0)
            s.add(row)
            await s.flush()
            return row

    async def get(self, callback_id: int) -> CB | None:
        async with self._sessions() as s:
            return await s.get(CB, callback_id)

    async def find(self, state: str | None = None, queue: str | None = None, *,
                   after: int = 0, limit: int = 100) -> list[CB]:
        """Oldest first, ids above ``after``, at most ``limit``."""
        q = select(CB).where(CB.id > after).order_by(CB.id).limit(limit)
        if state:
            q = q.where(CB.state == state)
        if queue:
            q = q.where(CB.queue == queue)
        async with self._sessions() as s:
            return list((await s.scalars(q)).all())

    # ---------------------------------------------------------------- API clients

    async def claim(self, callback_id: int, agent: str, token: str,
                    now: dt.datetime) -> CB | None:
        """requested → claimed by ``api:<agent>`` with ``token``; None when not requested."""
        return await self._one(
            update(CB).where(CB.id == callback_id, CB.state == REQUESTED)
            .values(state=CLAIMED, claimed_by=API_OWNER + agent, claim_token=token,
                    claimed_at=now, updated_at=now))

    async def complete(self, callback_id: int, token: str, state: str, outcome: str,
                       note: str | None, now: dt.datetime) -> CB | None:
        """An API claim (its token) → ``state`` (completed or failed); None otherwise."""
        return await self._one(
            update(CB).where(CB.id == callback_id, CB.state == CLAIMED,
                             CB.claimed_by.startswith(API_OWNER), CB.claim_token == token)
            .values(state=state, last_outcome=outcome, note=note, updated_at=now,
                    completed_at=now, claim_token=None, attempts=CB.attempts + 1))

    # ---------------------------------------------------------------- the placer

    async def claim_due(self, queue: str, owner: str, now: dt.datetime,
                        limit: int) -> list[CB]:
        """Up to ``limit`` requests of ``queue`` due now, oldest first: requested → claimed
        by ``owner`` (``engine:<worker>``)."""
        if limit <= 0:
            return []
        due = and_(CB.state == REQUESTED, CB.queue == queue,
                   or_(CB.not_before.is_(None), CB.not_before <= now))
        async with self._sessions() as s:  # an idle queue costs a read, not a write lock
            if (await s.execute(select(CB.id).where(due).limit(1))).first() is None:
                return []
        # a MATERIALIZED CTE, not ``id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)``:
        # PostgreSQL may run that subquery as the inner side of a nested-loop semi-join,
        # once per candidate row, each run skipping the rows the statement itself just
        # locked: the LIMIT then bounds nothing (3 rows claimed for a limit of 1)
        pick = (select(CB.id).where(due).order_by(CB.id).limit(limit)
                .with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED"))
        return await self._many(
            update(CB).where(CB.id.in_(select(pick.c.id)), CB.state == REQUESTED)
            .values(state=CLAIMED, claimed_by=owner, claimed_at=now, updated_at=now,
                    claim_token=None))

    async def placing(self, callback_id: int, owner: str, channel: str,
                      now: dt.datetime) -> CB | None:
        """claimed by ``owner`` → dialing on the Local channel ``channel``."""
        return await self._one(
            update(CB).where(CB.id == callback_id, CB.state == CLAIMED, CB.claimed_by == owner)
            .values(state=DIALING, dial_channel=channel, placements=CB.placements + 1,
                    updated_at=now))

    async def settle(self, callback_id: int, owner: str, nxt: Next, outcome: str,
                     now: dt.datetime) -> CB | None:
        """An engine placement (claimed or dialing, by ``owner``) ended with ``outcome``:
        → ``nxt``. None when another owner has it now."""
        values: dict[str, Any] = {"state": nxt.state, "attempts": nxt.attempts,
                                  "last_outcome": outcome, "updated_at": now}
        if nxt.state in FINAL:
            values["completed_at"] = now
        else:
            values.update(not_before=nxt.not_before, claimed_by=None, claimed_at=None)
        return await self._one(
            update(CB).where(CB.id == callback_id, CB.state.in_((CLAIMED, DIALING)),
                             CB.claimed_by == owner).values(**values))

    async def touch(self, ids: Iterable[int], owner: str, now: dt.datetime) -> int:
        """Renew the lease of ``owner``'s placements; how many it still holds."""
        ids = list(ids)
        if not ids:
            return 0
        async with self._sessions() as s, s.begin():
            done = await s.execute(
                update(CB).where(CB.id.in_(ids), CB.claimed_by == owner,
                                 CB.state.in_((CLAIMED, DIALING))).values(updated_at=now))
            return done.rowcount or 0

    async def stale(self, before: dt.datetime, limit: int = 100) -> list[CB]:
        """Engine placements whose lease was last renewed before ``before``."""
        q = (select(CB).where(CB.state.in_((CLAIMED, DIALING)),
                              CB.claimed_by.startswith(ENGINE_OWNER), CB.updated_at < before)
             .order_by(CB.id).limit(limit))
        async with self._sessions() as s:
            return list((await s.scalars(q)).all())

    async def take_over(self, row: CB, owner: str, now: dt.datetime) -> CB | None:
        """A stale placement as :meth:`stale` read it → owned by ``owner``; None when its
        lease was renewed or another engine took it meanwhile."""
        return await self._one(
            update(CB).where(CB.id == row.id, CB.state == row.state,
                             CB.claimed_by == row.claimed_by, CB.updated_at == row.updated_at)
            .values(claimed_by=owner, updated_at=now))

    async def expire(self, queue: str, created_before: dt.datetime,
                     now: dt.datetime) -> list[CB]:
        """Requests of ``queue`` made before ``created_before`` and still waiting: expired."""
        return await self._many(
            update(CB).where(CB.state == REQUESTED, CB.queue == queue,
                             CB.created_at < created_before)
            .values(state=EXPIRED, updated_at=now, completed_at=now))

    async def counts(self) -> dict[str, int]:
        """How many requests are in each state."""
        async with self._sessions() as s:
            rows = (await s.execute(select(CB.state, func.count()).group_by(CB.state))).all()
        return {state: n for state, n in rows}
