"""The ORM models: one class per table. The schema itself is owned by the Alembic revisions in
``migrations/versions/`` (a test checks that the two agree on SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

UTC = dt.timezone.utc


class UtcDateTime(TypeDecorator):
    """``TIMESTAMP WITH TIME ZONE`` on PostgreSQL, text on SQLite (the same DDL as
    ``DateTime(timezone=True)``), written in UTC and always read back timezone-aware: SQLite
    keeps no offset, so an aware time in another zone would otherwise be stored as its wall
    clock and read back naive."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value.astimezone(UTC)
        return value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class CallbackRequest(Base):
    """A caller asked to be called back (IVR destination ``callback:<queue>``); its states
    are in ``callbacks/policy.py`` (0011)."""

    __tablename__ = "callback_requests"
    __table_args__ = (Index("ix_callback_requests_due", "status", "not_before"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    caller: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(128))
    language: Mapped[str] = mapped_column(String(16))
    entry: Mapped[str] = mapped_column(String(128))
    path: Mapped[str] = mapped_column(String(512))
    channel_id: Mapped[str] = mapped_column(String(128))  # the call that asked
    state: Mapped[str] = mapped_column("status", String(16), default="requested")
    app: Mapped[str | None] = mapped_column(String(128), nullable=True)
    user: Mapped[str | None] = mapped_column(String(128), nullable=True)
    verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    claimed_by: Mapped[str | None] = mapped_column(String(160), nullable=True)
    claim_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    placements: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    not_before: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    dial_channel: Mapped[str | None] = mapped_column(String(128), nullable=True)
    last_outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    note: Mapped[str | None] = mapped_column(String(500), nullable=True)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class CallIntent(Base):
    """An app asked for a call plan and was sent to PSTN: its one-time token and context."""

    __tablename__ = "call_intents"
    __table_args__ = (Index("uq_intent_active_token", "app", "token", unique=True,
                            sqlite_where=text("used_at IS NULL"),
                            postgresql_where=text("used_at IS NULL")),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app: Mapped[str] = mapped_column(String(128), index=True)
    token: Mapped[str] = mapped_column(String(16), index=True)
    caller: Mapped[str] = mapped_column(String(64), default="")
    language: Mapped[str] = mapped_column(String(16), default="")
    custom_data: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    channel_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    target: Mapped[str | None] = mapped_column(String(200), nullable=True)  # 0005: deep link
    # 0007: the session's user when a session made the plan (verified); None: anonymous
    user: Mapped[str | None] = mapped_column(String(128), nullable=True)
    verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


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
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class CallRecord(Base):
    """The context of a call behind ``GET /v1/calls/<id>`` (revision 0002): written as the
    call goes, read back once the call has ended, deleted after the retention period."""

    __tablename__ = "call_records"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)  # the caller's channel id
    channel_name: Mapped[str] = mapped_column(Text)
    caller: Mapped[str] = mapped_column(Text)
    entry: Mapped[str] = mapped_column(Text)
    via: Mapped[str] = mapped_column(String(32))
    app: Mapped[str | None] = mapped_column(String(128), nullable=True)
    root_menu: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(64))
    custom_data: Mapped[dict] = mapped_column(JSON)
    path: Mapped[list] = mapped_column(JSON)
    destination: Mapped[str | None] = mapped_column(Text, nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    transfers: Mapped[list] = mapped_column(JSON)
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)
    user: Mapped[str | None] = mapped_column(String(128), nullable=True)  # 0007
    verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    node: Mapped[str | None] = mapped_column(String(128), nullable=True)  # 0013
    engine: Mapped[str | None] = mapped_column(String(128), nullable=True)  # 0013


class TokenFailure(Base):
    """A fallback caller's try of a token or code, counted before its lookup and deleted when
    it matched (revision 0013, apps/guard_db.py): the guard's windows, shared by the engines."""

    __tablename__ = "token_failures"
    __table_args__ = (Index("ix_token_failures_app", "app", "at"),
                      Index("ix_token_failures_caller", "app", "caller", "at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(String(128))
    caller: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class TokenHardening(Base):
    """Per app: until when it is hardened (NULL: not); its row lock serialises the tries of
    the app across engines (revision 0013)."""

    __tablename__ = "token_hardening"

    app: Mapped[str] = mapped_column(String(128), primary_key=True)
    until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class EngineRow(Base):
    """An engine on this database: its advertised API URL, when it last said it was alive
    (revision 0013, calls/owners.py)."""

    __tablename__ = "engines"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    api_url: Mapped[str] = mapped_column(String(256))
    seen_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class QueueSnapshotRow(Base):
    """What one node's app_queue said of one queue, written by the engine holding the node
    (at most once a second per queue, and every few seconds while nothing changes) so every
    engine's queue status covers every node (revision 0014, livedata/shared.py).
    ``updated_at`` is the database's clock (``now()``): engines' clocks never compare."""

    __tablename__ = "queue_snapshots"

    node: Mapped[str] = mapped_column(String(128), primary_key=True)
    queue: Mapped[str] = mapped_column(String(128), primary_key=True)
    callers: Mapped[int] = mapped_column(Integer)
    logged_in: Mapped[int] = mapped_column(Integer)
    serving: Mapped[int] = mapped_column(Integer)
    available: Mapped[int] = mapped_column(Integer)
    busy: Mapped[int] = mapped_column(Integer)
    paused: Mapped[int] = mapped_column(Integer)
    longest_wait: Mapped[float] = mapped_column(Float)
    answered: Mapped[int] = mapped_column(Integer)
    abandoned: Mapped[int] = mapped_column(Integer)
    asterisk_holdtime: Mapped[int | None] = mapped_column(Integer, nullable=True)
    inputs: Mapped[dict] = mapped_column(JSON)  # the estimator's inputs (livedata/snapshot.py)
    engine: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
