"""The SMS routes' request and response models."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from ..api.schemas import ProblemDocument, QueryModel, RequestModel, ResponseModel, Text

Status = Literal["queued", "sending", "sent", "failed", "blocked", "other", "none"]


class SendSmsRequest(RequestModel):
    """SendSMS: one message in the single lane (never behind bulk campaigns)."""

    destination: str = Field(min_length=1, max_length=64, description="the number; national "
                             "numbers are read in sms.default_region")
    message: str = Field(min_length=1, max_length=1600)
    campaign: str | None = Field(None, max_length=128, description="a campaign under "
                                 "sms.campaigns (its do-not-contact list applies)")
    agent: str | None = Field(None, max_length=128, description="who sent it, for the record")
    provider: str | None = Field(None, max_length=128, description="a provider's name; "
                                 "default: sms.single_provider, else the default provider")
    wait_seconds: float = Field(0, ge=0, le=30, description="wait this long for the outcome "
                                "(200) instead of answering queued at once (202)")


class SmsStatus(ResponseModel):
    """One message of the spool and where it stands."""

    id: int
    status: Status
    destination: str = Field(description="E.164")
    campaign: str | None
    segments: int
    encoding: Literal["gsm7", "ucs2"]
    provider: str | None
    message_id: str | None = Field(description="the provider's id for it")
    answer: str | None = Field(description="the provider's answer, or why it was not sent")
    delivery_status: str | None = Field(description="from the provider's delivery report")
    created_at: dt.datetime
    done_at: dt.datetime | None


class UploadAccepted(ResponseModel):
    """The whole file was imported."""

    imported: int = Field(description="rows (spool) or new numbers (do-not-contact)")


class LineError(ResponseModel):
    line: int
    reason: str


class UploadProblem(ProblemDocument):
    """A refused upload: nothing was imported."""

    bad_lines: int = Field(description="how many lines are bad")
    errors: list[LineError] = Field(description="every bad line (the first 10 000)")


class DialerInfo(ResponseModel):
    name: str
    enabled: bool
    running: bool
    in_schedule: bool
    provider: str | None
    spacing_ms: int


class CampaignInfo(ResponseModel):
    campaign: str
    processed: int = Field(description="sent")
    not_processed: int = Field(description="waiting or in flight")
    in_flight: int
    other: int = Field(description="refused by the provider's number format")
    blocked: int = Field(description="on the do-not-contact list")
    failed: int
    messages_per_second: float = Field(description="over the last minute")
    segments_per_second: float


class SmsMonitor(ResponseModel):
    """Every dialer and campaign."""

    dialers: list[DialerInfo]
    campaigns: list[CampaignInfo]


class DialerSwitched(ResponseModel):
    name: str
    running: bool


class CampaignDeleted(ResponseModel):
    campaign: str
    deleted: int = Field(description="rows not sent (waiting, blocked, failed, other)")


class ReportAccepted(ResponseModel):
    updated: int = Field(description="spool rows the report updated")


class MessageSearchQuery(QueryModel):
    """The sent-message search (``/v1/sms/messages`` and its CSV)."""

    start: Text(40, "ISO 8601; without an offset, UTC; default: a day before `to`") | None = (
        Field(None, alias="from"))
    end: Text(40, "ISO 8601; default: now (created before it)") | None = Field(
        None, alias="to")
    campaign: Text(128, "one campaign; `-` for sends without a campaign") | None = None
    number: Text(64, "the destination, any format (read in sms.default_region)") | None = None
    status: Text(120, "one or more of queued, sending, sent, failed, blocked, other, none, "
                 "comma-separated") | None = None
    provider: Text(128) | None = None
    after: int | None = Field(None, ge=0, le=2**31, description="the previous page's "
                              "`next_after` (JSON only)")
    limit: int = Field(100, ge=1, le=1000, description="rows per page (JSON only)")


class MessagePage(ResponseModel):
    """Messages created in [start, end), oldest first (by id), at most `limit`."""

    start: dt.datetime
    end: dt.datetime
    messages: list[SmsStatus]
    next_after: int | None = Field(description="pass as `after` for the next page; null: "
                                   "this is the last")


class InboundAccepted(ResponseModel):
    """A provider's inbound request was taken (Twilio gets the empty TwiML it expects)."""

    stored: int = Field(description="new messages stored")
    duplicates: int = Field(description="messages (or parts) stored before: nothing changed")
    parts_waiting: int = Field(description="parts of long messages kept until the last one")


class InboundMessage(ResponseModel):
    """One message received."""

    id: int
    provider: str
    message_id: str = Field(description="the provider's id for it")
    sender: str = Field(description="E.164 when it reads as a phone number")
    recipient: str = Field(description="our number it was sent to")
    text: str
    received_at: dt.datetime
    campaign: str | None = Field(description="the campaign of the message it replies to")
    reply_to: int | None = Field(description="the sent message (spool id) it replies to")
    stop_word: str | None = Field(description="the opt-out keyword it starts with")
    stop_language: str | None
    webhook: Literal["none", "pending", "delivered", "failed"] = Field(
        description="the sms.received webhook: none configured when it came, waiting, "
        "delivered, given up")
    webhook_attempts: int
    webhook_error: str | None = Field(description="the last failed attempt's reason")


class InboundSearchQuery(QueryModel):
    """The messages received (``/v1/admin/sms/inbound`` and its CSV)."""

    start: Text(40, "ISO 8601; without an offset, UTC; default: a day before `to`") | None = (
        Field(None, alias="from"))
    end: Text(40, "ISO 8601; default: now (received before it)") | None = Field(
        None, alias="to")
    campaign: Text(128, "the campaign replied to; `-` for messages linked to none") | None = None
    number: Text(64, "the sender, any format (read in sms.default_region)") | None = None
    provider: Text(128) | None = None
    after: int | None = Field(None, ge=0, le=2**31, description="the previous page's "
                              "`next_after` (JSON only)")
    limit: int = Field(100, ge=1, le=1000, description="rows per page (JSON only)")


class InboundPage(ResponseModel):
    """Messages received in [start, end), oldest first (by id), at most `limit`."""

    start: dt.datetime
    end: dt.datetime
    messages: list[InboundMessage]
    next_after: int | None = Field(description="pass as `after` for the next page; null: "
                                   "this is the last")
