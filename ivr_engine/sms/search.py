"""The sent-message search (pure): the filters a query asks for, and the CSV a spreadsheet
opens — the status reports of uContact ("the status of sent messages and of messages
waiting to be sent").

Filters: messages *created* in [from, to) (ISO 8601, UTC without an offset; default the
last 24 hours), a campaign (``-``: sends without one), a number (normalised like a send:
``099 635 199`` finds ``+59899635199``), one or more statuses, a provider. Rows come oldest
first by id; the JSON is paged by id (``after``), the CSV streams every row.

The CSV is written like the login report's (``lifecycle/report.py``): UTF-8 with a
byte-order mark, CRLF, a header row, times in UTC ISO 8601, and every cell a spreadsheet would
take for a formula (``= + - @``, tab, CR) prefixed with ``'`` — a message text or a
provider's answer is whatever someone typed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from ..lifecycle.report import RangeError, iso, time_range
from .models import STATE_NAMES, TO_PROCESS
from .numbers import NumberError, to_e164

# the status a message is shown with (SmsStatus.status) → its spool state
STATUSES = {("queued" if s == TO_PROCESS else name): s for s, name in STATE_NAMES.items()}
NO_CAMPAIGN = "-"
COLUMNS = ("id", "created_at", "done_at", "campaign", "destination", "status", "provider",
           "channel", "segments", "encoding", "agent", "message_id", "delivery_status",
           "answer", "message")
PAGE_ROWS = 1000  # rows per database read while the CSV streams


class SearchError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Filters:
    start: dt.datetime
    end: dt.datetime
    campaign: str | None = None  # "" : no campaign
    destination: str | None = None  # E.164
    states: tuple[int, ...] = ()
    provider: str | None = None


def filters(*, start: str | None, end: str | None, campaign: str | None, number: str | None,
            status: str | None, provider: str | None, region: str | None,
            now: dt.datetime) -> Filters:
    """The query's filters; SearchError names the parameter that is wrong."""
    try:
        frm, to = time_range(start, end, now)
    except RangeError as exc:
        raise SearchError(exc.field, str(exc)) from None
    dest = None
    if number is not None:
        try:
            dest = to_e164(number, region)
        except NumberError as exc:
            raise SearchError("number", f"number: {exc}") from None
    states: list[int] = []
    for word in (status or "").split(","):
        word = word.strip().lower()
        if not word:
            continue
        if word not in STATUSES:
            raise SearchError("status", f"status: {word[:20]!r} is not one of "
                              f"{', '.join(STATUSES)}")
        states.append(STATUSES[word])
    return Filters(frm, to, "" if campaign == NO_CAMPAIGN else campaign, dest,
                   tuple(dict.fromkeys(states)), provider)


def status_name(state: int) -> str:
    return "queued" if state == TO_PROCESS else STATE_NAMES[state]


def cell(value: object) -> str:
    """A CSV cell: times in UTC ISO 8601, a would-be formula prefixed with ``'``."""
    if isinstance(value, dt.datetime):
        return iso(value)
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_values(row: Any) -> list[str]:
    """One spool row as CSV cells (COLUMNS)."""
    values = {"status": status_name(row.state), "message_id": row.provider_message_id,
              "answer": row.provider_answer}
    return [cell(values[c] if c in values else getattr(row, c)) for c in COLUMNS]


def csv_chunk(rows: Iterable[Any], header: bool = False, *,
              columns: Sequence[str] = COLUMNS,
              values: Callable[[Any], list[str]] = csv_values) -> bytes:
    """Rows as CSV lines (with the byte-order mark and the header row first when
    ``header``), UTF-8: spool rows by default, any other rows with their ``columns`` and
    ``values`` (the inbound messages: ``inbound_search.py``)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    if header:
        out.write("\ufeff")
        w.writerow(columns)
    for row in rows:
        w.writerow(values(row))
    return out.getvalue().encode("utf-8")
