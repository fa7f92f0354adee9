"""An SMS upload checked while it is spooled (the shared ``ivr_engine.csvspool``): each line
is checked by ``csvrows`` — a spool row, or a do-not-contact (number, campaign) pair.

Run in a worker thread one call at a time (``uploads.receive``): the lines' checks (phone
numbers, encodings) cost CPU. Limits: ``sms.uploads``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ..csvspool import MAX_LISTED, LineResult, LineSpool, TooLarge
from .csvrows import DNC_COLUMNS, SPOOL_COLUMNS, RowError, dnc_line, is_header, spool_line
from .spool import provider_spec

__all__ = ["MAX_LISTED", "CsvSpool", "TooLarge", "UploadResult"]


@dataclass
class UploadResult(LineResult):
    imported: int = 0


class CsvSpool(LineSpool):
    """``feed`` the body, ``finish``, then read the rows back with ``batches`` (spool row
    dicts, or (number, campaign) pairs); ``close``."""

    def __init__(self, kind: str, sms: Any, now: dt.datetime):
        if kind not in ("spool", "dnc"):
            raise ValueError(kind)
        super().__init__(sms.uploads, UploadResult(), error=RowError, settings="sms.uploads",
                         newline=True)
        self.kind = kind
        self._sms, self._now = sms, now
        self._columns = SPOOL_COLUMNS if kind == "spool" else DNC_COLUMNS
        self._dialers: dict[str, str] = {}
        self._encodings: dict[str, str] = {}

    def _text(self, n: int, text: str) -> str | None:
        if n == 1:
            text = text.lstrip("\ufeff")
            if is_header(text, self._columns):
                return None
        return text

    def _check(self, n: int, text: str) -> Any:
        sms = self._sms
        if self.kind == "dnc":
            return dnc_line(n, text, campaigns=sms.campaigns, region=sms.default_region)
        return spool_line(n, text, campaigns=sms.campaigns, dialer_of=self._dialer_of,
                          encoding_of=self._encoding_of, region=sms.default_region,
                          now=self._now)

    def _dialer_of(self, campaign: str) -> str:
        if campaign not in self._dialers:
            self._dialers[campaign] = self._sms.campaigns[campaign].dialer
        return self._dialers[campaign]

    def _encoding_of(self, dialer: str) -> str:
        if dialer not in self._encodings:
            try:
                self._encodings[dialer] = provider_spec(
                    self._sms, self._sms.dialers[dialer].provider).encoding
            except LookupError:  # no provider at all: the dialer will say so
                self._encodings[dialer] = "auto"
        return self._encodings[dialer]
