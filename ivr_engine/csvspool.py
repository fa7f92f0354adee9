"""A CSV upload checked while it is spooled — the part the SMS spool and do-not-contact uploads
(``sms/csvspool.py``) and the users' import (``users/csvspool.py``) share: the body's bytes are
cut into lines, each line is checked by the feature and its row kept in an anonymous temporary
file, a batch at a time; bad lines are collected (the first ``MAX_LISTED``, the count exact).
Nothing else is held: not the body, not the rows, no transaction.

Blocking code, run in a worker thread: the checks cost CPU and the file is a disk, neither
belongs on the event loop. The batches are pickled: the file is this process's own, unlinked
at creation.

Limits (the feature's ``max_bytes``, ``max_rows``, ``max_line_bytes``): more than
``max_bytes`` or ``max_rows`` raises ``TooLarge`` (the file is refused whole); a line longer
than ``max_line_bytes`` (its newline not counted) is a bad line like any other, skipped
without being held.
"""

from __future__ import annotations

import pickle
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Iterator

BATCH_ROWS = 1000  # rows per pickled batch: one executemany when imported
MAX_LISTED = 10_000


class TooLarge(Exception):
    """The upload passes ``max_bytes`` or ``max_rows``: refused whole (413)."""


@dataclass
class LineResult:
    """The bad lines (the first ``MAX_LISTED``), how many, and how many rows were checked."""

    errors: list[Any] = field(default_factory=list)
    bad_lines: int = 0
    rows: int = 0  # checked rows (header and skipped lines excluded)

    @property
    def ok(self) -> bool:
        return self.bad_lines == 0

    def add(self, err: Any) -> None:
        self.bad_lines += 1
        if len(self.errors) < MAX_LISTED:
            self.errors.append(err)


class LineSpool(ABC):
    """``feed`` the body, ``finish``, then read the rows back with ``batches``; ``close``.

    A feature says what a line is: ``_text`` (None skips a line: a header, a blank line) and
    ``_check`` (the row to keep, or an ``error(line, reason)``)."""

    def __init__(self, limits: Any, result: LineResult, *, error: type,
                 settings: str, unit: str = "rows", newline: bool = False,
                 prefix: str = "ivr-upload-"):
        self.limits = limits
        self.result = result
        self._error = error  # the feature's bad line: error(line, reason)
        self._settings = settings  # where the limits are configured, for the messages
        self._unit = unit
        self._newline = newline  # hand a complete line to the checks with its "\n"
        self._file = tempfile.TemporaryFile(prefix=prefix)
        self._size = 0
        self._lineno = 0
        self._partial = bytearray()
        self._skipping = False  # inside a line already found too long
        self._batch: list[Any] = []

    # ----------------------------------------------------------------- the feature's

    def _text(self, n: int, text: str) -> str | None:
        """Line ``n`` as it is checked; None: not a row (header, blank line)."""
        return text

    @abstractmethod
    def _check(self, n: int, text: str) -> Any:
        """Line ``n``'s row to keep, or the feature's ``error(n, reason)``."""

    def _at_end(self) -> None:
        """The whole body was read (before the last batch is written)."""

    # ----------------------------------------------------------------- in

    def feed(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self.limits.max_bytes:
            raise TooLarge(f"the file is larger than {self.limits.max_bytes} bytes "
                           f"({self._settings}.max_bytes)")
        *ends, rest = chunk.split(b"\n")
        limit = self.limits.max_line_bytes
        for piece in ends:
            if self._skipping:
                self._skipping = False  # the long line ends here
                self._partial.clear()
                continue
            if len(self._partial) + len(piece) > limit:
                self._too_long()
                self._partial.clear()
                continue
            self._partial += piece
            if self._newline:
                self._partial += b"\n"
            self._line(bytes(self._partial))
            self._partial.clear()
        if not self._skipping:
            if len(self._partial) + len(rest) > limit:
                self._too_long()
                self._skipping = True
                self._partial.clear()
            else:
                self._partial += rest

    def finish(self) -> Any:
        """The end of the body: the last line without a newline, the last batch."""
        if self._partial and not self._skipping:
            self._line(bytes(self._partial))
        self._partial.clear()
        self._at_end()
        self._flush()
        self._file.flush()
        return self.result

    def _too_long(self) -> None:
        self._lineno += 1
        self.result.add(self._error(self._lineno, f"longer than {self.limits.max_line_bytes} "
                                    f"bytes ({self._settings}.max_line_bytes)"))

    def _line(self, raw: bytes) -> None:
        self._lineno += 1
        n = self._lineno
        try:
            decoded = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.result.add(self._error(n, f"not UTF-8 (byte {exc.start + 1})"))
            return
        text = self._text(n, decoded)
        if text is None:
            return
        self.result.rows += 1
        if self.result.rows > self.limits.max_rows:
            raise TooLarge(f"the file has more than {self.limits.max_rows} {self._unit} "
                           f"({self._settings}.max_rows)")
        row = self._check(n, text)
        if isinstance(row, self._error):
            self.result.add(row)
            self._batch.clear()  # nothing will be imported: keep no more rows
        elif self.result.ok:
            self._batch.append(row)
            if len(self._batch) >= BATCH_ROWS:
                self._flush()

    def _flush(self) -> None:
        if self._batch and self.result.ok:
            pickle.dump(self._batch, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self._batch = []

    # ----------------------------------------------------------------- out

    def rewind(self) -> None:
        self._file.seek(0)

    def next_batch(self) -> list[Any] | None:
        """The next batch of rows, None at the end; ``rewind`` first."""
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
