"""App log requests and their uploads (``app_log_requests``): created by an admin, uploaded
once by the device, listed and downloaded by the admin, purged after the retention."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import defer

from .models import LogRequest


class LogRequestRepo:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def add(self, rows: list[LogRequest]) -> None:
        async with self._sessions() as s, s.begin():
            s.add_all(rows)

    async def get(self, request_id: str, *, with_data: bool = False) -> LogRequest | None:
        if "\x00" in request_id or len(request_id) > 32:
            return None
        async with self._sessions() as s:
            q = select(LogRequest).where(LogRequest.id == request_id)
            if not with_data:
                q = q.options(defer(LogRequest.data))
            return (await s.scalars(q)).first()

    async def store_upload(self, request_id: str, *, data: bytes, content_type: str,
                           now: dt.datetime) -> bool:
        """Keep the upload; False when the request was uploaded already or has expired (a
        concurrent second upload loses: one UPDATE ... WHERE uploaded_at IS NULL)."""
        async with self._sessions() as s, s.begin():
            r = await s.execute(update(LogRequest).where(
                LogRequest.id == request_id, LogRequest.uploaded_at.is_(None),
                LogRequest.expires_at > now)
                .values(uploaded_at=now, content_type=content_type, size=len(data),
                        data=data))
            return bool(r.rowcount)

    async def for_app(self, app: str, user: str | None = None,
                      limit: int = 1000) -> list[LogRequest]:
        async with self._sessions() as s:
            q = (select(LogRequest).options(defer(LogRequest.data))
                 .where(LogRequest.app == app))
            if user is not None:
                q = q.where(LogRequest.user == user)
            q = q.order_by(LogRequest.created_at.desc(), LogRequest.id).limit(limit)
            return list((await s.scalars(q)).all())

    async def purge(self, before: dt.datetime) -> int:
        """Delete uploads made before ``before`` and requests that expired before it."""
        async with self._sessions() as s, s.begin():
            r = await s.execute(delete(LogRequest).where(or_(
                LogRequest.uploaded_at < before,
                (LogRequest.uploaded_at.is_(None)) & (LogRequest.expires_at < before))))
            return r.rowcount or 0
