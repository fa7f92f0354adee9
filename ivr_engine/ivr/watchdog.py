"""The watchdog policy: how long Asterisk's ``TIMEOUT(absolute)`` lets a caller sit in Stasis
without the engine re-arming it. Pure.

If the engine dies and never comes back, Asterisk takes the caller out of Stasis when the
deadline the channel carries runs out (the dialplan's ``T`` extension: the fallback). The
engine re-arms it before every prompt and at every menu wait, so the deadline follows what
the caller hears:

- a menu waiting ``timeout`` seconds: ``timeout + grace_seconds``;
- a prompt whose length is known (``lengths``: from the sound files, or learned from earlier
  plays of the same media): ``length + grace_seconds``, so a caller of a dead engine hears
  the fallback ``grace_seconds`` after the prompt ends. No request is made when the deadline
  already falls in ``[that, that + grace_seconds]``, nor, when a key stops a prompt to start
  this one (barge-in), when the deadline is later than that: a key costs no extra request
  unless the new prompt would outlast the deadline (the caller of an engine that dies right
  after a barge-in then waits until the stopped prompt's deadline, at most);
- a prompt of unknown length: ``prompt_seconds``, re-armed only when less than half of it
  is left (a caller barging through menus costs no request per key).

The variable is always set before the play (a variable queued behind a play waits for it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

#: the channel variable Asterisk's watchdog reads (func_timeout): seconds from now; 0 disarms
WATCHDOG_VARIABLE = "TIMEOUT(absolute)"

#: a prompt's length in seconds, from its media and language; None when unknown
Lengths = Callable[[tuple[str, ...], str], "float | None"]


@dataclass(frozen=True, slots=True)
class Watchdog:
    """How long Asterisk lets a caller sit in Stasis without the engine re-arming."""

    grace_seconds: float = 3.0  # beyond a menu's wait or a prompt's known end
    prompt_seconds: float = 120.0  # a prompt of unknown length (above the longest prompt)
    lengths: Lengths | None = None

    def wait(self, timeout: float) -> float:
        """Seconds to arm for a menu wait of ``timeout`` (always set: it goes out with
        ``IVR_AWAITING``)."""
        return timeout + self.grace_seconds

    def prompt(self, now: dt.datetime, armed_until: dt.datetime | None,
               media: tuple[str, ...], language: str, *,
               barge_in: bool = False) -> float | None:
        """Seconds to arm before a prompt starts, or None when the channel's deadline
        already suits it (``barge_in``: a key stopped the prompt before this one)."""
        length = self.lengths(media, language) if self.lengths is not None else None
        if length is None:
            seconds = self.prompt_seconds
            if armed_until is not None and \
                    armed_until - now >= dt.timedelta(seconds=seconds / 2):
                return None
            return seconds
        seconds = round(length + self.grace_seconds, 1)
        if armed_until is not None:
            early = armed_until - (now + dt.timedelta(seconds=seconds))
            if early >= dt.timedelta(0) and (
                    barge_in or early <= dt.timedelta(seconds=self.grace_seconds)):
                return None
        return seconds


Variables = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Armed:
    """One call's watchdog: the deadline its channel carries (``until``), and the variable
    that moves it as ``policy`` says (no policy: never armed; simulate, unit tests)."""

    until: dt.datetime | None = None

    def wait(self, policy: Watchdog | None, now: dt.datetime | None,
             timeout: float) -> Variables:
        """The variable for a menu wait of ``timeout`` seconds, if any."""
        if policy is None or now is None:
            return ()
        return self._set(now, policy.wait(timeout))

    def prompt(self, policy: Watchdog | None, now: dt.datetime | None,
               media: tuple[str, ...], language: str, *, barge_in: bool) -> Variables:
        """The variable to set before a prompt, if it needs one."""
        if policy is None or now is None:
            return ()
        seconds = policy.prompt(now, self.until, media, language, barge_in=barge_in)
        return () if seconds is None else self._set(now, seconds)

    def _set(self, now: dt.datetime, seconds: float) -> Variables:
        self.until = now + dt.timedelta(seconds=seconds)
        return ((WATCHDOG_VARIABLE, f"{seconds:g}"),)
