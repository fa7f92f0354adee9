"""Which entry point does a call take? Pure decisions over the compiled config."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from ..ivr.destinations import Destination
from ..ivr.tree import EntryPoint


@dataclass(frozen=True, slots=True)
class EntryDecision:
    """Either a menu to start in (``entry``) or a destination to go to at once."""

    entry: EntryPoint | None
    destination: Destination | None
    label: str
    language: str


def normalize_number(number: str) -> str:
    """Drop spaces, dashes, dots and parentheses; keep a leading +."""
    return re.sub(r"[\s\-.()]", "", number or "")


def resolve_pstn(entries: Mapping[str, EntryPoint], did: str, *, unknown: Destination,
                 default_language: str) -> EntryDecision:
    """Match the dialled number against phone-number access points.

    An exact match wins; otherwise the number is tried with its leading ``+`` added or
    removed, because trunks differ on whether they send E.164 with the plus.
    """
    n = normalize_number(did)
    candidates = [n, n[1:] if n.startswith("+") else "+" + n]
    for c in candidates:
        ep = entries.get(c)
        if ep is not None:
            return EntryDecision(ep, None, ep.label, ep.language)
    return EntryDecision(None, unknown, f"did:{n}" if n else "did:unknown", default_language)
