"""An upload checked while it is spooled: the body's bytes are cut into lines, each line is
checked (``csvrows``) and its row kept in an anonymous temporary file, a batch at a time;
bad lines are collected. Nothing else is held: not the body, not the rows, no transaction.

Blocking code, run in a worker thread one call at a time (``uploads.receive``): the lines'
checks (phone numbers, encodings) cost CPU and the file is a disk, neither belongs on the
event loop. The rows are pickled: the file is this process's own, unlinked at creation.

Limits (``sms.uploads``): more than ``max_bytes`` or ``max_rows`` raises ``TooLarge`` (the
file is refused whole); a line longer than ``max_line_bytes`` (its newline not counted) is a
bad line like any other, skipped without being held.
"""

from __future__ import annotations

import datetime as dt
import pickle
import tempfile
from dataclasses import dataclass, field
from typing import Any, Iterator

from .csvrows import DNC_COLUMNS, SPOOL_COLUMNS, RowError, dnc_line, is_header, spool_line
from .spool import provider_spec

BATCH_ROWS = 1000  # rows per pickled batch: one executemany when imported
MAX_LISTED = 10_000


class TooLarge(Exception):
    """The upload passes ``max_bytes`` or ``max_rows``: refused whole (413)."""


@dataclass
class UploadResult:
    imported: int = 0
    errors: list[RowError] = field(default_factory=list)
    bad_lines: int = 0
    rows: int = 0  # checked rows (header excluded)

    @property
    def ok(self) -> bool:
        return self.bad_lines == 0

    def add(self, err: RowError) -> None:
        self.bad_lines += 1
        if len(self.errors) < MAX_LISTED:
            self.errors.append(err)


class CsvSpool:
    """``feed`` the body, ``finish``, then read the rows back with ``batches``; ``close``."""

    def __init__(self, kind: str, sms: Any, now: dt.datetime):
        if kind not in ("spool", "dnc"):
            raise ValueError(kind)
        self.kind = kind
        self.limits = sms.uploads
        self.result = UploadResult()
        self._sms, self._now = sms, now
        self._columns = SPOOL_COLUMNS if kind == "spool" else DNC_COLUMNS
        self._file = tempfile.TemporaryFile(prefix="ivr-upload-")
        self._size = 0
        self._lineno = 0
        self._partial = bytearray()
        self._skipping = False  # inside a line already found too long
        self._batch: list[Any] = []
        self._dialers: dict[str, str] = {}
        self._encodings: dict[str, str] = {}

    # ----------------------------------------------------------------- in

    def feed(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self.limits.max_bytes:
            raise TooLarge(f"the file is larger than {self.limits.max_bytes} bytes "
                           "(sms.uploads.max_bytes)")
        *ends, rest = chunk.split(b"\n")
        for piece in ends:
            if self._skipping:
                self._skipping = False  # the long line ends here
                self._partial.clear()
                continue
            if len(self._partial) + len(piece) > self.limits.max_line_bytes:
                self._too_long()
                self._partial.clear()
                continue
            self._partial += piece
            self._partial += b"\n"
            self._line(bytes(self._partial))
            self._partial.clear()
        if not self._skipping:
            if len(self._partial) + len(rest) > self.limits.max_line_bytes:
                self._too_long()
                self._skipping = True
                self._partial.clear()
            else:
                self._partial += rest

    def finish(self) -> UploadResult:
        """The end of the body: the last line without a newline, the last batch."""
        if self._partial and not self._skipping:
            self._line(bytes(self._partial))
        self._partial.clear()
        self._flush()
        self._file.flush()
        return self.result

    def _too_long(self) -> None:
        self._lineno += 1
        self.result.add(RowError(self._lineno, f"longer than {self.limits.max_line_bytes} "
                                 "bytes (sms.uploads.max_line_bytes)"))

    def _line(self, raw: bytes) -> None:
        self._lineno += 1
        n = self._lineno
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.result.add(RowError(n, f"not UTF-8 (byte {exc.start + 1})"))
            return
        if n == 1:
            text = text.lstrip("\ufeff")
            if is_header(text, self._columns):
                return
        self.result.rows += 1
        if self.result.rows > self.limits.max_rows:
            raise TooLarge(f"the file has more than {self.limits.max_rows} rows "
                           "(sms.uploads.max_rows)")
        row = self._check(n, text)
        if isinstance(row, RowError):
            self.result.add(row)
            self._batch.clear()  # nothing will be imported: keep no more rows
        elif self.result.ok:
            self._batch.append(row)
            if len(self._batch) >= BATCH_ROWS:
                self._flush()

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

    def _flush(self) -> None:
        if self._batch and self.result.ok:
            pickle.dump(self._batch, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self._batch = []

    # ----------------------------------------------------------------- out

    def rewind(self) -> None:
        self._file.seek(0)

    def next_batch(self) -> list[Any] | None:
        """The next batch of rows (spool row dicts, or (number, campaign) pairs), None at
        the end; ``rewind`` first."""
        try:
            return pickle.load(self._file)
        except EOFError:
            return None

    def batches(self) -> Iterator[list[Any]]:
        self.rewind()
        while (batch := self.next_batch()) is not None:
            yield batch

    def close(self) -> None:
        self._file.close()
