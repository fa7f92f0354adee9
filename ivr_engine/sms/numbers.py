r"""Destination numbers, a provider's number rule, the dial string's channel rotation and the
default provider. Pure.

Every number is normalised to E.164 with ``phonenumbers`` (a national number is read in the
configured default region) before the provider's regexp and the do-not-contact match, so
``099 635 199``, ``+59899635199`` and ``0059899635199`` are one number. A number must be
*possible* for its country (right length); ``phonenumbers``' stricter *valid* test would refuse
the 555 numbers tests and demos use.

A provider's ``number_regexp`` is matched against the E.164 form (``match_on: e164``), or
against the number as it is dialled from ``sms.default_region`` (``match_on: national``:
digits only, trunk prefix kept, ``099635199`` for ``+59899635199`` in UY; a number of another
country in its international dialling form, ``0033612345678``), so uContact's
``^(09\d{7})$`` works unchanged.
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


def dialled(e164: str, region: str | None) -> str:
    """``e164`` as dialled from ``region``: its digits, national trunk prefix included for a
    number of that region (``099635199``), the international prefix for another
    (``0033612345678``); the E.164 form when there is no region or it cannot be read."""
    if not region:
        return e164
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    text = phonenumbers.format_out_of_country_calling_number(parsed, region)
    return re.sub(r"[^0-9+]", "", text)


def check_regexp(e164: str, pattern: re.Pattern[str] | None, provider: str,
                 match_on: str = "e164", region: str | None = None) -> None:
    """NumberError when ``e164`` (or its dialled form, ``match_on: national``) does not match
    the provider's ``number_regexp``."""
    if pattern is None:
        return
    form = dialled(e164, region) if match_on == "national" else e164
    if pattern.search(form) is None:
        shown = e164 if form == e164 else f"{e164} (dialled {form})"
        raise NumberError(f"{shown} does not match the number_regexp {pattern.pattern!r} of "
                          f"provider {provider!r}" + (" (match_on: national)"
                                                      if match_on == "national" else ""))


# --------------------------------------------------------------------------- dial string


_CHANNELS = re.compile(r"(\d{1,4})(?:\s*-\s*(\d{1,4}))?"  # 0, 0-3
                       r"|\(\s*(\d{1,4})\s*(?:\.\s*(\d{1,4})\s*)?\)")  # (0.3), (2): uContact


def parse_channels(text: str | None) -> tuple[int, ...]:
    """The dial string: ``0-3`` or uContact's ``(0.3)`` → 0, 1, 2, 3; ``0,2,5``; ``1-2,7``;
    empty → no channel."""
    if text is None or not str(text).strip():
        return ()
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        m = _CHANNELS.fullmatch(part)
        if m is None:
            raise ValueError(f"{part!r} is not a channel or a range like 0-3 or (0.3)")
        first, last = (m.group(1), m.group(2)) if m.group(3) is None else m.group(3, 4)
        a, b = int(first), int(last if last is not None else first)
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

