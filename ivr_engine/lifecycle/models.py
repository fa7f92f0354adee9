"""The lifecycle's tables (revisions 0003, 0006, 0007, 0008), on the store's declarative ``Base`` so the schema
test and the test databases see them with the others (``repositories.py`` imports this
module through ``lifecycle/repo.py``).

    app_sessions      one row per login; ``active_user`` is set while it is open (unique:
                      one open session per user and app, even when two logins race)
    app_releases      a published release per app, platform and version
    release_notices   one per release and device: the delivery result of its notice
    app_log_requests  an admin's request for a device's logs, and its upload; or logs the
                      app sent unasked (``origin`` user, revision 0008)
    app_log_chunks    the uploads, 1 MiB a row (revision 0006)
    assertion_jtis    the user assertions accepted at login, until they expire (single use)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import JSON, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..store.models import Base, UtcDateTime


class AppSession(Base):
    __tablename__ = "app_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 hex
    active_user: Mapped[str | None] = mapped_column(String(260), unique=True, nullable=True)
    app: Mapped[str] = mapped_column(String(128))
    user: Mapped[str] = mapped_column(String(128), index=True)
    device_id: Mapped[str] = mapped_column(String(128))
    platform: Mapped[str] = mapped_column(String(16))  # mobile | desktop
    app_type: Mapped[str] = mapped_column(String(64))
    app_version: Mapped[str] = mapped_column(String(64))
    os: Mapped[str] = mapped_column(String(16))  # ios | android | windows | macos | linux | web
    os_version: Mapped[str] = mapped_column(String(64))
    device_model: Mapped[str] = mapped_column(String(128))
    push_token: Mapped[str | None] = mapped_column(String(512), nullable=True)  # alert/FCM
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # 0007: the HOTP secret of offline fallback codes (base32) and the last counter accepted
    fallback_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fallback_counter: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class AssertionJti(Base):
    """A user assertion accepted at login (revision 0007): its ``jti`` is kept until the
    assertion expires, so the same assertion cannot log in twice."""

    __tablename__ = "assertion_jtis"

    app: Mapped[str] = mapped_column(String(128), primary_key=True)
    jti: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)


class AppRelease(Base):
    __tablename__ = "app_releases"
    __table_args__ = (UniqueConstraint("app", "platform", "version", name="uq_app_release"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app: Mapped[str] = mapped_column(String(128))
    platform: Mapped[str] = mapped_column(String(16))
    version: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # recommended | mandatory
    store_url: Mapped[str] = mapped_column(Text)
    messages: Mapped[dict] = mapped_column(JSON)  # language: text
    grace_seconds: Mapped[int] = mapped_column(Integer)
    # 0008: this release's reminder policy (None: ``lifecycle.reminders``)
    remind_after_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    remind_max: Mapped[int | None] = mapped_column(Integer, nullable=True)
    published_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    republished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class ReleaseNotice(Base):
    __tablename__ = "release_notices"
    __table_args__ = (UniqueConstraint("release_id", "device_id", name="uq_release_notice"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    release_id: Mapped[int] = mapped_column(Integer, index=True)
    device_id: Mapped[int] = mapped_column(Integer)  # devices.id
    user: Mapped[str] = mapped_column(String(128))
    device_version: Mapped[str] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(String(16))  # sent | provider_error | token_removed
    reason: Mapped[str] = mapped_column(String(128))
    sent_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    # 0008: reminders of a recommended release sent to this device, the last one's time and
    # result, and why no more go (``updated``: the device reported the release or newer)
    reminders: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reminded_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    reminder_result: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reminder_stop: Mapped[str | None] = mapped_column(String(16), nullable=True)


class LogRequest(Base):
    """An admin asked a device for its logs: the push that asked, and the upload (kept
    ``lifecycle.logs.retention_days``, in the database: both backends, no directory to run),
    stored as the ``LogChunk`` rows of ``blob`` (revision 0006). ``origin`` ``user``
    (revision 0008): the app sent its logs unasked, uploaded at once (no push, no device
    row needed)."""

    __tablename__ = "app_log_requests"
    __table_args__ = (Index("ix_app_log_requests_user", "app", "user", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random, unguessable
    app: Mapped[str] = mapped_column(String(128), index=True)
    user: Mapped[str] = mapped_column(String(128))
    device_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # devices.id
    platform: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    push_result: Mapped[str] = mapped_column(String(16))
    uploaded_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    blob: Mapped[str | None] = mapped_column(String(32), nullable=True)  # its LogChunk rows
    origin: Mapped[str] = mapped_column(String(8), default="admin",
                                        server_default="admin")  # admin | user
    session_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # origin user


class LogChunk(Base):
    """One piece (1 MiB) of an upload: written one short transaction at a time, read one at
    a time, so that no upload is ever whole in the engine's memory. Chunks no request points
    at (an upload that lost a race, or an engine stopped mid-way) are purged."""

    __tablename__ = "app_log_chunks"

    blob: Mapped[str] = mapped_column(String(32), primary_key=True)  # random per upload
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


@dataclass(frozen=True)
class NoticeTarget:
    """A device a notice may go to (a ``devices`` row, as the push service reads it)."""

    id: int
    user: str
    app: str
    platform: str  # ios | android
    app_version: str
    push_token: str | None
    voip_token: str | None = None  # never used by a notice (alert / data pushes only)
