"""VoIP or PSTN? The call plan the SDK asks for, and its one-time token. Pure.

The SDK sends a connectivity score (0..1). The app calls over VoIP when the score is above
the app's threshold and the threshold is below 1; otherwise (and always when the app reports
no usable data path) it dials the app's PSTN fallback number followed by a short one-time
token as post-dial DTMF: ``+17144505656,,482913#``. The engine reads the token when the call
arrives, which ties the PSTN call to the app, its language and its custom data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..routing.entry import AppEntry

MAX_CUSTOM_KEYS = 20
MAX_CUSTOM_VALUE = 256
_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")


class PlanError(ValueError):
    """The request cannot get a plan; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, title: str, detail: str, reason: str | None = None):
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.reason = reason  # an inactive app's (AppEntry.inactive_reason)


@dataclass(frozen=True, slots=True)
class CallPlan:
    mode: str  # voip | pstn
    reason: str
    number: str | None = None


def plan_call(app: AppEntry, score: float, data_path: bool = True) -> CallPlan:
    if not app.active:
        raise PlanError(409, "App inactive", app.inactive_detail(), app.inactive_reason)
    if not 0 <= score <= 1:
        raise PlanError(422, "Invalid connectivity", "connectivity must be between 0 and 1")
    number, threshold = app.fallback_number, app.threshold
    if not data_path:
        if number is None:
            raise PlanError(409, "No fallback number",
                            f"no usable data path and app {app.app!r} has no PSTN fallback number",
                            "no-fallback-number")
        return CallPlan("pstn", "no usable data path", number)
    if number is None or threshold is None:
        return CallPlan("voip", "the app has no PSTN fallback number")
    if threshold < 1 and score > threshold:
        return CallPlan("voip", f"connectivity {score:g} > threshold {threshold:g}")
    if threshold >= 1:
        return CallPlan("pstn", "threshold 1: always PSTN", number)
    return CallPlan("pstn", f"connectivity {score:g} <= threshold {threshold:g}", number)


def check_room(active: int, digits: int) -> None:
    """A new token may be drawn while the app's unexpired tokens fill at most half of the
    space (a random draw then finds a free value in two tries on average)."""
    if active >= 10 ** digits // 2:
        raise PlanError(503, "Too many pending calls",
                        "too many unexpired call tokens for this app; retry shortly")


def draw_token(digits: int, randbelow: Callable[[int], int]) -> str:
    """A random token of ``digits`` digits (leading zeros kept)."""
    return str(randbelow(10 ** digits)).zfill(digits)


def dial_string(number: str, token: str) -> str:
    """What the phone dials: two pauses, then the token and ``#``."""
    return f"{number},,{token}#"


def clean_custom_data(data: Any) -> dict[str, str]:
    """Custom data from the SDK → ``{key: str}``; ValueError names the first bad field."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError("custom_data must be an object of simple values")
    if len(data) > MAX_CUSTOM_KEYS:
        raise ValueError(f"custom_data has {len(data)} keys; at most {MAX_CUSTOM_KEYS}")
    out: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise ValueError(f"custom_data key {key!r}: letters, digits and _, starting with a "
                             "letter, at most 32")
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)):
            value = repr(value) if isinstance(value, float) else str(value)
        elif not isinstance(value, str):
            raise ValueError(f"custom_data.{key}: only strings, numbers and booleans")
        if len(value) > MAX_CUSTOM_VALUE or not value.isprintable():
            raise ValueError(f"custom_data.{key}: at most {MAX_CUSTOM_VALUE} printable "
                             "characters")
        out[key] = value
    return out
