"""The users CSV, one line at a time (pure: the caller streams the lines in).

The first line names the columns, in any order (``name`` is required)::

    name,ringing_device,mobile_endpoint,uc_endpoint,app,no_answer,mobile_loops,
    uc_mobile_loops,interval_seconds,hold,moh_class,message,ring_seconds

Commas, or semicolons when the header has semicolons and no comma; fields may be quoted
(RFC 4180) but not span lines. An empty cell leaves the key unset (its default: the
``wakeup:`` settings, ``voicemail:<name>@default``...). Blank lines are skipped. Each row is
checked like a user of the API (``records.parse_user``, ``records.check_against``): any bad
row rejects the file, and every bad line is reported with its number.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import Any, Mapping

from ..config.model import ConfigModel
from ..config.users import WAKE_KEYS
from .records import FIELDS, UserInvalid, UserRecord, check_against, parse_user

COLUMNS = ("name", *FIELDS, *WAKE_KEYS)


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Header:
    columns: tuple[str, ...]
    delimiter: str


def _cells(text: str, delimiter: str) -> list[str]:
    rows = list(csv.reader([text], delimiter=delimiter, strict=True))
    if len(rows) != 1:
        raise csv.Error("a quoted field spans lines")
    return rows[0]


def parse_header(text: str) -> Header | LineError:
    """The first line: the columns it names."""
    text = text.lstrip("\ufeff").rstrip("\r\n")
    delimiter = ";" if ";" in text and "," not in text else ","
    try:
        names = [c.strip().lower() for c in _cells(text, delimiter)]
    except csv.Error as exc:
        return LineError(1, f"the header: {exc}")
    unknown = [c for c in names if c not in COLUMNS]
    if unknown:
        return LineError(1, f"unknown column {unknown[0][:40]!r}; the columns are "
                         f"{', '.join(COLUMNS)} (the first line names them)")
    twice = [c for c in names if names.count(c) > 1]
    if twice:
        return LineError(1, f"column {twice[0]!r} is named twice")
    if "name" not in names:
        return LineError(1, "the first line must name the columns, `name` among them")
    return Header(tuple(names), delimiter)


def is_blank(text: str, header: Header) -> bool:
    return not text.strip().strip(header.delimiter).strip()


def user_line(lineno: int, text: str, header: Header, model: ConfigModel,
              yaml_endpoints: Mapping[str, str]) -> UserRecord | LineError:
    """One row → the user, or why it is refused (``yaml_endpoints``: the mobile endpoints of
    the config's users, ``records.yaml_endpoints``)."""
    try:
        cells = _cells(text.rstrip("\r\n"), header.delimiter)
    except csv.Error as exc:
        return LineError(lineno, str(exc))
    if len(cells) != len(header.columns):
        return LineError(lineno, f"{len(cells)} column{'s' * (len(cells) != 1)}; the first "
                         f"line names {len(header.columns)}")
    values: dict[str, Any] = {}
    wakeup: dict[str, Any] = {}
    name = ""
    for column, cell in zip(header.columns, cells):
        cell = cell.strip()
        if column == "name":
            name = cell
        elif cell:
            (wakeup if column in WAKE_KEYS else values)[column] = cell
    if wakeup:
        values["wakeup"] = wakeup
    try:
        rec = parse_user(name, values)
        check_against(model, rec, yaml_endpoints)
    except UserInvalid as exc:  # named by its column: wakeup.ring_seconds is ring_seconds
        field = exc.field.removeprefix("wakeup.") if exc.field else None
        return LineError(lineno, f"{field}: {exc.message}" if field else exc.message)
    return rec
