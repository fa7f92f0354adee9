"""Registrations as events: who is waiting for which AOR, and RFC 8599 push bindings.

Registrations arrive on an ARI application of their own, ``<app>-registrations``, subscribed
to ``endpoint:PJSIP`` (again after each reconnect) with an event filter that lets only
``ContactStatusChange`` through. It must not be the calls' application: Asterisk sends an
application subscribed to an endpoint the channel events of that endpoint's channels too, so
every key of a PJSIP caller would reach the call twice.

Asterisk sends a ``ContactStatusChange`` the moment a REGISTER creates a contact. A call
waiting for that AOR gets a :class:`ContactAvailable` posted on its own event queue at once:
no polling. Push parameters found in the contact URI are stored as the user's device.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from .. import metrics
from ..ari import AriClient, AriError, ContactStatusChange, Event
from ..users.directory import by_mobile_endpoint
from .contacts import AVAILABLE, PushBinding, aor_of, parse_push_params

log = logging.getLogger("ivr_engine.wakeup")

#: the only events the registrations application receives (Asterisk drops the rest)
REGISTRATION_EVENTS = ("ContactStatusChange", "ApplicationReplaced")


def registrations_app(calls_app: str) -> str:
    """The ARI application name that carries registrations for the calls' application."""
    return f"{calls_app}-registrations"


@dataclass(frozen=True, slots=True)
class ContactAvailable:
    """Internal event on a call's queue: the AOR it waits for has just registered."""

    aor: str
    uri: str
    at: float  # time.monotonic() when the event reached the engine


class ContactWatcher:
    """``ari`` is the registrations application's own client (opened by the caller); the
    watcher runs its websocket."""

    def __init__(self, ari: AriClient, store: Any, config: Callable[[], Any]):
        self.ari = ari
        self.store = store
        self.config = config
        self._waiters: dict[str, set[Callable[[object], None]]] = {}  # aor -> posts
        self._bindings: asyncio.Queue[tuple[str, PushBinding]] = asyncio.Queue(1000)
        self._resubscribe = asyncio.Event()
        self.ready = asyncio.Event()  # subscribed since the last (re)connect
        self._connects = 0
        ari.on_connected = self._on_connected
        ari.on_disconnected = self.ready.clear

    def _on_connected(self) -> None:
        self._resubscribe.set()  # subscriptions are made again after each (re)connect
        if self._connects:
            metrics.RECONNECTS.labels("ari-registrations").inc()
        self._connects += 1

    # ------------------------------------------------------------------ events

    def handle(self, ev: Event) -> None:
        """Called synchronously for each event of the registrations application."""
        if not isinstance(ev, ContactStatusChange):
            return
        if ev.contact_status not in AVAILABLE:
            return
        aor = aor_of(ev.aor or ev.endpoint_resource)
        now = time.monotonic()
        for post in self._waiters.get(aor, ()):
            post(ContactAvailable(aor, ev.uri, now))
        binding = parse_push_params(ev.uri)
        if binding is not None:
            try:
                self._bindings.put_nowait((aor, binding))
            except asyncio.QueueFull:
                log.error("dropped an RFC 8599 binding for %s (queue full)", aor)

    def watch(self, aor: str, post: Callable[[object], None]) -> None:
        """``post(ContactAvailable)`` when ``aor`` registers (it puts it on a call's queue)."""
        self._waiters.setdefault(aor, set()).add(post)

    def unwatch(self, aor: str, post: Callable[[object], None]) -> None:
        waiting = self._waiters.get(aor)
        if waiting is not None:
            waiting.discard(post)
            if not waiting:
                del self._waiters[aor]

    def forget(self, post: Callable[[object], None]) -> int:
        """Drop every wait of ``post`` (a call that ended); returns how many there were."""
        n = 0
        for aor in list(self._waiters):
            if post in self._waiters[aor]:
                n += 1
                self.unwatch(aor, post)
        return n

    def waiting(self) -> int:
        return sum(len(v) for v in self._waiters.values())

    async def reachable(self, endpoint: str) -> bool:
        """Has the endpoint a usable registration right now (ARI endpoint state online)?"""
        try:
            ep = await self.ari.get_endpoint("PJSIP", endpoint)
        except AriError:
            return False
        return bool(ep) and ep.get("state") == "online"

    # ------------------------------------------------------------------ the engine's task

    async def run(self) -> None:
        """The registrations websocket, its subscription, the RFC 8599 binding writer."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.ari.run(self.handle), name="ari-registrations")
            tg.create_task(self._subscriber())
            tg.create_task(self._binder())

    async def _subscriber(self) -> None:
        subscribed = False
        try:
            while True:
                await self._resubscribe.wait()
                self._resubscribe.clear()
                try:
                    await self.ari.set_event_filter(REGISTRATION_EVENTS)
                    await self.ari.subscribe("endpoint:PJSIP")
                    subscribed = True
                    self.ready.set()
                    log.info("subscribed to PJSIP endpoint events (registrations, app %r)",
                             self.ari.app)
                except (AriError, OSError) as exc:
                    log.error("cannot subscribe to PJSIP endpoint events: %s", exc)
                    await asyncio.sleep(1)
                    self._resubscribe.set()
        finally:
            if subscribed:
                # an explicit subscription keeps the ARI application alive in Asterisk
                # after the engine is gone: drop it on the way out
                try:
                    async with asyncio.timeout(2):
                        await self.ari.unsubscribe("endpoint:PJSIP")
                except (AriError, OSError, TimeoutError):
                    pass

    async def _binder(self) -> None:
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
