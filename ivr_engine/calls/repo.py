"""What calls leave in the database: call records — the context behind
``GET /v1/calls/<id>`` (``registry.CallInfo``), written as the call goes so it outlives the
call and the engine, deleted after the retention period."""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from sqlalchemy import delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..store.models import CallRecord
from .registry import CallInfo

_RECORD_FIELDS = ("id", "channel_name", "caller", "entry", "via", "app", "root_menu",
                  "language", "custom_data", "path", "destination", "state", "transfers",
                  "started_at", "updated_at", "user", "verified", "node", "engine")
_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def _row(info: CallInfo) -> dict[str, Any]:
    return {"id": info.id, "channel_name": info.channel_name, "caller": info.caller,
            "entry": info.entry, "via": info.via, "app": info.app, "root_menu": info.root_menu,
            "language": info.language, "custom_data": dict(info.custom_data),
            "path": list(info.path), "destination": info.destination, "state": info.state,
            "transfers": list(info.transfers), "started_at": info.started_at,
            "updated_at": info.updated_at, "user": info.user, "verified": info.verified,
            "node": info.node, "engine": info.engine}


def _info(row: CallRecord) -> CallInfo:
    return CallInfo(**{name: getattr(row, name) for name in _RECORD_FIELDS})


class CallRecordRepo:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], dialect: str):
        self._sessions = sessions
        self._insert = _INSERTS[dialect]

    async def save(self, infos: Iterable[CallInfo]) -> None:
        """Insert or replace these calls' records in one transaction. A call written again
        (taken over after a crash) keeps the start time of its first record."""
        rows = [_row(i) for i in infos]
        if not rows:
            return
        stmt = self._insert(CallRecord)
        stmt = stmt.on_conflict_do_update(
            index_elements=[CallRecord.id],
            set_={name: stmt.excluded[name] for name in _RECORD_FIELDS
                  if name not in ("id", "started_at")})
        async with self._sessions() as s, s.begin():
            await s.execute(stmt, rows)

    async def mark_ended(self, call_ids: Iterable[str], now: dt.datetime) -> None:
        """Calls known only from their records (they began under an earlier engine) ended."""
        ids = list(call_ids)
        if not ids:
            return
        async with self._sessions() as s, s.begin():
            await s.execute(update(CallRecord)
                            .where(CallRecord.id.in_(ids), CallRecord.state != "ended")
                            .values(state="ended", updated_at=now))

    async def get(self, call_id: str) -> CallInfo | None:
        if "\x00" in call_id:  # PostgreSQL text cannot hold NUL (it would be an error):
            return None  # no record has such an id
        async with self._sessions() as s:
            row = await s.get(CallRecord, call_id)
            return _info(row) if row is not None else None

    async def purge(self, before: dt.datetime) -> int:
        """Delete the records not updated since ``before``; how many."""
        async with self._sessions() as s, s.begin():
            done = await s.execute(delete(CallRecord).where(CallRecord.updated_at < before))
            return done.rowcount or 0
