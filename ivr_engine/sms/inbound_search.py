"""The messages received, as the admin search shows them (pure): one row as JSON and as CSV
cells, and the ``sms.received`` webhook's body. The filters are the sent-message search's
(``search.filters``: a date range, a number in any format, a campaign with ``-`` for none, a
provider), applied to when a message was received and who sent it; the CSV is written by
``search.csv_chunk`` (BOM, CRLF, UTC times, would-be formulas prefixed with ``'``)."""

from __future__ import annotations

from typing import Any, Iterable

from ..lifecycle.report import iso
from .models import HOOK_NAMES
from .search import cell, csv_chunk

COLUMNS = ("id", "received_at", "provider", "message_id", "sender", "recipient", "campaign",
           "reply_to", "stop_word", "stop_language", "webhook", "webhook_attempts",
           "webhook_error", "text")
EVENT = "sms.received"


def inbound_info(row: Any) -> dict[str, Any]:
    """One stored message (an ``sms_inbound`` row) as the API shows it."""
    return {"id": row.id, "provider": row.provider, "message_id": row.provider_message_id,
            "sender": row.sender, "recipient": row.recipient, "text": row.text,
            "received_at": row.received_at, "campaign": row.campaign,
            "reply_to": row.reply_to, "stop_word": row.stop_word,
            "stop_language": row.stop_language, "webhook": HOOK_NAMES[row.hook_state],
            "webhook_attempts": row.hook_attempts, "webhook_error": row.hook_error}


def _values(row: Any) -> list[str]:
    info = inbound_info(row)
    return [cell(info[c]) for c in COLUMNS]


def inbound_chunk(rows: Iterable[Any], header: bool = False) -> bytes:
    return csv_chunk(rows, header, columns=COLUMNS, values=_values)


def event(row: Any) -> dict[str, Any]:
    """The webhook's body for a stored message."""
    stop = ({"word": row.stop_word, "language": row.stop_language} if row.stop_word
            else None)
    return {"event": EVENT, "id": row.id, "provider": row.provider,
            "message_id": row.provider_message_id, "sender": row.sender,
            "recipient": row.recipient, "text": row.text, "received_at": iso(row.received_at),
            "campaign": row.campaign, "reply_to": row.reply_to, "stop": stop}
