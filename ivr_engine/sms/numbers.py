"""Destination numbers, a provider's number rule, the dial string's channel rotation and the
default provider. Pure.

Every number is normalised to E.164 with ``phonenumbers`` (a national number is read in the
configured default region) before the provider's regexp and the do-not-contact match, so
``099 635 199``, ``+59899635199`` and ``0059899635199`` are one number. A number must be
*possible* for its country (right length); ``phonenumbers``' stricter *valid* test would refuse
the 555 numbers tests and demos use.
"""

from __future__ import annotations

import itertools
import re
from typing import Iterable, Iterator, Protocol, Sequence, TypeVar

import phonenumbers


class NumberError(ValueError):
    pass


def to_e164(number: str, region: str | None) -> str:
    """``number`` in E.164 (``+59899635199``); NumberError with the reason otherwise."""
    text = (number or "").strip()
    if not text:
        raise NumberError("the number is empty")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException as exc:
        why = ("a national number needs sms.default_region (or a leading +)"
               if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE
               else str(exc.args[0] if exc.args else exc))
        raise NumberError(f"{number!r} is not a phone number: {why}") from None
    if not phonenumbers.is_possible_number(parsed):
        raise NumberError(f"{number!r} is not a possible number for its country "
                          f"(+{parsed.country_code})")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def check_regexp(e164: str, pattern: re.Pattern[str] | None, provider: str) -> None:
    """NumberError when ``e164`` does not match the provider's ``number_regexp``."""
    if pattern is not None and pattern.search(e164) is None:
        raise NumberError(f"{e164} does not match the number_regexp {pattern.pattern!r} of "
                          f"provider {provider!r}")


# --------------------------------------------------------------------------- dial string


def parse_channels(text: str | None) -> tuple[int, ...]:
    """The dial string: ``0-3`` → 0, 1, 2, 3; ``0,2,5``; ``1-2,7``; empty → no channel."""
    if text is None or not str(text).strip():
        return ()
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d{1,4})(?:\s*-\s*(\d{1,4}))?", part)
        if m is None:
            raise ValueError(f"{part!r} is not a channel or a range like 0-3")
        a, b = int(m.group(1)), int(m.group(2) if m.group(2) is not None else m.group(1))
        if b < a:
            raise ValueError(f"{part!r}: the range ends before it starts")
        if b - a > 1023:
            raise ValueError(f"{part!r}: at most 1024 channels in a range")
        out.extend(range(a, b + 1))
    return tuple(out)


def rotation(channels: Sequence[int]) -> Iterator[int | None]:
    """0, 1, 2, 3, 0, 1, … for ``0-3``; None for ever when there are no channels."""
    return itertools.cycle(channels) if channels else itertools.repeat(None)


# --------------------------------------------------------------------------- default provider


class _Named(Protocol):
    name: str
    default: bool


P = TypeVar("P", bound=_Named)


def default_provider(providers: Iterable[P]) -> P | None:
    """The provider marked default, else the first one (also when the default was deleted);
    None when there is none."""
    items = list(providers)
    marked = [p for p in items if p.default]
    return marked[0] if marked else (items[0] if items else None)

