"""Opening hours: weekly ranges plus exceptional closed and open dates. Pure.

``is_open(now)`` converts ``now`` (an aware datetime) into the schedule's own timezone first,
so a schedule for New York stays right whatever the engine's timezone is.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True, order=True)
class TimeRange:
    start: int  # minutes since midnight, inclusive
    end: int  # minutes since midnight, exclusive (1440 = 24:00)

    def contains(self, minute: int) -> bool:
        return self.start <= minute < self.end

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    tz: dt.tzinfo
    weekly: tuple[tuple[TimeRange, ...], ...]  # index 0 = Monday
    closed: frozenset[dt.date] = frozenset()
    open_dates: dict[dt.date, tuple[TimeRange, ...]] = field(default_factory=dict)

    def closed_date(self, now: dt.datetime) -> bool:
        """``now`` falls on one of the closed dates (closed all day, whatever the hours)."""
        if now.tzinfo is None:
            raise ValueError("closed_date needs an aware datetime")
        return now.astimezone(self.tz).date() in self.closed

    def is_open(self, now: dt.datetime) -> bool:
        if now.tzinfo is None:
            raise ValueError("is_open needs an aware datetime")
        local = now.astimezone(self.tz)
        day = local.date()
        minute = local.hour * 60 + local.minute
        if day in self.closed:
            return False
        ranges = self.open_dates.get(day)
        if ranges is None:
            ranges = self.weekly[local.weekday()]
        return any(r.contains(minute) for r in ranges)


_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")


def _minutes(text: str) -> int:
    m = _TIME.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a time like 08:30")
    h, mi = int(m.group(1)), int(m.group(2))
    if mi > 59 or h > 24 or (h == 24 and mi):
        raise ValueError(f"{text!r} is not a valid time")
    return h * 60 + mi


def parse_range(text: object) -> TimeRange:
    """``"08:00-12:30"``; end may be ``24:00``; ranges may not cross midnight."""
    if not isinstance(text, str) or text.count("-") != 1:
        raise ValueError(f"{text!r} is not a time range like 08:00-18:00")
    a, b = text.split("-")
    start, end = _minutes(a), _minutes(b)
    if start >= end:
        raise ValueError(
            f"{text!r}: start must be before end (split a range crossing midnight in two: "
            "22:00-24:00 on one day, 00:00-06:00 on the next)"
        )
    return TimeRange(start, end)


def parse_days(text: str) -> list[int]:
    """``mon-fri``, ``sat``, ``mon,wed,fri``, ``fri-mon`` (wraps) → weekday indexes."""
    out: list[int] = []
    for part in str(text).lower().split(","):
        part = part.strip()
        if "-" in part:
            a, b = (x.strip() for x in part.split("-", 1))
            if a not in DAYS or b not in DAYS:
                raise ValueError(f"{part!r} is not a day range like mon-fri")
            i, j = DAYS.index(a), DAYS.index(b)
            while True:
                out.append(i)
                if i == j:
                    break
                i = (i + 1) % 7
        elif part in DAYS:
            out.append(DAYS.index(part))
        else:
            raise ValueError(f"{part!r} is not a day ({', '.join(DAYS)})")
    return out


def parse_dates(value: object) -> list[dt.date]:
    """A date (``2026-12-25``) or an inclusive range (``2026-12-24..2026-12-26``)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return [value]
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a date like 2026-12-25")
    try:
        if ".." in value:
            a, b = value.split("..", 1)
            start, end = dt.date.fromisoformat(a.strip()), dt.date.fromisoformat(b.strip())
            if end < start:
                raise ValueError(f"{value!r}: the range ends before it starts")
            if (end - start).days > 366:
                raise ValueError(f"{value!r}: a closed range may span at most a year")
            return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
        return [dt.date.fromisoformat(value.strip())]
    except ValueError as exc:
        if "range" in str(exc):
            raise
        raise ValueError(f"{value!r} is not a date like 2026-12-25 or 2026-12-24..2026-12-26") from None
