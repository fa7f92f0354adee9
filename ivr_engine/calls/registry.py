"""What the engine knows about recent calls: context for agents and transfer rules.

Kept in memory (bounded): a call's context matters while the call is alive. After an engine
restart, calls from before it are unknown and the API says so.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class CallInfo:
    id: str
    channel_name: str
    caller: str
    entry: str
    via: str
    app: str | None
    root_menu: str  # the structure the call entered: transfers to queues stay inside it
    language: str
    custom_data: dict[str, str] = field(default_factory=dict)
    path: list[str] = field(default_factory=list)
    destination: str | None = None
    state: str = "ivr"  # ivr | handed-off | bridged | ended
    transfers: list[str] = field(default_factory=list)
    started_at: dt.datetime = field(default_factory=_now)
    updated_at: dt.datetime = field(default_factory=_now)

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["started_at"] = self.started_at.isoformat()
        d["updated_at"] = self.updated_at.isoformat()
        return d


class CallRegistry:
    def __init__(self, max_calls: int = 10_000):
        self.max_calls = max_calls
        self._calls: OrderedDict[str, CallInfo] = OrderedDict()

    def add(self, info: CallInfo) -> CallInfo:
        self._calls[info.id] = info
        self._calls.move_to_end(info.id)
        while len(self._calls) > self.max_calls:
            self._calls.popitem(last=False)
        return info

    def get(self, call_id: str) -> CallInfo | None:
        return self._calls.get(call_id)

    def update(self, call_id: str, **values: Any) -> None:
        info = self._calls.get(call_id)
        if info is None:
            return
        for k, v in values.items():
            setattr(info, k, v)
        info.updated_at = _now()

    def ended(self, call_id: str) -> None:
        """The channel of a call handed to the dialplan is gone (hung up, transferred away)."""
        info = self._calls.get(call_id)
        if info is not None and info.state != "ended":
            info.state = "ended"
            info.updated_at = _now()

    def __len__(self) -> int:
        return len(self._calls)
