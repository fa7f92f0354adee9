"""The upload files' rules, one line at a time (pure: the caller streams the lines in).

Spool file, ``campaign;destiny;message;priority`` (uContact's format; a trailing ``;`` and
extra columns are allowed, a first line naming the columns is skipped):

- at least four columns; the campaign must exist (``sms.campaigns``); the number must read as
  a phone number (normalised to E.164); the message must not be empty nor too long; the
  priority is a whole number 0-999999 (lower first);
- no blank line anywhere, trailing ones included (a file ends with at most one newline);
- none of the special characters ``´ ‘ ’ “ ” " ` @`` nor control characters in any field.

Do-not-contact file, ``number;campaign;``: the campaign may be empty (every campaign) and must
exist otherwise.

Any bad line rejects the whole file: the caller collects every line's reason and imports
nothing (see ``uploads.py``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from .numbers import NumberError, to_e164
from .spool import SpoolError, spool_row

FORBIDDEN = "´‘’“”\"`@"
_BAD = re.compile("[" + re.escape(FORBIDDEN) + r"\x00-\x1f\x7f]")
MAX_PRIORITY = 999_999


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def _fields(text: str) -> list[str]:
    fields = text.split(";")
    if len(fields) > 1 and fields[-1].strip() == "":
        fields.pop()  # the trailing ";" of uContact's examples
    return fields


def _forbidden(fields: list[str], names: tuple[str, ...]) -> str | None:
    for i, value in enumerate(fields):
        m = _BAD.search(value)
        if m:
            ch = m.group()
            shown = repr(ch) if ch.isprintable() else f"U+{ord(ch):04X}"
            col = names[i] if i < len(names) else f"column {i + 1}"
            return f"{col}: forbidden character {shown}"
    return None


def _strip_line(raw: str) -> str:
    return raw[:-1] if raw.endswith("\n") else raw


SPOOL_COLUMNS = ("campaign", "destiny", "message", "priority")
DNC_COLUMNS = ("number", "campaign")


def is_header(line: str, columns: tuple[str, ...]) -> bool:
    """A first line naming the columns (uContact's own example spells ``campign``)."""
    first = line.split(";", 1)[0].strip().lower().lstrip("\ufeff")
    return first == columns[0] or (columns[0] == "campaign" and first == "campign")


def spool_line(lineno: int, raw: str, *, campaigns: Any, dialer_of: Any, encoding_of: Any,
               region: str | None, now: dt.datetime) -> dict[str, Any] | RowError:
    """One spool line → the spool row's columns, or the reason it is refused.
    ``dialer_of(campaign)`` is the campaign's dialer (its lane), ``encoding_of(dialer)`` its
    provider's encoding choice."""
    text = _strip_line(raw).rstrip("\r")
    if not text.strip():
        return RowError(lineno, "blank line (remove blank and trailing empty lines)")
    fields = _fields(text)
    if len(fields) < 4:
        return RowError(lineno, f"{len(fields)} column{'s' * (len(fields) != 1)}; expected "
                        "at least 4: campaign;destiny;message;priority")
    bad = _forbidden(fields, SPOOL_COLUMNS)
    if bad:
        return RowError(lineno, bad)
    campaign, destiny, message, priority = (f.strip() for f in fields[:4])
    if campaign not in campaigns:
        return RowError(lineno, f"campaign {campaign!r} does not exist (sms.campaigns)")
    if not re.fullmatch(r"\d{1,6}", priority):
        return RowError(lineno, f"priority {priority!r} is not a whole number 0-{MAX_PRIORITY}")
    dialer = dialer_of(campaign)
    try:
        return spool_row(destination=destiny, message=message, region=region,
                         encoding=encoding_of(dialer), now=now, lane=dialer, campaign=campaign,
                         priority=int(priority), position=lineno)
    except SpoolError as exc:
        return RowError(lineno, str(exc))


def dnc_line(lineno: int, raw: str, *, campaigns: Any,
             region: str | None) -> tuple[str, str] | RowError:
    """One do-not-contact line → (E.164 number, campaign or "")."""
    text = _strip_line(raw).rstrip("\r")
    if not text.strip():
        return RowError(lineno, "blank line (remove blank and trailing empty lines)")
    fields = _fields(text)
    bad = _forbidden(fields, DNC_COLUMNS)
    if bad:
        return RowError(lineno, bad)
    number = fields[0].strip()
    campaign = fields[1].strip() if len(fields) > 1 else ""
    if campaign and campaign not in campaigns:
        return RowError(lineno, f"campaign {campaign!r} does not exist (sms.campaigns)")
    try:
        return to_e164(number, region), campaign
    except NumberError as exc:
        return RowError(lineno, str(exc))
