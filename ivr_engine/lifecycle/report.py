"""The login/logout report (pure): the query's time range, its rows, and the CSV a spreadsheet
opens.

Times are UTC ISO 8601 (``2026-12-01T06:40:22+00:00``). The CSV is UTF-8 with a byte-order
mark (spreadsheets then read it as UTF-8), CRLF line ends, a header row, and every cell that
a spreadsheet would take for a formula (``= + - @``, tab, CR) prefixed with ``'``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any, Iterable

COLUMNS = ("session_id", "app", "user", "platform", "app_type", "app_version", "device_id",
           "device_model", "os", "os_version", "login_at", "logout_at", "ended")
DEFAULT_SPAN = dt.timedelta(days=1)
MAX_ROWS = 10_000
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
LATEST = dt.datetime(9999, 1, 1, tzinfo=dt.timezone.utc)


def report_row(s: Any) -> dict[str, Any]:
    """A session (``AppSession``) as a row of the report: its ``COLUMNS``."""
    return {"session_id": s.id, "app": s.app, "user": s.user, "platform": s.platform,
            "app_type": s.app_type, "app_version": s.app_version, "device_id": s.device_id,
            "device_model": s.device_model, "os": s.os, "os_version": s.os_version,
            "login_at": s.started_at, "logout_at": s.ended_at, "ended": s.end_reason}


class RangeError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def parse_time(value: str, field: str) -> dt.datetime:
    """An ISO 8601 time; without an offset it is UTC."""
    if len(value) > 40:
        raise RangeError(field, f"{field}: not an ISO 8601 time")
    try:
        t = dt.datetime.fromisoformat(value)
        t = t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(
            dt.timezone.utc)
    except ValueError:
        raise RangeError(field, f"{field}: not an ISO 8601 time like "
                         "2026-12-01T00:00:00Z") from None
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        t = EARLIEST - dt.timedelta(days=1)
    if not EARLIEST <= t < LATEST:
        raise RangeError(field, f"{field}: between 1970-01-01 and 9998-12-31 (UTC)")
    return t


def time_range(start: str | None, end: str | None,
               now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """[from, to): ``to`` defaults to now, ``from`` to a day before ``to``."""
    to = parse_time(end, "to") if end is not None else now
    frm = parse_time(start, "from") if start is not None else max(EARLIEST, to - DEFAULT_SPAN)
    if frm >= to:
        raise RangeError("from", "from must be before to")
    return frm, to


def iso(t: dt.datetime | None) -> str:
    if t is None:
        return ""
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.astimezone(dt.timezone.utc).isoformat()


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(rows: Iterable[dict]) -> str:
    out = io.StringIO()
    out.write("\ufeff")
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(COLUMNS)
    for row in rows:
        w.writerow([_cell(iso(row[c]) if isinstance(row[c], dt.datetime) else row[c])
                    for c in COLUMNS])
    return out.getvalue()
