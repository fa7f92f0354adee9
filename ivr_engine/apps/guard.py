"""Guessing what a PSTN fallback caller presents: tokens and offline codes. Pure: the clock is
the caller's (any monotonic seconds).

A call to an app's fallback number presents, as post-dial DTMF, a one-time **token** (from a
call plan) or an **offline code** (``<session>*<code>``, see lifecycle/offline.py). Without a
limit, many parallel calls could search the token space. The guard holds three rules:

1. **A try is counted before its lookup.** ``admit`` reserves the try in the sliding windows of
   the caller's number and of the app at once, and only a successful lookup gives it back
   (``succeeded``); a wrong one stays counted (``failed``). No number of parallel calls passes
   the limits: the 31st of 60 simultaneous calls already sees 30 tries in the app's window.
2. **Short tokens are limited.** A token of the app's ``token_digits`` is looked up only while
   the caller's number is under ``per_caller`` tries and the app under ``per_app`` tries in
   ``window_seconds``.
3. **An attack costs the attacker, not the users.** When the app reaches ``per_app``, it is
   *hardened*: short tokens are no longer looked up, and every call plan gets a token of
   ``token_digits + hardened_extra_digits`` digits, which is always looked up (its space makes
   guessing hopeless: one try succeeds with probability ``A / 10^(d+k)``). Hardening lasts
   while short tokens keep arriving: every one presented while hardened extends it by
   ``window_seconds``. A plan made for a caller number whose short tries are used up (a
   number someone spoofs to lock its owner out) gets a long token too. Offline codes are
   always looked up too (one try succeeds with
   probability ``look_ahead / 10^code_digits`` against a session the caller names). So a
   caller presenting a valid long token or a valid code is never refused by a limit; only
   short tokens issued in the ``token_ttl_seconds`` before the app hardened are lost.

Bounds (README "Guessing tokens"): an attacker gets at most ``per_app`` short guesses per
attack (hardening sticks while he goes on), each succeeding with probability ``A_s / 10^d``
(``A_s`` unexpired short tokens); then each call succeeds with probability at most
``A_l / 10^(d+k)`` (long tokens) or ``look_ahead / 10^c`` (offline codes).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum


class Kind(str, Enum):
    TOKEN = "token"  # the app's token_digits
    LONG = "long"  # a hardened plan's token: token_digits + hardened_extra_digits
    CODE = "code"  # an offline code: <session>*<code>


@dataclass(frozen=True, slots=True)
class GuessLimits:
    per_caller: int = 3
    per_app: int = 30
    window_seconds: float = 600.0


@dataclass(frozen=True, slots=True)
class Attempt:
    """A try the guard admitted and counted; give it to ``succeeded`` or ``failed``."""

    app: str
    caller: str
    kind: Kind
    at: float
    ref: int | None = None  # its token_failures row (guard_db.py); None in memory


class TokenGuard:
    """The windows of tries per app and per (app, caller number), and each app's hardening."""

    def __init__(self) -> None:
        self._tries: dict[tuple[str, str], deque[float]] = {}
        self._hardened_until: dict[str, float] = {}
        self.refused = 0  # tries not looked up because of a limit

    # ------------------------------------------------------------------ windows

    def _window(self, key: tuple[str, str], window: float, now: float) -> deque[float]:
        times = self._tries.setdefault(key, deque())
        while times and times[0] <= now - window:
            times.popleft()
        return times

    def _forget_empty(self) -> None:
        for key in [k for k, v in self._tries.items() if not v]:
            del self._tries[key]

    def hardened(self, app: str, now: float) -> bool:
        """Is the app under attack (plans get long tokens, short ones are not looked up)?"""
        until = self._hardened_until.get(app)
        if until is None:
            return False
        if until <= now:
            del self._hardened_until[app]
            return False
        return True

    def caller_limited(self, app: str, caller: str, limits: GuessLimits, now: float) -> bool:
        """Has this caller number used up its short tries (someone may be spoofing it)?"""
        times = self._tries.get(("caller", f"{app}|{caller}"))
        return times is not None and sum(t > now - limits.window_seconds for t in times) \
            >= limits.per_caller

    # ------------------------------------------------------------------ tries

    def admit(self, app: str, caller: str, kind: Kind, limits: GuessLimits,
              now: float) -> Attempt | str:
        """Count a try before its lookup: the Attempt to settle, or why it may not be looked
        up (a short token over a limit, or while the app is hardened)."""
        w = limits.window_seconds
        app_tries = self._window(("app", app), w, now)
        caller_tries = self._window(("caller", f"{app}|{caller}"), w, now) if caller else None
        if kind is Kind.TOKEN:
            if self.hardened(app, now):
                self._hardened_until[app] = now + w  # still attacked: it stays hardened
                self.refused += 1
                self._forget_empty()
                return (f"app {app!r} is hardened against guessing (short tokens refused, "
                        "plans get long tokens)")
            if len(app_tries) >= limits.per_app:
                self._hardened_until[app] = now + w
                self.refused += 1
                self._forget_empty()
                return (f"{limits.per_app} tries of tokens for app {app!r} in the last {w:g} s:"
                        " the app hardens (short tokens refused, plans get long tokens)")
            if caller_tries is not None and len(caller_tries) >= limits.per_caller:
                self.refused += 1
                self._forget_empty()
                return f"{limits.per_caller} tries from {caller} in the last {w:g} s"
        app_tries.append(now)
        if caller_tries is not None:
            caller_tries.append(now)
        return Attempt(app, caller, kind, now)

    def succeeded(self, attempt: Attempt) -> None:
        """The lookup matched: the try is given back (a user's own call is never counted)."""
        for key in (("app", attempt.app), ("caller", f"{attempt.app}|{attempt.caller}")):
            times = self._tries.get(key)
            if times is not None:
                try:
                    times.remove(attempt.at)
                except ValueError:  # aged out of the window meanwhile
                    pass
        self._forget_empty()

    def failed(self, attempt: Attempt) -> None:
        """The lookup did not match: the try stays counted (nothing to do)."""

    def __len__(self) -> int:
        """Keys tracked (bounded: at most per_app tries per app per window are kept, and a
        refused try adds nothing)."""
        return len(self._tries) + len(self._hardened_until)
