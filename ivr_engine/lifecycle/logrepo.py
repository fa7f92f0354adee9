"""App log requests and their uploads (``app_log_requests``, ``app_log_chunks``): created by
an admin, uploaded once by the device, listed and downloaded by the admin, purged after the
retention. Logs the app sends unasked (``origin`` user) are a row created with its upload,
within the user's budget (``store_own``).

An upload is stored as 1 MiB chunks under a random ``blob`` id, each chunk in its own short
transaction (no upload is ever whole in memory, no transaction lasts longer than one chunk's
insert); one last ``UPDATE … WHERE uploaded_at IS NULL`` makes the request point at them: a
concurrent second upload, or one after the expiry, loses there and its chunks are deleted.
Chunks nobody points at (an engine stopped mid-way) are purged after ``ORPHAN_SECONDS``.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import AsyncIterator

from sqlalchemy import delete, func, insert, literal, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .models import LogChunk, LogRequest

CHUNK_BYTES = 1024 * 1024
ORPHAN_SECONDS = 3600.0  # chunks of an upload that never got its request: gone after this
C = LogChunk.__table__


class LogRequestRepo:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def add(self, rows: list[LogRequest]) -> None:
        async with self._sessions() as s, s.begin():
            s.add_all(rows)

    async def get(self, request_id: str) -> LogRequest | None:
        if "\x00" in request_id or len(request_id) > 32:
            return None
        async with self._sessions() as s:
            return (await s.scalars(select(LogRequest).where(LogRequest.id == request_id))
                    ).first()

    async def store_upload(self, request_id: str, chunks: AsyncIterator[bytes], *, size: int,
                           content_type: str, now: dt.datetime) -> bool:
        """Keep the upload (``chunks``: at most CHUNK_BYTES each); False when the request
        was uploaded already or has expired (a concurrent second upload loses)."""
        blob, seq, stored = secrets.token_hex(16), 0, False
        try:
            async for data in chunks:
                async with self._sessions() as s, s.begin():
                    await s.execute(insert(C).values(
                        blob=blob, seq=seq, data=data,
                        created_at=dt.datetime.now(dt.timezone.utc)))  # orphaned from when
                seq += 1
            async with self._sessions() as s, s.begin():
                r = await s.execute(update(LogRequest).where(
                    LogRequest.id == request_id, LogRequest.uploaded_at.is_(None),
                    LogRequest.expires_at > now)
                    .values(uploaded_at=now, content_type=content_type, size=size, blob=blob))
                stored = bool(r.rowcount)
        finally:
            if not stored:
                await self._drop(blob)
        return stored

    async def store_own(self, row: LogRequest, chunks: AsyncIterator[bytes], *,
                        since: dt.datetime, most: int) -> bool:
        """Keep logs the app sent unasked: the chunks, then ``row`` (its upload, ``origin``
        user) pointing at them, unless the user already sent ``most`` since ``since`` (then
        False and nothing is kept). The count and the insert are one ``INSERT … SELECT …
        WHERE (count) < most`` (atomic on SQLite); on PostgreSQL one user's uploads also take
        a transaction-scoped advisory lock, so they are counted in turn."""
        blob, seq, stored = secrets.token_hex(16), 0, False
        try:
            async for data in chunks:
                async with self._sessions() as s, s.begin():
                    await s.execute(insert(C).values(
                        blob=blob, seq=seq, data=data,
                        created_at=dt.datetime.now(dt.timezone.utc)))
                seq += 1
            row.blob = blob
            t = LogRequest.__table__
            values = {c.key: getattr(row, c.key) for c in t.columns}
            within = select(func.count()).select_from(t).where(
                t.c.app == row.app, t.c.user == row.user, t.c.origin == "user",
                t.c.created_at > since).scalar_subquery() < most
            async with self._sessions() as s, s.begin():
                if s.get_bind().dialect.name == "postgresql":
                    key = f"logs\x1f{row.app}\x1f{row.user}"
                    await s.execute(text("SELECT pg_advisory_xact_lock(hashtextextended("
                                         ":key, 0))"), {"key": key})
                # one statement counts and inserts (SQLite: atomic; PostgreSQL: in turn)
                r = await s.execute(insert(t).from_select(list(values), select(
                    *(literal(v, t.c[k].type).label(k) for k, v in values.items())
                ).where(within)))
                stored = r.rowcount == 1
        finally:
            if not stored:
                await self._drop(blob)
        return stored

    @staticmethod
    async def _own_since(s: AsyncSession, app: str, user: str, since: dt.datetime) -> int:
        return (await s.execute(select(func.count()).select_from(LogRequest).where(
            LogRequest.app == app, LogRequest.user == user, LogRequest.origin == "user",
            LogRequest.created_at > since))).scalar() or 0

    async def own_since(self, app: str, user: str,
                        since: dt.datetime) -> tuple[int, dt.datetime | None]:
        """(logs the user sent unasked since ``since``, when the oldest of them was sent)."""
        async with self._sessions() as s:
            n = await self._own_since(s, app, user, since)
            oldest = (await s.execute(select(func.min(LogRequest.created_at)).where(
                LogRequest.app == app, LogRequest.user == user, LogRequest.origin == "user",
                LogRequest.created_at > since))).scalar()
        if isinstance(oldest, dt.datetime) and oldest.tzinfo is None:  # SQLite's min()
            oldest = oldest.replace(tzinfo=dt.timezone.utc)
        return n, oldest

    async def _drop(self, blob: str) -> None:
        async with self._sessions() as s, s.begin():
            await s.execute(delete(C).where(C.c.blob == blob))

    async def chunk(self, blob: str, seq: int) -> bytes | None:
        """One chunk of an upload (None past its end)."""
        async with self._sessions() as s:
            data = (await s.execute(select(C.c.data).where(C.c.blob == blob, C.c.seq == seq))
                    ).scalar()
        return None if data is None else bytes(data)

    async def for_app(self, app: str, user: str | None = None, limit: int = 1000,
                      origin: str | None = None) -> list[LogRequest]:
        async with self._sessions() as s:
            q = select(LogRequest).where(LogRequest.app == app)
            if user is not None:
                q = q.where(LogRequest.user == user)
            if origin is not None:
                q = q.where(LogRequest.origin == origin)
            q = q.order_by(LogRequest.created_at.desc(), LogRequest.id).limit(limit)
            return list((await s.scalars(q)).all())

    async def purge(self, before: dt.datetime, now: dt.datetime | None = None) -> int:
        """Delete uploads made before ``before`` and requests that expired before it (with
        their chunks), and chunks no request points at older than ORPHAN_SECONDS; how many
        requests."""
        now = now or dt.datetime.now(dt.timezone.utc)
        gone = or_(LogRequest.uploaded_at < before,
                   (LogRequest.uploaded_at.is_(None)) & (LogRequest.expires_at < before))
        async with self._sessions() as s, s.begin():
            await s.execute(delete(C).where(C.c.blob.in_(
                select(LogRequest.blob).where(gone, LogRequest.blob.is_not(None)))))
            r = await s.execute(delete(LogRequest).where(gone))
            await s.execute(delete(C).where(
                C.c.created_at < now - dt.timedelta(seconds=ORPHAN_SECONDS),
                C.c.blob.not_in(select(LogRequest.blob).where(LogRequest.blob.is_not(None)))))
            return r.rowcount or 0
