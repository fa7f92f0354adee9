"""Reminders of a recommended release, in ``release_notices`` (revision 0008): which devices
are due one, claiming them (so that two engines sweeping the same database never remind a
device twice), recording how each was answered, and the counts an admin reads.

A device is due when its notice row of the release has fewer than ``max`` reminders, none
was stopped (``reminder_stop``), it still has a push token, and its last reminder (or, before
the first, its notice) is at least ``after_seconds`` old. The claim is one ``UPDATE … WHERE``
that repeats those conditions and moves ``reminders`` and ``reminded_at`` on: a concurrent
sweep's claim no longer matches the rows this one took.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..store.models import Device
from .models import NoticeTarget
from .models import ReleaseNotice as N

UPDATED = "updated"  # reminder_stop: the device reported the release or newer
_CLAIM_PART = 500  # ids per claiming UPDATE


@dataclass(frozen=True)
class DueReminder:
    notice_id: int
    reminders: int  # sent before this one
    target: NoticeTarget


def _due(cutoff: dt.datetime, most: int) -> Any:
    return and_(N.reminders < most, N.reminder_stop.is_(None),
                or_(and_(N.reminded_at.is_(None), N.sent_at <= cutoff),
                    N.reminded_at <= cutoff))


class ReminderRepo:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def due(self, release_id: int, cutoff: dt.datetime, most: int,
                  limit: int = 10_000) -> list[DueReminder]:
        """Devices of the release due a reminder (at most ``limit``, oldest notice first)."""
        q = (select(N.id, N.reminders, Device.id, Device.user, Device.app, Device.platform,
                    Device.app_version, Device.push_token)
             .join(Device, Device.id == N.device_id)
             .where(N.release_id == release_id, Device.push_token.is_not(None),
                    _due(cutoff, most))
             .order_by(N.id).limit(limit))
        async with self._sessions() as s:
            rows = (await s.execute(q)).all()
        return [DueReminder(r[0], r[1], NoticeTarget(*r[2:])) for r in rows]

    async def claim(self, notice_ids: list[int], cutoff: dt.datetime, most: int,
                    now: dt.datetime) -> set[int]:
        """Take the reminders of ``notice_ids`` that are still due (count one more, sent
        ``now``); the ids this call took."""
        taken: set[int] = set()
        for start in range(0, len(notice_ids), _CLAIM_PART):
            part = notice_ids[start:start + _CLAIM_PART]
            async with self._sessions() as s, s.begin():
                r = await s.execute(
                    update(N).where(N.id.in_(part), _due(cutoff, most))
                    .values(reminders=N.reminders + 1, reminded_at=now).returning(N.id))
                taken.update(r.scalars().all())
        return taken

    async def record(self, rows: list[dict[str, Any]]) -> None:
        """The result of each reminder sent (``notice_id``, ``result``)."""
        if not rows:
            return
        t = N.__table__
        async with self._sessions() as s, s.begin():
            await s.execute(t.update().where(t.c.id == bindparam("nid"))
                            .values(reminder_result=bindparam("res")),
                            [{"nid": r["notice_id"], "res": r["result"]} for r in rows])

    async def stop(self, notice_ids: list[int], why: str) -> None:
        for start in range(0, len(notice_ids), _CLAIM_PART):
            async with self._sessions() as s, s.begin():
                await s.execute(update(N).where(N.id.in_(notice_ids[start:start + _CLAIM_PART]))
                                .values(reminder_stop=why))

    async def counts(self, release_id: int) -> dict[str, Any]:
        """{"reminders": pushes made, "devices": devices reminded, "last": {result: devices},
        "updated": devices that stopped getting reminders because they updated}."""
        async with self._sessions() as s:
            rows = (await s.execute(
                select(N.reminder_result, func.count(), func.sum(N.reminders))
                .where(N.release_id == release_id, N.reminders > 0)
                .group_by(N.reminder_result))).all()
            updated = (await s.execute(select(func.count()).select_from(N).where(
                N.release_id == release_id, N.reminder_stop == UPDATED))).scalar() or 0
        return {"reminders": sum(int(r[2] or 0) for r in rows),
                "devices": sum(int(r[1]) for r in rows),
                "last": {r[0]: int(r[1]) for r in rows if r[0] is not None},
                "updated": int(updated)}
