"""What a call is doing now, and the call's own events.

A call in Stasis goes through phases: reading an app's fallback token, the IVR, ringing a
user, talking to that user. The call's session is the one reader of its event queue; it hands
each event to the current phase, which may answer with the next phase. The caller leaving is
handled once, by the session, which tells the phase (:meth:`Phase.caller_left`) so it can
clean up what it owns.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any, Coroutine, Protocol

from ..ari import AriClient, StasisStart
from ..config import Config
from ..ivr.actions import RingUser
from ..ivr.destinations import Destination
from ..ivr.runtime import IvrRuntime


class Phase(Protocol):
    async def handle(self, ev: object) -> "Phase | None":
        """React to one event; return the next phase, or None to stay."""

    async def caller_left(self) -> None:
        """The caller's channel left Stasis or is gone, or the call failed or is stopped by
        the engine: release what this phase holds (a user's legs are hung up)."""


@dataclass(frozen=True, slots=True)
class TransferOutcome:
    """What became of a :class:`TransferRequest`. ``reason``: ``moved`` (over ARI), ``token``
    (the caller is still keying an app token), ``bridged`` (talking to a user), ``ending``
    (the engine is ending the call itself), ``handed-off`` (it left Stasis for the dialplan
    on its own before the transfer could be made), ``ended`` (gone)."""

    reason: str

    @property
    def moved(self) -> bool:
        return self.reason == "moved"


class TransferRequest:
    """From the API: move the caller to ``destination``.

    The requester may give up at any moment; the call never fails because of it. The call
    claims the request before acting on it (:meth:`claim` False: withdrawn, ignore it) and
    settles it once, whatever happens (:meth:`settle`); the requester waits on ``picked`` and
    ``settled`` with its own deadlines and may :meth:`withdraw` a request nobody claimed."""

    def __init__(self, destination: Destination):
        self.destination = destination
        self.outcome: TransferOutcome | None = None
        self.picked = asyncio.Event()  # claimed (or settled) by the call
        self.settled = asyncio.Event()
        self._withdrawn = False

    def claim(self) -> bool:
        if self._withdrawn or self.picked.is_set():
            return False
        self.picked.set()
        return True

    def withdraw(self) -> bool:
        """The requester gives up: True when the call had not claimed it (nothing done)."""
        if self.picked.is_set():
            return False
        self._withdrawn = True
        return True

    def settle(self, reason: str) -> None:
        if self.outcome is None:
            self.outcome = TransferOutcome(reason)
        self.picked.set()
        self.settled.set()


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A wait of the runtime (a menu's Collect) ran out."""

    token: str


@dataclass(frozen=True, slots=True)
class TokenTimeout:
    """The wait for an app's ``<token>#`` ran out."""


class Call(Protocol):
    """What a phase may use of its call (``session.CallSession`` is the one implementation)."""

    ari: AriClient
    node: Any  # node.AsteriskNode: its dispatcher, its contact watcher
    channel_id: str
    start: StasisStart
    config: Config
    services: Any  # session.CallServices
    info: Any  # registry.CallInfo, once the call is routed
    runtime: IvrRuntime | None
    announced: bool  # its exit went to the webhooks (exits.py)

    def clock(self) -> dt.datetime: ...
    def spawn(self, coro: Coroutine) -> asyncio.Task: ...
    def post(self, event: object) -> None: ...
    def attach(self, channel_id: str) -> None: ...
    def detach(self, channel_id: str) -> None: ...
    def playback_id(self, name: str) -> str: ...
    def prompt(self, name: str) -> tuple[tuple[str, ...], str]: ...
    def new_runtime(self, menu: str, language: str, label: str,
                    app: str | None) -> IvrRuntime: ...
    def register(self, label: str, via: str, app: str | None, root: str, language: str,
                 custom: dict[str, str], user: str | None = None) -> None: ...
    def record(self, state: str) -> None: ...
    async def ring(self, ivr: Any, a: RingUser) -> Phase | None: ...
    async def rescue(self) -> None: ...
