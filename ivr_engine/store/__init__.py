"""Persistence: SQLAlchemy 2 (async) over SQLite by default, PostgreSQL when configured.

The schema is created at start-up (``create_all``); there is no Alembic migration history yet
because there has been no schema change to migrate — the first change adds it.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Integer, String, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class CallbackRequest(Base):
    """A caller asked to be called back (IVR destination ``callback:<queue>``)."""

    __tablename__ = "callback_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    caller: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(128))
    language: Mapped[str] = mapped_column(String(16))
    entry: Mapped[str] = mapped_column(String(128))
    path: Mapped[str] = mapped_column(String(512))
    channel_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="pending")


def async_url(url: str) -> str:
    """``sqlite:///x.db`` → ``sqlite+aiosqlite:///x.db``; ``postgresql://`` → asyncpg."""
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://"):]
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


class Store:
    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self._session = async_sessionmaker(engine, expire_on_commit=False)

    @classmethod
    async def open(cls, url: str) -> "Store":
        engine = create_async_engine(async_url(url))
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        return cls(engine)

    async def close(self) -> None:
        await self.engine.dispose()

    async def add_callback(self, *, caller: str, queue: str, language: str, entry: str,
                           path: str, channel_id: str) -> int:
        async with self._session() as s, s.begin():
            row = CallbackRequest(created_at=dt.datetime.now(dt.timezone.utc), caller=caller,
                                  queue=queue, language=language, entry=entry, path=path,
                                  channel_id=channel_id, status="pending")
            s.add(row)
            await s.flush()
            return row.id

    async def callbacks(self, status: str | None = None) -> list[CallbackRequest]:
        async with self._session() as s:
            q = select(CallbackRequest).order_by(CallbackRequest.id)
            if status:
                q = q.where(CallbackRequest.status == status)
            return list((await s.scalars(q)).all())
