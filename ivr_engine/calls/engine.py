"""The engine: one ARI connection, one task per call, config reloads on SIGHUP.

Task structure (no task is ever created outside a TaskGroup):

    run_engine TaskGroup
      ├── AriClient.run (websocket, reconnects)      ── events ──► ChannelDispatcher
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
from ..ari import AriAppReplaced, AriClient, AriError, ChannelDispatcher, StasisStart
from ..config import Config, ConfigError, load_config
from ..push import PushService
from ..store import Store
from ..wakeup.watcher import ContactWatcher
from .registry import CallRegistry
from .session import CallServices, CallSession
from .webhook import ContextNotifier

log = logging.getLogger("ivr_engine.engine")


class ConfigHolder:
    """The current config snapshot; a reload swaps it atomically or keeps the old one."""

    def __init__(self, config: Config):
        self.current = config

    def reload(self) -> bool:
        try:
            new = load_config(self.current.path)
        except ConfigError as exc:
            log.error("config reload rejected, keeping the running config:\n%s", exc)
            return False
        for w in new.warnings:
            log.warning("%s", w)
        if new.engine.ari != self.current.engine.ari:
            log.warning("engine.ari changed: restart the engine to use the new connection")
        self.current = new
        log.info("config reloaded from %s (%d menus)", new.path, len(new.tree.menus))
        return True


class Engine:
    def __init__(self, holder: ConfigHolder, ari: AriClient, services: CallServices,
                 ami: AmiClient | None = None):
        self.holder = holder
        self.ari = ari
        self.services = services
        self.ami = ami
        self.contacts = ContactWatcher(ari, services.store, lambda: self.holder.current)
        self.dispatcher = ChannelDispatcher(self._on_stasis_start, on_other=self.contacts.handle)
        services.dispatcher = self.dispatcher
        services.contacts = self.contacts
        self._tg: asyncio.TaskGroup | None = None
        self.calls: dict[str, CallSession] = {}
        self._tasks: dict[str, asyncio.Task] = {}

    def _on_stasis_start(self, ev: StasisStart) -> None:
        if self._tg is None:
            return
        cid = ev.channel.id
        if ev.args and ev.args[0] == "leg":
            # an outbound leg whose call is already gone: nobody will bridge it
            self._tg.create_task(self._hangup_orphan(cid), name=f"orphan-{cid}")
            return
        queue = self.dispatcher.register(cid)
        session = CallSession(self.ari, self.holder.current, ev, queue, self.services)
        self.calls[cid] = session
        self._tasks[cid] = self._tg.create_task(self._run_call(session), name=f"call-{cid}")

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
    loop.add_signal_handler(signal.SIGHUP, holder.reload)
    client = AriClient(eng.ari.url, eng.ari.username, eng.ari.password.get_secret_value(),
                       eng.ari.app, reconnect_max=eng.ari.reconnect_max_seconds)
    holder_ref: list[Engine] = []

    def connected() -> None:
        log.info("connected to ARI at %s as app %r", eng.ari.url, eng.ari.app)
        if holder_ref:
            holder_ref[0].contacts.connected()

    client.on_connected = connected
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
        async with client:
            engine = Engine(holder, client, services, ami)
            holder_ref.append(engine)
            if client.connected:
                engine.contacts.connected()
            await engine.run(stop)
    except* AriAppReplaced:
        log.error("another process took the ARI application %r; exiting", eng.ari.app)
        code = 1
    finally:
        await push.close()
        await store.close()
    return code
