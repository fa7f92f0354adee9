"""Users' app installs (devices) and their push tokens, from ``POST /v1/devices`` or the
RFC 8599 parameters of a REGISTER; a token a provider says is dead is forgotten.

A registration is one ``INSERT … ON CONFLICT (user, app, platform) DO UPDATE`` (SQLite and
PostgreSQL both have it): two registrations of one device at once both succeed, the last
one's values win, and there is never a second row."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..store.models import Device

_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
_KEY = (Device.user, Device.app, Device.platform)  # uq_device


class DeviceRepo:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    async def upsert(self, *, user: str, app: str, platform: str,
                     push_token: str | None = None, voip_token: str | None = None,
                     app_version: str = "", os_version: str = "", model: str = "",
                     source: str = "api") -> Device:
        """Create or update the (user, app, platform) device; tokens given replace old ones
        ("" clears one), versions and model given (not empty) replace old ones."""
        now = dt.datetime.now(dt.timezone.utc)
        changes: dict[str, Any] = {"source": source, "updated_at": now}
        if push_token is not None:
            changes["push_token"] = push_token or None
        if voip_token is not None:
            changes["voip_token"] = voip_token or None
        for key, value in (("app_version", app_version), ("os_version", os_version),
                           ("model", model)):
            if value:
                changes[key] = value
        new = {"user": user, "app": app, "platform": platform, "push_token": None,
               "voip_token": None, "app_version": "", "os_version": "", "model": "", **changes}
        async with self._sessions() as s, s.begin():
            insert = _INSERTS[(await s.connection()).dialect.name]
            stmt = (insert(Device).values(**new)
                    .on_conflict_do_update(index_elements=list(_KEY), set_=changes)
                    .returning(Device))
            return (await s.scalars(stmt, execution_options={"populate_existing": True})).one()

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
        clear it wherever it is stored; a device it leaves with no token is deleted (only
        those: a device registered without any token stays). How many tokens were cleared."""
        if "\x00" in token:
            return 0
        async with self._sessions() as s, s.begin():
            ids = list((await s.scalars(select(Device.id).where(
                or_(Device.push_token == token, Device.voip_token == token)))).all())
            if not ids:
                return 0
            n = 0
            for col in (Device.push_token, Device.voip_token):
                r = await s.execute(update(Device).where(Device.id.in_(ids), col == token)
                                    .values({col.key: None}))
                n += r.rowcount or 0
            await s.execute(delete(Device).where(Device.id.in_(ids), Device.push_token.is_(None),
                                                 Device.voip_token.is_(None)))
            return n
