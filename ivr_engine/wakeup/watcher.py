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
from typing import Any, Callable

from .. import metrics
from ..ari import AriClient, AriError, ContactStatusChange, Event
from .contacts import AVAILABLE, aor_of
from .registrations import Binder, ContactAvailable, Waiters

__all__ = ["ContactAvailable", "ContactWatcher", "registrations_app"]

log = logging.getLogger("ivr_engine.wakeup")

#: the only events the registrations application receives (Asterisk drops the rest)
REGISTRATION_EVENTS = ("ContactStatusChange", "ApplicationReplaced")


def registrations_app(calls_app: str) -> str:
    """The ARI application name that carries registrations for the calls' application."""
    return f"{calls_app}-registrations"


class ContactWatcher(Waiters):
    """The registrations of one node (``registrations.Registrations``). ``ari`` is the
    registrations application's own client (opened by the caller); the watcher runs its
    websocket."""

    def __init__(self, ari: AriClient, store: Any, config: Callable[[], Any]):
        super().__init__()
        self.ari = ari
        self.binder = Binder(store, config)
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
        self.notify(aor, ev.uri)
        self.binder.offer(aor, ev.uri)

    @property
    def unready(self) -> str:
        return "registrations application not subscribed"

    def dial(self, aor: str) -> str:
        """The app registered on this node: ring its endpoint there."""
        return f"PJSIP/{aor}"

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
            tg.create_task(self.binder.run())

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
