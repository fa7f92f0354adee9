"""Offline fallback codes (issue 16): a user's call with no data path at all.

The moment PSTN fallback exists for — no data — is the moment the phone cannot fetch a plan
or a token, so with ``block_outside_calls`` the app's own logged-in user would be refused.
At login the session gets an HOTP secret (RFC 4226, via pyotp); the app keeps it with a
counter. Offline, it dials the app's fallback number and, as post-dial DTMF,
``<session id>*<code>#`` where ``code`` is HOTP(secret, counter + 1) and the counter then
moves on. The engine accepts a counter in (last accepted, last + look_ahead] (an app may have
computed codes it never dialled), moves the session's counter there in one compare-and-set
(so a code is accepted once, also by two calls at the same moment), and binds the call to the
session's user. A session that has ended has no valid code.

What such a call carries: the user (verified — the session was opened with the backend's
assertion), the app's default language, no custom data and no deep link (there was no plan).
One try succeeds with probability ``look_ahead / 10^digits`` for the session it names; the
guard counts it like a token (apps/guard.py) but never refuses a code.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any, Callable

import pyotp

log = logging.getLogger("ivr_engine.lifecycle")


def new_secret() -> str:
    """160 random bits, base32 (RFC 4226's recommended length)."""
    return pyotp.random_base32(32)


def code_at(secret: str, counter: int, digits: int) -> str:
    return pyotp.HOTP(secret, digits=digits).at(counter)


def matching_counter(secret: str, code: str, last: int, look_ahead: int,
                     digits: int) -> int | None:
    """The counter in (last, last + look_ahead] whose code is ``code`` (the first one), or
    None. Every candidate is compared, in constant time."""
    found = None
    for counter in range(last + 1, last + look_ahead + 1):
        if hmac.compare_digest(code_at(secret, counter, digits), code) and found is None:
            found = counter
    return found


def parse(presented: str) -> tuple[int, str] | None:
    """``<session>*<code>`` → (session id, code); None when it is not one."""
    sid, star, code = presented.partition("*")
    if not star or not sid.isdigit() or not code.isdigit() or len(sid) > 10:
        return None
    return int(sid), code


@dataclass(frozen=True, slots=True)
class OfflineUser:
    user: str
    session_id: int


class OfflineCodes:
    """Verify an offline code presented on an app's fallback number (the calls' side: it
    is handed to CallServices by the composition root)."""

    def __init__(self, config: Callable[[], Any], repo: Any):
        self._config, self._repo = config, repo

    async def verify(self, app: str, presented: str) -> OfflineUser | None:
        """The session's user when ``presented`` (``<session>*<code>``) is a valid, unused
        code of an open session of ``app``; None otherwise."""
        spec = self._config().model.apps[app].fallback.offline
        parsed = parse(presented)
        if not spec.enabled or parsed is None:
            return None
        sid, code = parsed
        if len(code) != spec.digits:
            return None
        row = await self._repo.fallback_of(sid)
        if row is None or row.app != app or row.active_user is None or \
                not row.fallback_secret:
            return None
        counter = matching_counter(row.fallback_secret, code, row.fallback_counter,
                                   spec.look_ahead, spec.digits)
        if counter is None:
            return None
        if not await self._repo.advance_fallback(sid, row.fallback_counter, counter):
            log.warning("offline code of session %d: counter %d taken by another call first",
                        sid, counter)
            return None
        return OfflineUser(row.user, sid)
