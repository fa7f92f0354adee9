"""The push model every sender shares: what a wake-up carries (:class:`WakePayload`), what a
provider's answer came to (:class:`PushResult`), the configuration error (:class:`PushError`)
and :func:`token_hint`, the short stand-in for a token in logs."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True, slots=True)
class WakePayload:
    call_id: str
    caller_number: str
    caller_name: str
    ring_timeout_seconds: int
    timestamp: str  # ISO-8601 UTC

    @classmethod
    def create(cls, call_id: str, caller_number: str, caller_name: str,
               ring_timeout_seconds: int) -> "WakePayload":
        """A payload stamped now (UTC, second precision, ``Z`` suffix)."""
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        return cls(call_id, caller_number, caller_name, int(ring_timeout_seconds),
                   now.isoformat().replace("+00:00", "Z"))

    def data(self) -> dict[str, str]:
        """The key/value pairs both providers carry (FCM data values must all be strings)."""
        return {
            "type": "incoming_call",
            "call_id": self.call_id,
            "caller_number": self.caller_number,
            "caller_name": self.caller_name,
            "ring_timeout": str(int(self.ring_timeout_seconds)),
            "timestamp": self.timestamp,
        }


@dataclass(frozen=True, slots=True)
class PushResult:
    ok: bool
    provider: str  # "apns" | "fcm"
    status: int | None  # the provider's HTTP status; None when it never answered
    reason: str  # "" when ok; the provider's reason, "timeout", "connection error", ...
    token_invalid: bool  # the provider says the token is dead: forget it
    elapsed_ms: float
    id: str | None = None  # apns-id / FCM message name when accepted


class PushError(Exception):
    """A configuration problem (missing file, unreadable key, missing credentials) — never
    used for what a provider answers."""


def token_hint(token: str | None) -> str:
    """A short stand-in for a token in logs: the first 6 hex chars of its SHA-256."""
    if not token:
        return "-"
    return hashlib.sha256(token.encode()).hexdigest()[:6]


def result_builder(provider: str, what: str, token: str | None,
                   log: logging.Logger) -> Callable[..., PushResult]:
    """For one send: ``result(ok, status, reason, invalid=False, ident=None)`` makes the
    PushResult with the elapsed time since now, and logs it without the token."""
    started = time.monotonic()
    hint = token_hint(token)

    def result(ok: bool, status: int | None, reason: str, invalid: bool = False,
               ident: str | None = None) -> PushResult:
        elapsed = round((time.monotonic() - started) * 1000, 1)
        log.log(logging.DEBUG if ok else logging.INFO, "%s %s to token#%s: %s %s (%.0f ms)",
                provider, what, hint, status if status is not None else "-", reason or "ok",
                elapsed)
        return PushResult(ok, provider, status, reason, invalid, elapsed, ident)

    return result
