"""The apps' call intents: a PSTN call plan's one-time token and the context it carries.

A token is single use even when two calls present it at the same moment: consuming is one
``UPDATE … WHERE id = (the newest matching intent) AND used_at IS NULL … RETURNING``, so of
two concurrent consumers exactly one gets the row — SQLite serialises the writers, and
PostgreSQL re-checks ``used_at IS NULL`` on the row the first one updated and skips it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..store.models import CallIntent


class IntentRepo:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def add(self, *, app: str, token: str, caller: str, language: str,
                  custom_data: dict, now: dt.datetime, ttl_seconds: int,
                  target: str | None = None) -> CallIntent:
        async with self._sessions() as s, s.begin():
            row = CallIntent(app=app, token=token, caller=caller, language=language,
                             custom_data=custom_data, created_at=now, target=target,
                             expires_at=now + dt.timedelta(seconds=ttl_seconds))
            s.add(row)
            await s.flush()
            return row

    async def active_tokens(self, app: str, now: dt.datetime) -> set[str]:
        """The app's tokens still unused and unexpired (a new one must differ from them)."""
        async with self._sessions() as s:
            q = select(CallIntent.token).where(CallIntent.app == app,
                                               CallIntent.used_at.is_(None),
                                               CallIntent.expires_at > now)
            return set((await s.scalars(q)).all())

    async def consume_token(self, app: str, token: str, now: dt.datetime,
                            channel_id: str) -> CallIntent | None:
        """Mark the app's unexpired, unused intent with ``token`` used by ``channel_id``;
        None if there is none (or another call took it first)."""
        return await self._consume(now, channel_id, CallIntent.app == app,
                                   CallIntent.token == token)

    async def consume_by_caller(self, app: str, caller: str, now: dt.datetime,
                                channel_id: str) -> CallIntent | None:
        """The newest unexpired, unused intent of ``app`` for ``caller``, marked used."""
        if not caller:
            return None
        return await self._consume(now, channel_id, CallIntent.app == app,
                                   CallIntent.caller == caller)

    async def _consume(self, now: dt.datetime, channel_id: str,
                       *match: Any) -> CallIntent | None:
        newest = (select(CallIntent.id)
                  .where(*match, CallIntent.used_at.is_(None), CallIntent.expires_at > now)
                  .order_by(CallIntent.id.desc()).limit(1).scalar_subquery())
        stmt = (update(CallIntent)
                .where(CallIntent.id == newest, CallIntent.used_at.is_(None))
                .values(used_at=now, channel_id=channel_id)
                .returning(CallIntent))
        async with self._sessions() as s, s.begin():
            return (await s.scalars(stmt)).first()

    async def for_channel(self, channel_id: str) -> CallIntent | None:
        """The intent a call's token matched (a call taken over after a crash reads its
        custom data back from it)."""
        async with self._sessions() as s:
            return (await s.scalars(select(CallIntent).where(
                CallIntent.channel_id == channel_id).order_by(CallIntent.id.desc()))).first()
