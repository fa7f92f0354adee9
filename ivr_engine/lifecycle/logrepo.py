"""App log requests and their uploads (``app_log_requests``, ``app_log_chunks``): created by
an admin, uploaded once by the device, listed and downloaded by the admin, purged after the
retention.

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

from sqlalchemy import delete, insert, or_, select, update
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

    async def _drop(self, blob: str) -> None:
        async with self._sessions() as s, s.begin():
            await s.execute(delete(C).where(C.c.blob == blob))

    async def chunk(self, blob: str, seq: int) -> bytes | None:
        """One chunk of an upload (None past its end)."""
        async with self._sessions() as s:
            data = (await s.execute(select(C.c.data).where(C.c.blob == blob, C.c.seq == seq))
                    ).scalar()
        return None if data is None else bytes(data)

    async def for_app(self, app: str, user: str | None = None,
                      limit: int = 1000) -> list[LogRequest]:
        async with self._sessions() as s:
            q = select(LogRequest).where(LogRequest.app == app)
            if user is not None:
                q = q.where(LogRequest.user == user)
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
