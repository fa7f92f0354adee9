"""The engine: the calls' ARI application, one task per call, config reloads on SIGHUP.

Task structure (no task is ever created outside a TaskGroup):

    run_engine TaskGroup
      ├── AriClient.run (calls app websocket, reconnects)  ── events ──► ChannelDispatcher
      ├── take-over: on each (re)connect, the event filter, then every call already in the
      │   application is taken back (resumed, or sent to the fallback)
      ├── ContactWatcher.run (registrations app websocket: ContactStatusChange only)
      ├── HTTP API (aiohttp), AMI connection (panoramisk), context-webhook sender
      └── CallSession.run × N, each with its own TaskGroup (event loop, digit timer)
    SIGTERM/SIGINT stop it; SIGHUP reloads the config.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from ..ami import AmiClient
from ..api import ApiContext, build_app, serve
from ..ari import (
    AriAppReplaced,
    AriClient,
    AriError,
    ChannelDestroyed,
    ChannelDispatcher,
    Event,
    StasisStart,
    parse_event,
)
from ..config import Config
from ..config.reloader import ConfigHolder
from ..push import PushService
from ..store import Store
from ..wakeup.watcher import ContactWatcher, registrations_app
from .registry import CallRegistry
from .session import CallServices, CallSession
from .takeover import Orphan, find_orphans
from .webhook import ContextNotifier

log = logging.getLogger("ivr_engine.engine")

#: bound on the unsubscribe loop (a stale subscription counts one per subscribe call)
MAX_UNSUBSCRIBES = 100

#: the only events the calls' application receives; Asterisk drops the rest before sending
CALL_EVENTS = ("StasisStart", "StasisEnd", "ChannelDtmfReceived", "PlaybackFinished",
               "ChannelStateChange", "ChannelDestroyed", "ApplicationReplaced")


class Engine:
    def __init__(self, holder: ConfigHolder, ari: AriClient, registrations: AriClient,
                 services: CallServices, ami: AmiClient | None = None):
        self.holder = holder
        self.ari = ari
        self.services = services
        self.ami = ami
        self.contacts = ContactWatcher(registrations, services.store, lambda: self.holder.current)
        self.dispatcher = ChannelDispatcher(self._on_stasis_start, on_other=self._on_other)
        services.dispatcher = self.dispatcher
        services.contacts = self.contacts
        self._tg: asyncio.TaskGroup | None = None
        self.calls: dict[str, CallSession] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._connected = asyncio.Event()  # the calls app's websocket came (back) up
        self._down = asyncio.Event()
        self.calls_ready = asyncio.Event()  # filter set and calls taken back since then
        ari.on_connected = self._on_connected
        ari.on_disconnected = self._on_disconnected

    # ------------------------------------------------------------------ ARI connection

    def _on_connected(self) -> None:
        # synchronously, before the first event of the new websocket: the events of calls
        # still in the application wait until those calls are taken back
        self.dispatcher.hold()
        self._connected.set()

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
                orphans = await find_orphans(self.ari, self.dispatcher)
            except (AriError, OSError) as exc:
                log.error("taking back the calls in ARI app %r failed: %s; retrying",
                          self.ari.app, exc)
                await asyncio.sleep(1)
                self._connected.set()
                continue
            for orphan in sorted(orphans, key=lambda o: o.is_leg):
                self._adopt(orphan, orphans)
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
                self._spawn(self._hangup_orphan(orphan.id), f"orphan-{orphan.id}")
            return
        leg = orphan.bridged_with
        if leg is not None and not any(o.id == leg and o.is_leg for o in orphans):
            leg = None  # bridged with something that is not our leg: resume it as a caller
        start = parse_event({"type": "StasisStart", "application": self.ari.app,
                             "timestamp": "", "args": list(orphan.args),
                             "channel": orphan.channel})
        assert isinstance(start, StasisStart)
        self._start_session(start, taken_over=True, bridged_with=leg)

    async def _report_ready(self) -> None:
        """One log line whenever both applications are ready (tests and the demo wait for it)."""
        while True:
            await self.calls_ready.wait()
            await self.contacts.ready.wait()
            log.info("engine ready: calls app %r, registrations app %r", self.ari.app,
                     self.contacts.ari.app)
            await self._down.wait()
            self._down.clear()

    # ------------------------------------------------------------------ calls

    def _spawn(self, coro, name: str) -> None:
        assert self._tg is not None
        self._tg.create_task(coro, name=name)

    def _on_stasis_start(self, ev: StasisStart) -> None:
        if self._tg is None:
            return
        cid = ev.channel.id
        if ev.args and ev.args[0] == "leg":
            # an outbound leg whose call is already gone: nobody will bridge it
            self._spawn(self._hangup_orphan(cid), f"orphan-{cid}")
            return
        self._start_session(ev)

    def _start_session(self, ev: StasisStart, *, taken_over: bool = False,
                       bridged_with: str | None = None) -> None:
        assert self._tg is not None
        cid = ev.channel.id
        queue = self.dispatcher.register(cid)
        if bridged_with is not None:
            self.dispatcher.attach(bridged_with, queue)
        session = CallSession(self.ari, self.holder.current, ev, queue, self.services,
                              taken_over=taken_over, bridged_with=bridged_with)
        self.calls[cid] = session
        self._tasks[cid] = self._tg.create_task(self._run_call(session), name=f"call-{cid}")

    def _on_other(self, ev: Event) -> None:
        """Events of channels no session reads: a call handed to the dialplan has gone."""
        if isinstance(ev, ChannelDestroyed):
            self.services.registry.ended(ev.channel.id)

    async def _hangup_orphan(self, channel_id: str) -> None:
        try:
            await self.ari.hangup(channel_id)
        except AriError:
            pass

    async def _run_call(self, session: CallSession) -> None:
        try:
            await session.run()
        finally:
            self.dispatcher.unregister(session.channel_id)
            self.calls.pop(session.channel_id, None)
            self._tasks.pop(session.channel_id, None)

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            helpers = [tg.create_task(self.ari.run(self.dispatcher), name="ari-events"),
                       tg.create_task(self.holder.run(), name="config-reload"),
                       tg.create_task(self._take_over(), name="take-over"),
                       tg.create_task(self._report_ready(), name="ready"),
                       tg.create_task(self.contacts.run(), name="contacts")]
            cfg = self.holder.current
            if self.services.notifier is not None:
                helpers.append(tg.create_task(self.services.notifier.run(), name="webhook"))
            if self.ami is not None:
                helpers.append(tg.create_task(self.ami.run(), name="ami"))
            if cfg.engine.api.enabled:
                api = build_app(ApiContext(config=lambda: self.holder.current,
                                           store=self.services.store,
                                           registry=self.services.registry, engine=self,
                                           ami=self.ami))
                helpers.append(tg.create_task(serve(api, cfg.engine.api.listen), name="api"))
            await stop.wait()
            log.info("stopping: %d calls in progress go to the dialplan fallback", len(self.calls))
            for task in helpers:
                task.cancel()
            for task in list(self._tasks.values()):
                task.cancel()


async def run_engine(config: Config) -> int:
    eng = config.engine
    holder = ConfigHolder(config)
    store = await Store.open(eng.database_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, holder.request_reload)
    password = eng.ari.password.get_secret_value()
    client = AriClient(eng.ari.url, eng.ari.username, password, eng.ari.app,
                       reconnect_max=eng.ari.reconnect_max_seconds)
    registrations = AriClient(eng.ari.url, eng.ari.username, password,
                              registrations_app(eng.ari.app),
                              reconnect_max=eng.ari.reconnect_max_seconds, max_connections=4)
    hook = config.model.context_webhook
    notifier = None
    if hook is not None and hook.enabled:
        notifier = ContextNotifier(hook.url, timeout=hook.timeout_seconds, attempts=hook.attempts,
                                   backoff=hook.backoff_seconds,
                                   secret=hook.secret.get_secret_value() if hook.secret else None)
    ami = None
    if eng.ami.password is not None and eng.ami.password.get_secret_value():
        ami = AmiClient(eng.ami.host, eng.ami.port, eng.ami.username,
                        eng.ami.password.get_secret_value())
    push = PushService(lambda: holder.current, store)
    services = CallServices(store=store, registry=CallRegistry(), notifier=notifier, push=push)
    code = 0
    try:
        async with client, registrations:
            await Engine(holder, client, registrations, services, ami).run(stop)
    except* AriAppReplaced:
        log.error("another process took the ARI application %r; exiting", eng.ari.app)
        code = 1
    finally:
        await push.close()
        await store.close()
    return code
