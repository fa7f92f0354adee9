"""The database's users: one row per user (``models.UserRow``), read by name on the call path
(a primary-key lookup), by mobile endpoint for RFC 8599 bindings, by pages for the API.

Writes are single statements or one transaction: ``put`` is one ``INSERT … ON CONFLICT (name)
DO UPDATE`` (both backends), ``import_all`` one transaction for a whole file (all or nothing).
A mobile endpoint already another user's is refused by the unique index: ``EndpointTaken``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import Any, AsyncIterator, Iterable

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .models import UserRow
from .records import UserRecord, from_row

log = logging.getLogger("ivr_engine.users")
T = UserRow.__table__
_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
_CHANGING = ("ringing_device", "mobile_endpoint", "uc_endpoint", "app", "no_answer", "wakeup",
             "updated_at")
CHUNK = 500  # names or endpoints per IN (...) list


class EndpointTaken(Exception):
    """A mobile endpoint is already another database user's (the unique index said so)."""


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i:i + CHUNK]


def _printable_key(value: str) -> bool:
    return "\x00" not in value  # PostgreSQL text cannot hold NUL: nobody's


class UserRepo:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], dialect: str = "sqlite"):
        self._sessions = sessions
        self._dialect = dialect
        # SQLite: one writer at a time; an import and single writes take turns here
        self._writer = asyncio.Lock() if dialect == "sqlite" else contextlib.nullcontext()

    # ----------------------------------------------------------------- reads

    async def get(self, name: str) -> UserRecord | None:
        """The user named ``name`` (the call path's lookup: one primary-key read)."""
        if not _printable_key(name):
            return None
        async with self._sessions() as s:
            row = (await s.execute(select(T).where(T.c.name == name))).first()
        return from_row(row) if row is not None else None

    async def by_mobile_endpoint(self, endpoint: str) -> UserRecord | None:
        if not _printable_key(endpoint):
            return None
        async with self._sessions() as s:
            row = (await s.execute(select(T).where(T.c.mobile_endpoint == endpoint))).first()
        return from_row(row) if row is not None else None

    async def page(self, after: str | None, limit: int) -> list[UserRecord]:
        """Users by name, those after ``after``, at most ``limit``."""
        q = select(T).order_by(T.c.name).limit(limit)
        if after is not None:
            q = q.where(T.c.name > after)
        async with self._sessions() as s:
            return [from_row(r) for r in (await s.execute(q)).all()]

    async def count(self) -> int:
        async with self._sessions() as s:
            return int((await s.execute(select(func.count()).select_from(T))).scalar_one())

    async def existing(self, names: Iterable[str]) -> set[str]:
        """Which of ``names`` are database users."""
        found: set[str] = set()
        async with self._sessions() as s:
            for chunk in _chunks([n for n in names if _printable_key(n)]):
                found.update((await s.scalars(select(T.c.name).where(
                    T.c.name.in_(chunk)))).all())
        return found

    async def endpoint_owners(self, endpoints: Iterable[str]) -> dict[str, str]:
        """The database users holding these mobile endpoints: endpoint → user."""
        out: dict[str, str] = {}
        async with self._sessions() as s:
            for chunk in _chunks([e for e in endpoints if _printable_key(e)]):
                for ep, name in (await s.execute(select(T.c.mobile_endpoint, T.c.name).where(
                        T.c.mobile_endpoint.in_(chunk)))).all():
                    out[ep] = name
        return out

    # ----------------------------------------------------------------- writes

    def _upsert(self, rows: list[dict[str, Any]]) -> Any:
        insert = _INSERTS[self._dialect](T)
        return insert.on_conflict_do_update(
            index_elements=[T.c.name], set_={k: insert.excluded[k] for k in _CHANGING})

    async def put(self, rec: UserRecord, now: dt.datetime) -> bool:
        """Create or replace ``rec``; True when it was created. EndpointTaken when its mobile
        endpoint is another user's."""
        row = {**rec.columns(), "created_at": now, "updated_at": now}
        try:
            async with self._writer, self._sessions() as s, s.begin():
                existed = (await s.execute(select(T.c.name).where(T.c.name == rec.name)
                                           .with_for_update())).first() is not None
                await s.execute(self._upsert([row]), [row])
        except IntegrityError:
            raise EndpointTaken(rec.mobile_endpoint) from None
        return not existed

    async def set_device(self, name: str, device: str, now: dt.datetime) -> bool:
        """Change only the ringing device (the user's own switch); False: no such user."""
        async with self._writer, self._sessions() as s, s.begin():
            r = await s.execute(update(T).where(T.c.name == name)
                                .values(ringing_device=device, updated_at=now))
            return (r.rowcount or 0) > 0

    async def delete(self, name: str) -> bool:
        if not _printable_key(name):
            return False
        async with self._writer, self._sessions() as s, s.begin():
            r = await s.execute(delete(T).where(T.c.name == name))
            return (r.rowcount or 0) > 0

    async def import_all(self, names: Iterable[str],
                         batches: AsyncIterator[list[UserRecord]], now: dt.datetime) -> int:
        """A checked file's users, created or replaced, in ONE transaction (all or nothing);
        ``names`` are every user of the file. Their mobile endpoints are released first, so
        users of the file may trade endpoints among themselves; an endpoint a user outside
        the file holds raises EndpointTaken (nothing imported). How many users."""
        n = 0
        try:
            async with self._writer, self._sessions() as s, s.begin():
                for chunk in _chunks(list(names)):
                    await s.execute(update(T).where(T.c.name.in_(chunk),
                                                    T.c.mobile_endpoint.is_not(None))
                                    .values(mobile_endpoint=None))
                async for batch in batches:
                    if not batch:
                        continue
                    rows = [{**r.columns(), "created_at": now, "updated_at": now}
                            for r in batch]
                    await s.execute(self._upsert(rows), rows)
                    n += len(rows)
        except IntegrityError:
            raise EndpointTaken(None) from None
        await self._analyze()
        return n

    async def _analyze(self) -> None:
        """PostgreSQL: fresh statistics after a bulk change. Without them the planner takes
        an ``IN`` list of 500 names for most of the table and scans it whole: the next
        import's checks went from 0.4 to 14 s at 10 000 users (bench/users_scale.py), until
        autovacuum got to the table."""
        if self._dialect != "postgresql":
            return
        try:
            async with self._sessions() as s, s.begin():
                await s.execute(text("ANALYZE users"))
        except SQLAlchemyError as exc:  # the import is committed: only later ones are slower
            log.warning("ANALYZE users after an import failed: %s", type(exc).__name__)
