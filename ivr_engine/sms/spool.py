"""What goes into the spool: a destination normalised to E.164, the message's encoding and
segments, the lane, a fresh idempotency key. Pure (a key is random, nothing else happens)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from .encoding import EncodingError, encode
from .models import SINGLE_LANE, TO_PROCESS
from .numbers import NumberError, to_e164

DEFAULT_PRIORITY = 9999  # uContact's examples; lower numbers are sent first
MAX_MESSAGE = 1600  # characters: ten parts of GSM-7, a provider's usual limit or more


class SpoolError(ValueError):
    """A message that cannot be spooled, with the reason (a 4xx, a CSV row error)."""


def spool_row(*, destination: str, message: str, region: str | None, encoding: str,
              now: dt.datetime, lane: str = SINGLE_LANE, campaign: str | None = None,
              priority: int = DEFAULT_PRIORITY, position: int = 0, agent: str | None = None,
              provider: str | None = None) -> dict[str, Any]:
    """The spool row's columns (state TO_PROCESS); SpoolError with the reason."""
    try:
        e164 = to_e164(destination, region)
    except NumberError as exc:
        raise SpoolError(str(exc)) from None
    if len(message) > MAX_MESSAGE:
        raise SpoolError(f"the message has {len(message)} characters; at most {MAX_MESSAGE}")
    try:
        enc = encode(message, encoding)  # type: ignore[arg-type]
    except EncodingError as exc:
        raise SpoolError(str(exc)) from None
    return {"lane": lane, "campaign": campaign, "destination": e164, "message": message,
            "priority": priority, "position": position, "state": TO_PROCESS,
            "segments": enc.segments, "encoding": enc.encoding, "idem_key": uuid.uuid4().hex,
            "agent": agent, "provider": provider, "created_at": now}
