"""Where a waiting call learns that its app registered: the registrations source interface.

Two sources post the same :class:`ContactAvailable` to the calls that wait for an AOR:

* ``watcher.ContactWatcher`` — one per Asterisk node (``engine.registrar.kind: asterisk``):
  the apps register on that node, ARI ``ContactStatusChange`` events;
* ``kamailio.KamailioRegistrations`` — one per engine (``kind: kamailio``): the apps
  register at Kamailio, its ``evapi`` events reach every engine.

Both keep the waits here (:class:`Waiters`), store RFC 8599 push bindings found in a
registered contact with the same writer (:class:`Binder`) and say how a node rings an app
(``dial``): ``PJSIP/<aor>`` on the node, ``PJSIP/<aor>@kamailio`` through Kamailio.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from ..users.directory import by_mobile_endpoint
from .contacts import PushBinding, parse_push_params

log = logging.getLogger("ivr_engine.wakeup")

Post = Callable[[object], None]


@dataclass(frozen=True, slots=True)
class ContactAvailable:
    """Internal event on a call's queue: the AOR it waits for has just registered."""

    aor: str
    uri: str
    at: float  # time.monotonic() when the event reached the engine


class Registrations(Protocol):
    """What the calls (``calls/``) and the ringer use of a registrations source."""

    ready: asyncio.Event  # its events are flowing (else /readyz says why: ``unready``)

    @property
    def unready(self) -> str: ...

    def watch(self, aor: str, post: Post) -> None: ...

    def unwatch(self, aor: str, post: Post) -> None: ...

    def forget(self, post: Post) -> int: ...

    def waiting(self) -> int: ...

    async def reachable(self, endpoint: str) -> bool: ...

    def dial(self, aor: str) -> str: ...


class Waiters:
    """Who waits for which AOR, since when (``time.time()``, for a resync after lost events)."""

    def __init__(self) -> None:
        self._waiters: dict[str, dict[Post, float]] = {}  # aor -> {post: wait start}

    def watch(self, aor: str, post: Post) -> None:
        """``post(ContactAvailable)`` when ``aor`` registers (it puts it on a call's queue)."""
        self._waiters.setdefault(aor, {}).setdefault(post, time.time())

    def unwatch(self, aor: str, post: Post) -> None:
        waiting = self._waiters.get(aor)
        if waiting is not None:
            waiting.pop(post, None)
            if not waiting:
                del self._waiters[aor]

    def forget(self, post: Post) -> int:
        """Drop every wait of ``post`` (a call that ended); returns how many there were."""
        n = 0
        for aor in list(self._waiters):
            if post in self._waiters[aor]:
                n += 1
                self.unwatch(aor, post)
        return n

    def waiting(self) -> int:
        return sum(len(v) for v in self._waiters.values())

    def aors(self) -> dict[str, float]:
        """Each waited AOR and its oldest wait's start."""
        return {aor: min(posts.values()) for aor, posts in self._waiters.items() if posts}

    def notify(self, aor: str, uri: str, since: float | None = None) -> int:
        """Post ContactAvailable to the waits of ``aor`` (``since``: only those that began
        at or before that wall-clock time); returns how many."""
        now = time.monotonic()
        posts = [p for p, start in self._waiters.get(aor, {}).items()
                 if since is None or start <= since]
        for post in posts:
            post(ContactAvailable(aor, uri, now))
        return len(posts)


class Binder:
    """RFC 8599 push parameters of registered contacts, stored as the user's device."""

    def __init__(self, store: Any, config: Callable[[], Any]):
        self.store = store
        self.config = config
        self._bindings: asyncio.Queue[tuple[str, PushBinding]] = asyncio.Queue(1000)

    def offer(self, aor: str, uri: str) -> None:
        binding = parse_push_params(uri)
        if binding is None:
            return
        try:
            self._bindings.put_nowait((aor, binding))
        except asyncio.QueueFull:
            log.error("dropped an RFC 8599 binding for %s (queue full)", aor)

    async def run(self) -> None:
        while True:
            aor, b = await self._bindings.get()
            if self.store is None:
                continue
            try:  # the database's user with this endpoint, else the config's
                found = await by_mobile_endpoint(self.config(), getattr(
                    self.store, "users", None), aor)
                if found is None:
                    log.info("RFC 8599 binding on %s ignored: no user has it as "
                             "mobile_endpoint", aor)
                    continue
                user = found.record
                if not user.app:
                    continue
                await self.store.devices.upsert(
                    user=user.name, app=user.app, platform=b.platform,
                    push_token=None if b.voip else b.prid,
                    voip_token=b.prid if b.voip else None, source="rfc8599")
                log.info("RFC 8599 %s binding stored for user %s (%s)", b.provider, user.name,
                         "voip" if b.voip else "push")
            except Exception:  # noqa: BLE001 - a bad row must not stop later bindings
                log.exception("storing the RFC 8599 binding of %s failed", aor)
