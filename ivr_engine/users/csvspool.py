"""A users CSV checked while it is spooled (the shared ``ivr_engine.csvspool``): the first
line names the columns, each later line is checked by ``csvrows`` into a user. Held in memory
besides: the names and mobile endpoints seen (to find a name or an endpoint given twice),
bounded by ``user_directory.imports.max_rows``.

Run in a worker thread (``service.UsersService.import_csv``). Limits:
``user_directory.imports``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config.model import ConfigModel
from ..csvspool import MAX_LISTED, LineResult, LineSpool, TooLarge
from .csvrows import Header, LineError, is_blank, parse_header, user_line
from .records import UserRecord, yaml_endpoints

__all__ = ["MAX_LISTED", "CheckResult", "TooLarge", "UserCsvSpool"]


@dataclass
class CheckResult(LineResult):
    names: set[str] = field(default_factory=set)  # every user of the file
    endpoints: dict[str, tuple[int, str]] = field(default_factory=dict)  # → (line, user)


class UserCsvSpool(LineSpool):
    """``feed`` the body, ``finish``, then read the users back with ``batches``; ``close``."""

    def __init__(self, model: ConfigModel):
        super().__init__(model.user_directory.imports, CheckResult(), error=LineError,
                         settings="user_directory.imports", unit="users",
                         prefix="ivr-users-")
        self.result: CheckResult
        self.model = model
        self._yaml = yaml_endpoints(model)
        self._header: Header | None = None
        self.unreadable = False  # the first line names no columns: stop reading

    def _at_end(self) -> None:
        if self._lineno == 0:
            self.result.add(LineError(1, "the file is empty: the first line names the "
                                      "columns, `name` among them"))

    def _too_long(self) -> None:
        super()._too_long()
        if self._lineno == 1:
            self.unreadable = True  # the header cannot be read: no line can

    def _text(self, n: int, text: str) -> str | None:
        if n == 1:
            header = parse_header(text)
            if isinstance(header, LineError):
                self.result.add(header)
                self.unreadable = True  # no later line can be read: the caller stops
            else:
                self._header = header
            return None
        if self._header is None or is_blank(text, self._header):
            return None
        return text

    def _check(self, n: int, text: str) -> UserRecord | LineError:
        assert self._header is not None  # _text skips every line without one
        row = user_line(n, text, self._header, self.model, self._yaml)
        if isinstance(row, UserRecord):
            return self._unique(n, row)
        return row

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
