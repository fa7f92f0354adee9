"""A users CSV checked while it is spooled: the body's bytes are cut into lines, each line is
checked (``csvrows``) and its user kept in an anonymous temporary file, a batch at a time;
bad lines are collected. Held in memory besides: the names and mobile endpoints seen (to find
a name or an endpoint given twice), bounded by ``user_directory.imports.max_rows``.

Blocking code, run in a worker thread (``service.UsersService.import_csv``): the checks
cost CPU and the file is a disk, neither belongs on the event loop. The batches are
pickled: the file is this process's own, unlinked at creation.

Limits (``user_directory.imports``): more than ``max_bytes`` or ``max_rows`` raises
``TooLarge`` (the file is refused whole); a line longer than ``max_line_bytes`` is a bad line
like any other, skipped without being held.
"""

from __future__ import annotations

import pickle
import tempfile
from dataclasses import dataclass, field
from typing import Iterator

from ..config.model import ConfigModel
from .csvrows import Header, LineError, is_blank, parse_header, user_line
from .records import UserRecord, yaml_endpoints

BATCH_ROWS = 1000  # users per pickled batch: one executemany when imported
MAX_LISTED = 10_000


class TooLarge(Exception):
    """The upload passes ``max_bytes`` or ``max_rows``: refused whole (413)."""


@dataclass
class CheckResult:
    errors: list[LineError] = field(default_factory=list)
    bad_lines: int = 0
    rows: int = 0  # users checked (header and blank lines excluded)
    names: set[str] = field(default_factory=set)  # every user of the file
    endpoints: dict[str, tuple[int, str]] = field(default_factory=dict)  # → (line, user)

    @property
    def ok(self) -> bool:
        return self.bad_lines == 0

    def add(self, err: LineError) -> None:
        self.bad_lines += 1
        if len(self.errors) < MAX_LISTED:
            self.errors.append(err)


class UserCsvSpool:
    """``feed`` the body, ``finish``, then read the users back with ``batches``; ``close``."""

    def __init__(self, model: ConfigModel):
        self.model = model
        self.limits = model.user_directory.imports
        self.result = CheckResult()
        self._yaml = yaml_endpoints(model)
        self._file = tempfile.TemporaryFile(prefix="ivr-users-")
        self._size = 0
        self._lineno = 0
        self._header: Header | None = None
        self._partial = bytearray()
        self._skipping = False  # inside a line already found too long
        self._batch: list[UserRecord] = []
        self.unreadable = False  # the first line names no columns: stop reading

    # ----------------------------------------------------------------- in

    def feed(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self.limits.max_bytes:
            raise TooLarge(f"the file is larger than {self.limits.max_bytes} bytes "
                           "(user_directory.imports.max_bytes)")
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
            self._line(bytes(self._partial))
            self._partial.clear()
        if not self._skipping:
            if len(self._partial) + len(rest) > limit:
                self._too_long()
                self._skipping = True
                self._partial.clear()
            else:
                self._partial += rest

    def finish(self) -> CheckResult:
        """The end of the body: the last line without a newline, the last batch."""
        if self._partial and not self._skipping:
            self._line(bytes(self._partial))
        self._partial.clear()
        if self._lineno == 0:
            self.result.add(LineError(1, "the file is empty: the first line names the "
                                      "columns, `name` among them"))
        self._flush()
        self._file.flush()
        return self.result

    def _too_long(self) -> None:
        self._lineno += 1
        self.result.add(LineError(self._lineno, f"longer than {self.limits.max_line_bytes} "
                                  "bytes (user_directory.imports.max_line_bytes)"))
        if self._lineno == 1:
            self.unreadable = True  # the header cannot be read: no line can

    def _line(self, raw: bytes) -> None:
        self._lineno += 1
        n = self._lineno
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.result.add(LineError(n, f"not UTF-8 (byte {exc.start + 1})"))
            return
        if n == 1:
            header = parse_header(text)
            if isinstance(header, LineError):
                self.result.add(header)
                self.unreadable = True  # no later line can be read: the caller stops
            else:
                self._header = header
            return
        if self._header is None:
            return
        if is_blank(text, self._header):
            return
        self.result.rows += 1
        if self.result.rows > self.limits.max_rows:
            raise TooLarge(f"the file has more than {self.limits.max_rows} users "
                           "(user_directory.imports.max_rows)")
        row = user_line(n, text, self._header, self.model, self._yaml)
        if isinstance(row, UserRecord):
            row = self._unique(n, row)
        if isinstance(row, LineError):
            self.result.add(row)
            self._batch.clear()  # nothing will be imported: keep no more users
        elif self.result.ok:
            self._batch.append(row)
            if len(self._batch) >= BATCH_ROWS:
                self._flush()

    def _unique(self, n: int, rec: UserRecord) -> UserRecord | LineError:
        seen = self.result
        if rec.name in seen.names:
            return LineError(n, f"user {rec.name!r} is already on an earlier line")
        seen.names.add(rec.name)
        if rec.mobile_endpoint:
            other = seen.endpoints.get(rec.mobile_endpoint)
            if other is not None:
                return LineError(n, f"mobile_endpoint: endpoint {rec.mobile_endpoint!r} is "
                                 f"already user {other[1]!r}'s (line {other[0]})")
            seen.endpoints[rec.mobile_endpoint] = (n, rec.name)
        return rec

    def _flush(self) -> None:
        if self._batch and self.result.ok:
            pickle.dump(self._batch, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self._batch = []

    # ----------------------------------------------------------------- out

    def rewind(self) -> None:
        self._file.seek(0)

    def next_batch(self) -> list[UserRecord] | None:
        """The next batch of users, None at the end; ``rewind`` first."""
        try:
            return pickle.load(self._file)
        except EOFError:
            return None

    def batches(self) -> Iterator[list[UserRecord]]:
        self.rewind()
        while (batch := self.next_batch()) is not None:
            yield batch

    def close(self) -> None:
        self._file.close()
