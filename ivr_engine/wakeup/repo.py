"""Users' app installs (devices) and their push tokens, from ``POST /v1/devices`` or the
RFC 8599 parameters of a REGISTER; a token a provider says is dead is forgotten."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..store.models import Device


class DeviceRepo:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def upsert(self, *, user: str, app: str, platform: str,
                     push_token: str | None = None, voip_token: str | None = None,
                     app_version: str = "", os_version: str = "", model: str = "",
                     source: str = "api") -> Device:
        """Create or update the (user, app, platform) device; tokens given replace old ones."""
        now = dt.datetime.now(dt.timezone.utc)
        async with self._sessions() as s, s.begin():
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

    async def for_user(self, user: str, app: str | None = None) -> list[Device]:
        if "\x00" in user + (app or ""):  # PostgreSQL text cannot hold NUL: nobody's
            return []
        async with self._sessions() as s:
            q = select(Device).where(Device.user == user).order_by(Device.id)
            if app is not None:
                q = q.where(Device.app == app)
            return list((await s.scalars(q)).all())

    async def forget_token(self, token: str) -> int:
        """A provider said this token is dead (APNs 410/BadDeviceToken, FCM UNREGISTERED):
        clear it wherever it is stored; a device left with no token is deleted."""
        async with self._sessions() as s, s.begin():
            n = 0
            for col in (Device.push_token, Device.voip_token):
                r = await s.execute(update(Device).where(col == token).values({col.key: None}))
                n += r.rowcount or 0
            await s.execute(delete(Device).where(Device.push_token.is_(None),
                                                 Device.voip_token.is_(None)))
            return n
