"""What goes into the spool: a destination normalised to E.164, the message's encoding and
segments, the lane, a fresh idempotency key. Pure (a key is random, nothing else happens)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from .encoding import EncodingError, encode
from .models import SINGLE_LANE, TO_PROCESS
from .numbers import NumberError, check_regexp, default_provider, to_e164

DEFAULT_PRIORITY = 9999  # uContact's examples; lower numbers are sent first
MAX_MESSAGE = 1600  # characters: ten parts of GSM-7, a provider's usual limit or more


class SpoolError(ValueError):
    """A message that cannot be spooled, with the reason (a 4xx, a CSV row error) and the
    field at fault (destination, message, campaign)."""

    def __init__(self, reason: str, field: str):
        super().__init__(reason)
        self.field = field


def spool_row(*, destination: str, message: str, region: str | None, encoding: str,
              now: dt.datetime, lane: str = SINGLE_LANE, campaign: str | None = None,
              priority: int = DEFAULT_PRIORITY, position: int = 0, agent: str | None = None,
              provider: str | None = None) -> dict[str, Any]:
    """The spool row's columns (state TO_PROCESS); SpoolError with the reason."""
    try:
        e164 = to_e164(destination, region)
    except NumberError as exc:
        raise SpoolError(str(exc), "destination") from None
    if len(message) > MAX_MESSAGE:
        raise SpoolError(f"the message has {len(message)} characters; at most {MAX_MESSAGE}",
                         "message")
    try:
        enc = encode(message, encoding)  # type: ignore[arg-type]
    except EncodingError as exc:
        raise SpoolError(str(exc), "message") from None
    return {"lane": lane, "campaign": campaign, "destination": e164, "message": message,
            "priority": priority, "position": position, "state": TO_PROCESS,
            "segments": enc.segments, "encoding": enc.encoding, "idem_key": uuid.uuid4().hex,
            "agent": agent, "provider": provider, "created_at": now}


def provider_spec(sms: Any, name: str | None) -> Any:
    """The named provider of the ``sms`` settings, or the default one; LookupError."""
    spec = (next((p for p in sms.providers if p.name == name), None) if name is not None
            else default_provider(sms.providers))
    if spec is None:
        raise LookupError(f"provider {name!r} is not configured" if name else
                          "no SMS provider is configured (sms.providers)")
    return spec


def single_row(sms: Any, now: dt.datetime, destination: str, message: str, *,
               campaign: str | None = None, agent: str | None = None,
               provider: str | None = None) -> dict[str, Any]:
    """A single send's row (its lane, its provider stamped): SpoolError for an unknown
    campaign, a bad number, one the provider's number_regexp refuses, a bad encoding;
    LookupError when the provider is not configured."""
    if campaign is not None and campaign not in sms.campaigns:
        raise SpoolError(f"campaign {campaign!r} does not exist (sms.campaigns)", "campaign")
    spec = provider_spec(sms, provider or sms.single_provider)
    row = spool_row(destination=destination, message=message, region=sms.default_region,
                    encoding=spec.encoding, now=now, campaign=campaign, agent=agent,
                    provider=spec.name)
    try:
        check_regexp(row["destination"],
                     re.compile(spec.number_regexp) if spec.number_regexp else None, spec.name,
                     spec.match_on, sms.default_region)
    except NumberError as exc:
        raise SpoolError(str(exc), "destination") from None
    return row
