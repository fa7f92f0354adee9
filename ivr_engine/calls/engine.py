"""The engine: one ARI connection, one task per call, config reloads on SIGHUP.

Task structure (no task is ever created outside a TaskGroup):

    run_engine TaskGroup
      ├── AriClient.run (websocket, reconnects)      ── events ──► ChannelDispatcher
      ├── signal watcher (SIGTERM/SIGINT stop, SIGHUP reload)
      └── CallSession.run × N, each with its own TaskGroup (event loop, digit timer)
"""

from __future__ import annotations

import asyncio
import logging
import signal

from ..ari import AriAppReplaced, AriClient, ChannelDispatcher, StasisStart
from ..config import Config, ConfigError, load_config
from ..store import Store
from .session import CallSession

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
    def __init__(self, holder: ConfigHolder, ari: AriClient, store: Store | None):
        self.holder = holder
        self.ari = ari
        self.store = store
        self.dispatcher = ChannelDispatcher(self._on_stasis_start)
        self._tg: asyncio.TaskGroup | None = None
        self.calls: dict[str, CallSession] = {}
        self._tasks: dict[str, asyncio.Task] = {}

    def _on_stasis_start(self, ev: StasisStart) -> None:
        if self._tg is None:
            return
        cid = ev.channel.id
        queue = self.dispatcher.register(cid)
        session = CallSession(self.ari, self.holder.current, ev, queue, self.store)
        self.calls[cid] = session
        self._tasks[cid] = self._tg.create_task(self._run_call(session), name=f"call-{cid}")

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
            ari_task = tg.create_task(self.ari.run(self.dispatcher), name="ari-events")
            await stop.wait()
            log.info("stopping: %d calls in progress go to the dialplan fallback", len(self.calls))
            ari_task.cancel()
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
    client.on_connected = lambda: log.info("connected to ARI at %s as app %r", eng.ari.url,
                                           eng.ari.app)
    code = 0
    try:
        async with client:
            await Engine(holder, client, store).run(stop)
    except* AriAppReplaced:
        log.error("another process took the ARI application %r; exiting", eng.ari.app)
        code = 1
    finally:
        await store.close()
    return code
