"""What became of a callback, to the webhooks: ``callback.completed``, ``callback.failed``,
``callback.expired``, in the shape of every call event (``calls/exits.py``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..calls.exits import payload
from ..ivr.destinations import Destination
from .policy import FINAL


def callback_event(row: Any, now: dt.datetime) -> dict[str, Any]:
    """``callback.<state>`` for a request in a final state."""
    return payload(
        f"callback.{row.state}", call_id=row.channel_id, info=row,
        path=[p for p in row.path.split("/") if p],
        destination=Destination("callback", row.queue), reason=row.last_outcome or row.state,
        timestamp=now, callback={"id": row.id, "state": row.state, "attempts": row.attempts,
                                 "outcome": row.last_outcome})


def announce_callback(notifier: Any, row: Any, now: dt.datetime) -> None:
    if notifier is not None and row.state in FINAL:
        notifier.notify(callback_event(row, now))
