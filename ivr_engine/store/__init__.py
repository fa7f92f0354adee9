"""Persistence: SQLAlchemy 2 (async) over SQLite by default, PostgreSQL when configured.

The schema is created at start-up (``create_all``); there is no Alembic migration history yet
because there has been no schema change to migrate — the first change adds it.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    DateTime,
    Integer,
    String,
    UniqueConstraint,
    delete,
    select,
    update,
)
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


class CallIntent(Base):
    """An app asked for a call plan and was sent to PSTN: its one-time token and context."""

    __tablename__ = "call_intents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app: Mapped[str] = mapped_column(String(128), index=True)
    token: Mapped[str] = mapped_column(String(16), index=True)
    caller: Mapped[str] = mapped_column(String(64), default="")
    language: Mapped[str] = mapped_column(String(16), default="")
    custom_data: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    channel_id: Mapped[str | None] = mapped_column(String(128), nullable=True)


class Device(Base):
    """A user's mobile app install and its push tokens (from POST /v1/devices or RFC 8599)."""

    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("user", "app", "platform", name="uq_device"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user: Mapped[str] = mapped_column(String(128), index=True)
    app: Mapped[str] = mapped_column(String(128))
    platform: Mapped[str] = mapped_column(String(16))  # ios | android
    push_token: Mapped[str | None] = mapped_column(String(512), nullable=True)
    voip_token: Mapped[str | None] = mapped_column(String(512), nullable=True)
    app_version: Mapped[str] = mapped_column(String(64), default="")
    os_version: Mapped[str] = mapped_column(String(64), default="")
    model: Mapped[str] = mapped_column(String(128), default="")
    source: Mapped[str] = mapped_column(String(16), default="api")  # api | rfc8599
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


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

    # ------------------------------------------------------------------ intents

    async def add_intent(self, *, app: str, token: str, caller: str, language: str,
                         custom_data: dict, now: dt.datetime, ttl_seconds: int) -> CallIntent:
        async with self._session() as s, s.begin():
            row = CallIntent(app=app, token=token, caller=caller, language=language,
                             custom_data=custom_data, created_at=now,
                             expires_at=now + dt.timedelta(seconds=ttl_seconds))
            s.add(row)
            await s.flush()
            return row

    async def active_tokens(self, app: str, now: dt.datetime) -> set[str]:
        async with self._session() as s:
            q = select(CallIntent.token).where(CallIntent.app == app,
                                               CallIntent.used_at.is_(None),
                                               CallIntent.expires_at > now)
            return set((await s.scalars(q)).all())

    async def consume_token(self, app: str, token: str, now: dt.datetime,
                            channel_id: str) -> CallIntent | None:
        """Mark the app's unexpired, unused intent with ``token`` used; None if there is none.

        The UPDATE's WHERE clause makes the token single-use even under concurrent calls.
        """
        async with self._session() as s, s.begin():
            row = (await s.scalars(select(CallIntent).where(
                CallIntent.app == app, CallIntent.token == token,
                CallIntent.used_at.is_(None), CallIntent.expires_at > now))).first()
            if row is None:
                return None
            done = await s.execute(update(CallIntent).where(
                CallIntent.id == row.id, CallIntent.used_at.is_(None)).values(
                used_at=now, channel_id=channel_id))
            if done.rowcount != 1:
                return None
            row.used_at = now
            return row

    async def consume_by_caller(self, app: str, caller: str, now: dt.datetime,
                                channel_id: str) -> CallIntent | None:
        """The newest unexpired, unused intent of ``app`` for ``caller``, marked used."""
        if not caller:
            return None
        async with self._session() as s, s.begin():
            row = (await s.scalars(select(CallIntent).where(
                CallIntent.app == app, CallIntent.caller == caller,
                CallIntent.used_at.is_(None), CallIntent.expires_at > now,
            ).order_by(CallIntent.id.desc()))).first()
            if row is None:
                return None
            done = await s.execute(update(CallIntent).where(
                CallIntent.id == row.id, CallIntent.used_at.is_(None)).values(
                used_at=now, channel_id=channel_id))
            return row if done.rowcount == 1 else None

    async def intent_for_channel(self, channel_id: str) -> CallIntent | None:
        """The intent a call's token matched (a call taken over after a crash reads its
        custom data back from it)."""
        async with self._session() as s:
            return (await s.scalars(select(CallIntent).where(
                CallIntent.channel_id == channel_id).order_by(CallIntent.id.desc()))).first()

    # ------------------------------------------------------------------ devices

    async def upsert_device(self, *, user: str, app: str, platform: str,
                            push_token: str | None = None, voip_token: str | None = None,
                            app_version: str = "", os_version: str = "", model: str = "",
                            source: str = "api") -> Device:
        """Create or update the (user, app, platform) device; tokens given replace old ones."""
        now = dt.datetime.now(dt.timezone.utc)
        async with self._session() as s, s.begin():
            row = (await s.scalars(select(Device).where(
                Device.user == user, Device.app == app, Device.platform == platform))).first()
            if row is None:
                row = Device(user=user, app=app, platform=platform)
                s.add(row)
            if push_token is not None:
                row.push_token = push_token or None
            if voip_token is not None:
                row.voip_token = voip_token or None
            for key, value in (("app_version", app_version), ("os_version", os_version),
                               ("model", model)):
                if value:
                    setattr(row, key, value)
            row.source = source
            row.updated_at = now
            await s.flush()
            return row

    async def devices_for_user(self, user: str, app: str | None = None) -> list[Device]:
        async with self._session() as s:
            q = select(Device).where(Device.user == user).order_by(Device.id)
            if app is not None:
                q = q.where(Device.app == app)
            return list((await s.scalars(q)).all())

    async def forget_token(self, token: str) -> int:
        """A provider said this token is dead (APNs 410/BadDeviceToken, FCM UNREGISTERED):
        clear it wherever it is stored; a device left with no token is deleted."""
        async with self._session() as s, s.begin():
            n = 0
            for col in (Device.push_token, Device.voip_token):
                r = await s.execute(update(Device).where(col == token).values({col.key: None}))
                n += r.rowcount or 0
            await s.execute(delete(Device).where(Device.push_token.is_(None),
                                                 Device.voip_token.is_(None)))
            return n

    async def callbacks(self, status: str | None = None) -> list[CallbackRequest]:
        async with self._session() as s:
            q = select(CallbackRequest).order_by(CallbackRequest.id)
            if status:
                q = q.where(CallbackRequest.status == status)
            return list((await s.scalars(q)).all())
