"""Guessing PSTN-fallback tokens: wrong tokens counted per caller number and per app. Pure.

A call to an app's fallback number presents a short numeric token. Without a limit, many
parallel calls could search the token space. Every wrong token is counted in a sliding window
twice: for the caller's number and for the app. Past either limit, calls are treated as
outside the app (the token is not even looked at) until old failures leave the window. The
per-app limit bounds guessing by callers who change their number (caller ID is easily
spoofed): at most ``per_app`` guesses per window, whatever the numbers.

With ``A`` unexpired tokens of ``d`` digits, one guess succeeds with probability ``A / 10^d``;
the expected number of windows before any guess succeeds is ``10^d / (A × per_app)``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GuessLimits:
    per_caller: int = 3
    per_app: int = 30
    window_seconds: float = 600.0


class TokenGuard:
    """Counts failures; ``now`` is any monotonic clock in seconds (the caller supplies it)."""

    def __init__(self) -> None:
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self.refused = 0  # calls treated as outside the app because of a limit

    def _recent(self, key: tuple[str, str], window: float, now: float) -> int:
        times = self._failures.get(key)
        if times is None:
            return 0
        while times and times[0] <= now - window:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0
        return len(times)

    def check(self, app: str, caller: str, limits: GuessLimits, now: float) -> str | None:
        """Why this call may not present a token now (None: it may)."""
        w = limits.window_seconds
        if self._recent(("app", app), w, now) >= limits.per_app:
            self.refused += 1
            return (f"{limits.per_app} wrong tokens for app {app!r} in the last "
                    f"{w:g} s")
        if caller and self._recent(("caller", f"{app}|{caller}"), w, now) >= limits.per_caller:
            self.refused += 1
            return f"{limits.per_caller} wrong tokens from {caller} in the last {w:g} s"
        return None

    def failed(self, app: str, caller: str, now: float) -> None:
        """A wrong (unknown, used or expired) token was presented."""
        self._failures.setdefault(("app", app), deque()).append(now)
        if caller:
            self._failures.setdefault(("caller", f"{app}|{caller}"), deque()).append(now)

    def __len__(self) -> int:
        """Keys tracked (bounded by the limits: at most per_app failures per app per window)."""
        return len(self._failures)
