"""The SMS tables (revision 0004; search indexes 0009; inbound 0012): the spool, the
do-not-contact list, the dialers' run state, inbound messages and the parts of long ones.

Spool states (uContact's numbers kept: 0 none, 1 to process, 3 blocked):

    0 NONE        not to be sent (kept for the record)
    1 TO_PROCESS  waiting in its lane
    2 SENDING     claimed by a worker (claimed_by, claimed_at); once attempted_at is set
                  the request may have left
    3 BLOCKED     on the do-not-contact list
    4 SENT        the provider accepted it (provider_message_id, provider_answer)
    5 FAILED      refused by the provider, or the outcome of a crashed send stayed unknown
    6 OTHER       the number failed the provider's number_regexp (bad number format)
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Index, Integer, SmallInteger, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..store.models import Base, UtcDateTime

NONE, TO_PROCESS, SENDING, BLOCKED, SENT, FAILED, OTHER = 0, 1, 2, 3, 4, 5, 6
STATE_NAMES = {NONE: "none", TO_PROCESS: "to-process", SENDING: "sending", BLOCKED: "blocked",
               SENT: "sent", FAILED: "failed", OTHER: "other"}

SINGLE_LANE = "single"  # the lane of single sends (SendSMS, CLI, app links): never behind bulk

# an inbound message's webhook (sms.received): none configured when it came, waiting (retried
# from hook_next_at), delivered, given up (older than the webhook's max_age_hours)
HOOK_NONE, HOOK_PENDING, HOOK_DELIVERED, HOOK_FAILED = 0, 1, 2, 3
HOOK_NAMES = {HOOK_NONE: "none", HOOK_PENDING: "pending", HOOK_DELIVERED: "delivered",
              HOOK_FAILED: "failed"}


class SpoolRow(Base):
    __tablename__ = "sms_spool"
    __table_args__ = (
        Index("ix_sms_spool_lane", "state", "lane", "priority", "position", "id"),
        Index("ix_sms_spool_campaign", "campaign", "state"),
        Index("ix_sms_spool_message_id", "provider_message_id"),
        Index("ix_sms_spool_idem_key", "idem_key", unique=True),
        # the sent-message search (revision 0009): a date range, a number
        Index("ix_sms_spool_created", "created_at", "id"),
        Index("ix_sms_spool_destination", "destination", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lane: Mapped[str] = mapped_column(String(128))  # a dialer's name, or "single"
    campaign: Mapped[str | None] = mapped_column(String(128), nullable=True)
    destination: Mapped[str] = mapped_column(String(32))  # E.164
    message: Mapped[str] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(Integer)  # lower first
    position: Mapped[int] = mapped_column(Integer)  # order inside an upload
    state: Mapped[int] = mapped_column(SmallInteger)
    segments: Mapped[int] = mapped_column(Integer)
    encoding: Mapped[str] = mapped_column(String(8))
    idem_key: Mapped[str] = mapped_column(String(40))  # sent to providers that honour one
    agent: Mapped[str | None] = mapped_column(String(128), nullable=True)
    provider: Mapped[str | None] = mapped_column(String(128), nullable=True)
    channel: Mapped[int | None] = mapped_column(Integer, nullable=True)
    provider_message_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    provider_answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivery_status: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    attempted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    done_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class DncEntry(Base):
    """A number not to be sent to: for one campaign, or for all ("" campaign)."""

    __tablename__ = "sms_dnc"
    __table_args__ = (UniqueConstraint("number", "campaign", name="uq_sms_dnc"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(32))
    campaign: Mapped[str] = mapped_column(String(128))
    # why and when it was listed (revision 0012; an upload's numbers have neither)
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    added_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class DialerState(Base):
    """Start/stop on demand: a configured dialer runs only while ``running`` (default on)."""

    __tablename__ = "sms_dialers"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    running: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class InboundMessage(Base):
    """A message a provider received for us: one per provider message id (a provider's retry
    of it is the same row), linked to the send it answers, delivered by webhook."""

    __tablename__ = "sms_inbound"
    __table_args__ = (
        UniqueConstraint("provider", "provider_message_id", name="uq_sms_inbound_message"),
        Index("ix_sms_inbound_received", "received_at", "id"),
        Index("ix_sms_inbound_sender", "sender", "received_at"),
        Index("ix_sms_inbound_campaign", "campaign", "received_at"),
        Index("ix_sms_inbound_hook", "hook_state", "hook_next_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[str] = mapped_column(String(128))
    provider_message_id: Mapped[str] = mapped_column(String(128))
    sender: Mapped[str] = mapped_column(String(64))  # E.164 when it reads as a number
    recipient: Mapped[str] = mapped_column(String(64))  # our number
    text: Mapped[str] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    reply_to: Mapped[int | None] = mapped_column(Integer, nullable=True)  # sms_spool.id
    campaign: Mapped[str | None] = mapped_column(String(128), nullable=True)  # reply_to's
    stop_word: Mapped[str | None] = mapped_column(String(32), nullable=True)
    stop_language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    event_id: Mapped[str] = mapped_column(String(32))  # X-IVR-Delivery of every attempt
    hook_state: Mapped[int] = mapped_column(SmallInteger)
    hook_attempts: Mapped[int] = mapped_column(Integer)
    hook_next_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    hook_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    hook_done_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class InboundPart(Base):
    """A part of a long message a provider hands over in parts (Vonage): kept until the
    message is whole (``inbound_id`` then names it); a retried part is the same row."""

    __tablename__ = "sms_inbound_parts"
    __table_args__ = (
        UniqueConstraint("provider", "message_id", name="uq_sms_inbound_part"),
        Index("ix_sms_inbound_parts_group", "provider", "sender", "ref", "inbound_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[str] = mapped_column(String(128))
    message_id: Mapped[str] = mapped_column(String(128))
    sender: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(64))
    ref: Mapped[str] = mapped_column(String(32))
    total: Mapped[int] = mapped_column(SmallInteger)
    part: Mapped[int] = mapped_column(SmallInteger)
    text: Mapped[str] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    inbound_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
