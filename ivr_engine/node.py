"""One Asterisk as the engine sees it: the calls' ARI application (client, per-channel
dispatcher, event filter, take-over of calls on every (re)connect), the registrations'
application (``wakeup/watcher.py``) and, when configured, AMI. The engine holds a list of
nodes; a second Asterisk is one more node, not a rewrite.

Each event reaches one call once: the calls' application holds no ``endpoint:`` subscription
(Asterisk would repeat the channel events of that endpoint's calls); one left by an earlier
engine is dropped on connect. On every (re)connect, the events of channels nobody has
registered yet are held until the calls already in the application are taken back, and the
calls handed to the dialplan whose channel Asterisk no longer has are marked ended (their
``ChannelDestroyed`` was lost with the connection).

Before each (re)connect of either application the node reads ``/ari/asterisk/info``: a node
of ``engine.nodes`` whose Asterisk says no system name, or another one, is refused (nothing
subscribed, so its calls get the dialplan fallback; ``refused`` says why in ``/readyz``,
``ivr_node_refused_total``): channel ids are unique across nodes only by their system names.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Protocol

from . import metrics
from .ami import AmiClient
from .ari import (
    AriClient,
    AriError,
    ChannelDestroyed,
    ChannelDispatcher,
    Event,
    StasisStart,
    parse_event,
)
from .calls.takeover import Orphan, find_orphans
from .wakeup.watcher import ContactWatcher, registrations_app

log = logging.getLogger("ivr_engine.node")


def identity_problem(info: Any, expected: str | None) -> tuple[str, str] | None:
    """Why an Asterisk whose ``/ari/asterisk/info`` is ``info`` is not the node named
    ``expected`` — ``(metric reason, message)`` — or None when it is (``expected`` None: the
    one-node shorthand, not checked)."""
    if expected is None:
        return None
    config = info.get("config") if isinstance(info, dict) else None
    name = str((config or {}).get("name") or "").strip()
    if not name:
        return ("no-system-name", f"it has no system name; set systemname = {expected} in "
                "its asterisk.conf [options] (channel ids are unique across nodes only by "
                "their system names)")
    if name != expected:
        return ("wrong-system-name", f"its system name is {name!r}, not {expected!r} "
                "(engine.nodes[].name): the URL points at another node")
    return None

#: the only events the calls' application receives; Asterisk drops the rest before sending
CALL_EVENTS = ("StasisStart", "StasisEnd", "ChannelDtmfReceived", "PlaybackFinished",
               "ChannelStateChange", "ChannelDestroyed", "ApplicationReplaced")

#: bound on the unsubscribe loop (a stale subscription counts one per subscribe call)
MAX_UNSUBSCRIBES = 100


class CallSink(Protocol):
    """Where a node sends its calls (``calls/manager.py``)."""

    def start(self, node: "AsteriskNode", ev: StasisStart, *, taken_over: bool = False,
              bridged_with: str | None = None) -> bool: ...

    def ended(self, channel_id: str) -> None: ...

    def reconcile(self, node: "AsteriskNode", present: set[str]) -> list[str]: ...

    def __contains__(self, channel_id: object) -> bool: ...


class AsteriskNode:
    def __init__(self, name: str, ari: AriClient, registrations: AriClient | None,
                 calls: CallSink, store: Any, config: Callable[[], Any],
                 ami: AmiClient | None = None, system_name: str | None = None,
                 registrar: Any = None):
        self.name = name
        self.system_name = system_name  # what Asterisk must say (None: not checked)
        self.refused: str | None = None  # why the last identity check refused it
        self.config = config
        self.ari = ari
        self.calls = calls
        self.ami = ami
        # where its calls learn that an app registered: the node's own registrations
        # application, or the engine's one registrar shared by its nodes (Kamailio)
        self._watcher = ContactWatcher(registrations, store, config) \
            if registrar is None and registrations is not None else None
        self.contacts: Any = self._watcher if self._watcher is not None else registrar
        assert self.contacts is not None, "a node needs registrations or a registrar"
        self.dispatcher = ChannelDispatcher(self._on_stasis_start, on_other=self._on_other)
        self.calls_ready = asyncio.Event()  # filter set and calls taken back since connect
        self._connected = asyncio.Event()
        self._down = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self._connects = 0
        ari.on_connected = self._on_connected
        ari.on_disconnected = self._on_disconnected
        ari.before_connect = lambda: self._verify(ari)
        if self._watcher is not None:
            self._watcher.ari.before_connect = lambda: self._verify(self._watcher.ari)

    @classmethod
    def from_settings(cls, settings: Any, calls: CallSink, store: Any,
                      config: Callable[[], Any], registrar: Any = None) -> "AsteriskNode":
        """The clients for one node's settings (``config.model_nodes.NodeConfig``), not
        opened yet; ``registrar``: the engine's registrations source when the apps do not
        register on the node (``wakeup/kamailio.py``)."""
        a = settings.ari
        password = a.password.get_secret_value()
        ari = AriClient(a.url, a.username, password, a.app,
                        reconnect_max=a.reconnect_max_seconds, transport=a.transport)
        registrations = None if registrar is not None else AriClient(
            a.url, a.username, password, registrations_app(a.app),
            reconnect_max=a.reconnect_max_seconds, max_connections=4)
        ami = None
        m = settings.ami
        if m.password is not None and m.password.get_secret_value():
            ami = AmiClient(m.host, m.port, m.username, m.password.get_secret_value())
        return cls(settings.name, ari, registrations, calls, store, config, ami,
                   settings.system_name, registrar)

    async def __aenter__(self) -> "AsteriskNode":
        await self.ari.open()
        if self._watcher is not None:
            await self._watcher.ari.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._watcher is not None:
            await self._watcher.ari.close()
        await self.ari.close()

    @property
    def ready(self) -> bool:
        return self.calls_ready.is_set() and self.contacts.ready.is_set()

    async def run(self) -> None:
        """The node's connections until cancelled (AriAppReplaced ends it: another engine)."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            tg.create_task(self.ari.run(self.dispatcher), name=f"{self.name}-calls-app")
            tg.create_task(self._take_over(), name=f"{self.name}-take-over")
            tg.create_task(self._report_ready(), name=f"{self.name}-ready")
            if self._watcher is not None:  # else the engine runs its registrar
                tg.create_task(self._watcher.run(), name=f"{self.name}-registrations")
            if self.ami is not None:
                tg.create_task(self.ami.run(), name=f"{self.name}-ami")

    # ------------------------------------------------------------------ connection

    async def _verify(self, client: AriClient) -> None:
        """Before ``client`` connects: is this Asterisk the node it should be? AriError (the
        client backs off and tries again) when it cannot be read or is refused."""
        try:
            info = await client.asterisk_info()
        except AriError as exc:
            log.warning("node %s: cannot read %s/asterisk/info: %s", self.name,
                        client.api_url, exc)
            raise
        problem = identity_problem(info, self.system_name)
        if problem is None:
            if self.refused is not None:
                log.info("node %s: %s now says system name %r: accepted", self.name,
                         client.api_url, self.system_name)
            self.refused = None
            return
        reason, message = problem
        self.refused = f"Asterisk at {client.base_url} refused: {message}"
        metrics.NODE_REFUSED.labels(self.name, reason).inc()
        log.error("node %s: %s; ARI app %r not connected", self.name, self.refused, client.app)
        raise AriError(0, "GET", "/asterisk/info", self.refused)

    def _on_connected(self) -> None:
        # synchronously, before the first event of the new websocket: the events of calls
        # still in the application wait until those calls are taken back
        self.dispatcher.hold()
        self._connected.set()
        if self._connects:
            metrics.RECONNECTS.labels("ari-calls").inc()
        self._connects += 1

    def _on_disconnected(self) -> None:
        self.calls_ready.clear()
        self._down.set()

    async def _take_over(self) -> None:
        """After each (re)connect: the event filter, then every call already in the app."""
        while True:
            await self._connected.wait()
            self._connected.clear()
            try:
                await self.ari.set_event_filter(CALL_EVENTS)
                await self._drop_endpoint_subscriptions()
                channels = await self.ari.list_channels()
                orphans = await find_orphans(self.ari, self.dispatcher, channels)
            except (AriError, OSError) as exc:
                log.error("taking back the calls in ARI app %r failed: %s; retrying",
                          self.ari.app, exc)
                await asyncio.sleep(1)
                self._connected.set()
                continue
            for orphan in sorted(orphans, key=lambda o: o.is_leg):
                self._adopt(orphan, orphans)
            lost = self.calls.reconcile(self, {str(c.get("id")) for c in channels})
            if lost:
                log.warning("%d handed-off call(s) ended while ARI was disconnected: %s",
                            len(lost), ", ".join(lost[:10]))
            self.dispatcher.release()
            self.calls_ready.set()
            log.info("connected to ARI at %s as app %r (%d calls taken back)",
                     self.ari.base_url, self.ari.app, sum(not o.is_leg for o in orphans))

    async def _drop_endpoint_subscriptions(self) -> None:
        """The calls app must hold no ``endpoint:`` subscription: Asterisk would send it the
        channel events of that endpoint's channels a second time (every key twice). One may
        be left by an earlier engine version or by hand; registrations have their own app."""
        for _ in range(MAX_UNSUBSCRIBES):  # subscriptions are counted: one unsubscribe each
            endpoints = (await self.ari.get_application()).get("endpoint_ids") or []
            if not endpoints:
                return
            for endpoint in endpoints:
                await self.ari.unsubscribe(f"endpoint:{endpoint}")
                log.warning("dropped a subscription endpoint:%s of ARI app %r: it repeats the "
                            "channel events of that endpoint's calls", endpoint, self.ari.app)
        raise AriError(0, "DELETE", "subscription", "endpoint subscriptions keep coming back")

    def _adopt(self, orphan: Orphan, orphans: list[Orphan]) -> None:
        if orphan.is_leg:
            caller = orphan.bridged_with
            if caller is None or caller not in self.calls:
                log.warning("hanging up %s: a user's leg whose call is gone", orphan.id)
                self._spawn(self._hangup(orphan.id), f"orphan-{orphan.id}")
            return
        leg = orphan.bridged_with
        if leg is not None and not any(o.id == leg and o.is_leg for o in orphans):
            leg = None  # bridged with something that is not our leg: resume it as a caller
        start = parse_event({"type": "StasisStart", "application": self.ari.app,
                             "timestamp": "", "args": list(orphan.args),
                             "channel": orphan.channel})
        assert isinstance(start, StasisStart)
        self._start(start, taken_over=True, bridged_with=leg)

    async def _report_ready(self) -> None:
        """One log line whenever both applications are ready (tests and the demo wait for it)."""
        while True:
            await self.calls_ready.wait()
            await self.contacts.ready.wait()
            log.info("engine ready: calls app %r, registrations %s", self.ari.app,
                     f"app {self._watcher.ari.app!r}" if self._watcher is not None
                     else "from the registrar")
            await self._down.wait()
            self._down.clear()

    # ------------------------------------------------------------------ events

    def _spawn(self, coro: Any, name: str) -> None:
        assert self._tg is not None
        self._tg.create_task(coro, name=name)

    def _on_stasis_start(self, ev: StasisStart) -> None:
        if ev.args and ev.args[0] == "leg":
            # a user's leg whose call is already gone: nobody will bridge it
            self._spawn(self._hangup(ev.channel.id), f"orphan-{ev.channel.id}")
            return
        self._start(ev)

    def _start(self, ev: StasisStart, **kw: Any) -> None:
        if not self.calls.start(self, ev, **kw):
            log.warning("call %s arrived while the engine is stopping: dialplan fallback",
                        ev.channel.id)
            self._spawn(self._fallback(ev.channel.id), f"fallback-{ev.channel.id}")

    def _on_other(self, ev: Event) -> None:
        """Events of channels no call reads: a call handed to the dialplan has gone."""
        if isinstance(ev, ChannelDestroyed):
            self.calls.ended(ev.channel.id)

    async def _fallback(self, channel_id: str) -> None:
        try:
            context = self.config().engine.dialplan.fallback
            await self.ari.continue_in_dialplan(channel_id, context=context, extension="s",
                                                priority=1)
        except AriError:
            pass

    async def _hangup(self, channel_id: str) -> None:
        try:
            await self.ari.hangup(channel_id)
        except AriError:
            pass
