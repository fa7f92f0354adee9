"""The apps' call intents: a call plan's one-time token and the context it carries.

A token value is held by at most one unused intent of an app: the partial unique index
``uq_intent_active_token`` (revision 0007) refuses a second, so two plans made at the same
moment cannot get the same token — the loser draws another value and tries again. An
expired, unused intent gives its value back when a new plan draws it.

A token is single use even when two calls present it at the same moment: consuming is one
``UPDATE … WHERE id = (the newest matching intent) AND used_at IS NULL … RETURNING``, so of
two concurrent consumers exactly one gets the row — SQLite serialises the writers, and
PostgreSQL re-checks ``used_at IS NULL`` on the row the first one updated and skips it.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Callable

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..store.models import CallIntent

log = logging.getLogger("ivr_engine.apps")
DRAWS = 16  # values drawn before giving up (the caller keeps the table at most half full)


class TokenSpaceFull(RuntimeError):
    """No free token value was found in ``DRAWS`` draws."""


class IntentRepo:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def add(self, *, app: str, draw: Callable[[], str], caller: str, language: str,
                  custom_data: dict, now: dt.datetime, ttl_seconds: int,
                  target: str | None = None, user: str | None = None) -> CallIntent:
        """A new intent with a token value no unused intent of ``app`` holds: ``draw()``
        gives a candidate; a value taken meanwhile (the unique index) is drawn again."""
        for _ in range(DRAWS):
            token = draw()
            try:
                async with self._sessions() as s, s.begin():
                    await s.execute(  # an expired intent gives its value back
                        update(CallIntent)
                        .where(CallIntent.app == app, CallIntent.token == token,
                               CallIntent.used_at.is_(None), CallIntent.expires_at <= now)
                        .values(used_at=CallIntent.expires_at, channel_id="expired"))
                    row = CallIntent(app=app, token=token, caller=caller, language=language,
                                     custom_data=custom_data, created_at=now, target=target,
                                     expires_at=now + dt.timedelta(seconds=ttl_seconds),
                                     user=user, verified=user is not None)
                    s.add(row)
                    await s.flush()
                    return row
            except IntegrityError:
                log.debug("app %s: token value taken by a concurrent plan; drawing again", app)
        raise TokenSpaceFull(f"no free token value for app {app!r} in {DRAWS} draws")

    async def active_count(self, app: str, now: dt.datetime) -> int:
        """How many of the app's tokens are unused and unexpired."""
        async with self._sessions() as s:
            q = select(func.count()).select_from(CallIntent).where(
                CallIntent.app == app, CallIntent.used_at.is_(None),
                CallIntent.expires_at > now)
            return int((await s.scalar(q)) or 0)

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
