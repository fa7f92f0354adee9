"""The lifecycle's repository: sessions (one open per user and app), releases, and the
delivery result of each release notice. Devices (and the version each last reported) are the
wake-up feature's ``devices`` rows; the notice fan-out reads them here, in partitions.

One open session per user and app holds even when two logins race: ``active_user`` is unique
while a session is open (NULL once it ends). A login ends the open one and inserts the new one
in one transaction; on PostgreSQL the logins of one user take a transaction-scoped advisory
lock first (so they run in turn), SQLite runs writers in turn anyway; should a concurrent
login still insert first, the unique constraint refuses the insert and the login is tried
again (and then ends that one).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, AsyncIterator

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..store.models import Device
from .logrepo import LogRequestRepo
from .models import AppRelease, AppSession, AssertionJti, NoticeTarget, ReleaseNotice
from .reminderrepo import ReminderRepo
from .rules import SENT, active_key

_LOGIN_ATTEMPTS = 5


class HandoverNeeded(Exception):
    """The login would end ``session``, the user's open session on another device."""

    def __init__(self, session: AppSession):
        super().__init__(f"session {session.id} is open on another device")
        self.session = session


class LifecycleRepo:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions
        self.logs = LogRequestRepo(sessions)  # app log requests and their uploads
        self.reminders = ReminderRepo(sessions)  # reminders of recommended releases

    # ------------------------------------------------------------------ sessions

    async def login(self, *, token_hash: str, app: str, user: str, now: dt.datetime,
                    ask: bool = False, **fields: Any) -> tuple[AppSession, list[AppSession]]:
        """Open a session for ``user`` of ``app``; the sessions it ended (``replaced``).
        ``ask``: raise :class:`HandoverNeeded` (nothing changed) instead of ending an open
        session of another device (``fields["device_id"]``)."""
        key = active_key(app, user)
        ended: list[AppSession] = []
        for attempt in range(_LOGIN_ATTEMPTS):
            try:
                async with self._sessions() as s, s.begin():
                    if s.get_bind().dialect.name == "postgresql":  # logins of a user in turn
                        await s.execute(text("SELECT pg_advisory_xact_lock("
                                             "hashtextextended(:key, 0))"), {"key": key})
                    if ask:
                        other = (await s.scalars(select(AppSession).where(
                            AppSession.active_user == key,
                            AppSession.device_id != fields.get("device_id")))).first()
                        if other is not None:
                            s.expunge(other)  # readable after the rollback
                            raise HandoverNeeded(other)
                    old = (await s.scalars(
                        update(AppSession).where(AppSession.active_user == key)
                        .values(active_user=None, ended_at=now, end_reason="replaced")
                        .returning(AppSession))).all()
                    row = AppSession(token_hash=token_hash, active_user=key, app=app,
                                     user=user, started_at=now, last_seen_at=now, **fields)
                    s.add(row)
                    await s.flush()
                ended.extend(old)
                return row, ended
            except IntegrityError:
                if attempt == _LOGIN_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def jti_used(self, app: str, jti: str) -> bool:
        async with self._sessions() as s:
            return await s.get(AssertionJti, (app, jti)) is not None

    async def use_jti(self, app: str, jti: str, expires_at: dt.datetime) -> bool:
        """Record an accepted assertion's ``jti``; False when it was recorded already (the
        primary key refuses a second one, also when two logins race)."""
        try:
            async with self._sessions() as s, s.begin():
                s.add(AssertionJti(app=app, jti=jti, expires_at=expires_at))
            return True
        except IntegrityError:
            return False

    async def purge_jtis(self, now: dt.datetime) -> int:
        """Forget the jtis of assertions that have expired (they can no longer be used)."""
        async with self._sessions() as s, s.begin():
            r = await s.execute(delete(AssertionJti).where(AssertionJti.expires_at <= now))
            return int(r.rowcount or 0)

    async def fallback_of(self, session_id: int) -> AppSession | None:
        """A session as the offline codes read it (its secret, counter, whether open)."""
        if not 0 < session_id < 2**31:
            return None
        async with self._sessions() as s:
            return await s.get(AppSession, session_id)

    async def advance_fallback(self, session_id: int, last: int, counter: int) -> bool:
        """Move an open session's offline-code counter from ``last`` to ``counter`` (a
        compare-and-set: False when another call moved it first, or the session ended)."""
        async with self._sessions() as s, s.begin():
            r = await s.execute(update(AppSession).where(
                AppSession.id == session_id, AppSession.fallback_counter == last,
                AppSession.active_user.is_not(None)).values(fallback_counter=counter))
            return bool(r.rowcount)

    async def by_token(self, token_hash: str) -> AppSession | None:
        async with self._sessions() as s:
            return (await s.scalars(select(AppSession).where(
                AppSession.token_hash == token_hash))).first()

    async def end(self, session_id: int, reason: str, at: dt.datetime) -> bool:
        """End an open session; False when it had already ended."""
        async with self._sessions() as s, s.begin():
            r = await s.execute(update(AppSession).where(
                AppSession.id == session_id, AppSession.active_user.is_not(None))
                .values(active_user=None, ended_at=at, end_reason=reason))
            return bool(r.rowcount)

    async def touch(self, session_id: int, now: dt.datetime) -> None:
        async with self._sessions() as s, s.begin():
            await s.execute(update(AppSession).where(AppSession.id == session_id)
                            .values(last_seen_at=now))

    async def open_sessions(self, app: str | None = None,
                            user: str | None = None) -> list[AppSession]:
        async with self._sessions() as s:
            q = select(AppSession).where(AppSession.active_user.is_not(None))
            if app is not None:
                q = q.where(AppSession.app == app)
            if user is not None:
                q = q.where(AppSession.user == user)
            return list((await s.scalars(q.order_by(AppSession.user, AppSession.id))).all())

    async def report(self, *, start: dt.datetime, end: dt.datetime, app: str | None,
                     user: str | None, limit: int) -> list[AppSession]:
        """Sessions that began in [start, end), oldest first, at most ``limit``."""
        async with self._sessions() as s:
            q = select(AppSession).where(AppSession.started_at >= start,
                                         AppSession.started_at < end)
            if app is not None:
                q = q.where(AppSession.app == app)
            if user is not None:
                q = q.where(AppSession.user == user)
            q = q.order_by(AppSession.started_at, AppSession.id).limit(limit)
            return list((await s.scalars(q)).all())

    # ------------------------------------------------------------------ releases

    async def publish(self, *, app: str, platform: str, version: str, kind: str,
                      store_url: str, messages: dict[str, str], grace_seconds: int,
                      now: dt.datetime, remind_after_seconds: int | None = None,
                      remind_max: int | None = None) -> tuple[AppRelease, bool]:
        """Publish (or re-publish) a release; (the row, True when it is new). A re-publication
        may change the kind, URL, messages, grace and reminder policy; ``published_at`` stays
        the first."""
        async with self._sessions() as s, s.begin():
            row = (await s.scalars(select(AppRelease).where(
                AppRelease.app == app, AppRelease.platform == platform,
                AppRelease.version == version))).first()
            created = row is None
            if row is None:
                row = AppRelease(app=app, platform=platform, version=version,
                                 published_at=now)
                s.add(row)
            else:
                row.republished_at = now
            row.kind, row.store_url, row.messages = kind, store_url, messages
            row.grace_seconds = grace_seconds
            row.remind_after_seconds, row.remind_max = remind_after_seconds, remind_max
            await s.flush()
            return row, created

    async def releases(self, app: str | None = None) -> list[AppRelease]:
        async with self._sessions() as s:
            q = select(AppRelease).order_by(AppRelease.id)
            if app is not None:
                q = q.where(AppRelease.app == app)
            return list((await s.scalars(q)).all())

    async def release(self, release_id: int) -> AppRelease | None:
        async with self._sessions() as s:
            return await s.get(AppRelease, release_id)

    # ------------------------------------------------------------------ notices

    async def notice_candidates(self, app: str, platform: str,
                                partition: int = 1000) -> AsyncIterator[list[NoticeTarget]]:
        """The app's devices on ``platform`` that have a push token, ``partition`` at a time
        (the rows are streamed: a 10 000-device app never builds one big result on the
        event loop)."""
        q = (select(Device.id, Device.user, Device.app, Device.platform, Device.app_version,
                    Device.push_token)
             .where(Device.app == app, Device.platform == platform,
                    Device.push_token.is_not(None))
             .order_by(Device.id).execution_options(yield_per=partition))
        async with self._sessions() as s:
            result = await s.stream(q)
            async for rows in result.partitions(partition):
                yield [NoticeTarget(*row) for row in rows]

    async def logged_out_users(self, app: str) -> set[str]:
        """Users who have had sessions in ``app`` but have none open now."""
        async with self._sessions() as s:
            q = (select(AppSession.user).where(AppSession.app == app)
                 .group_by(AppSession.user).having(func.count(AppSession.active_user) == 0))
            return set((await s.scalars(q)).all())

    async def sent_devices(self, release_id: int) -> set[int]:
        async with self._sessions() as s:
            return set((await s.scalars(select(ReleaseNotice.device_id).where(
                ReleaseNotice.release_id == release_id, ReleaseNotice.result == SENT))).all())

    async def record_notices(self, release_id: int, rows: list[dict[str, Any]]) -> None:
        """Record a batch of notices (replacing an earlier failed attempt for a device)."""
        if not rows:
            return
        async with self._sessions() as s, s.begin():
            await s.execute(delete(ReleaseNotice).where(
                ReleaseNotice.release_id == release_id,
                ReleaseNotice.device_id.in_([r["device_id"] for r in rows])))
            await s.execute(insert(ReleaseNotice),
                            [{"release_id": release_id, **r} for r in rows])

    async def notice_counts(self, release_id: int) -> dict[str, int]:
        async with self._sessions() as s:
            rows = await s.execute(select(ReleaseNotice.result, func.count())
                                   .where(ReleaseNotice.release_id == release_id)
                                   .group_by(ReleaseNotice.result))
            return {result: n for result, n in rows.all()}

    async def notices(self, release_id: int, limit: int = 1000) -> list[ReleaseNotice]:
        async with self._sessions() as s:
            return list((await s.scalars(select(ReleaseNotice).where(
                ReleaseNotice.release_id == release_id).order_by(ReleaseNotice.device_id)
                .limit(limit))).all())
