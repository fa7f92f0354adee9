"""Config reloads that never stall the calls in progress.

Reading a config is CPU work (PyYAML is pure Python, then pydantic and the tree compiler), up to
seconds for a big or hostile file. Done on the event loop, it would freeze every call for that
long, so :meth:`ConfigHolder.reload` runs ``load_config`` in a worker thread; the loop only swaps
the finished snapshot in. The GIL passes between the two every few milliseconds, except during
a garbage collection, hence :func:`_load_config_gc_paused`.

SIGHUP reaches the engine as a signal handler, which must stay synchronous and must not create
tasks (every task lives in a TaskGroup): it calls :meth:`ConfigHolder.request_reload`, which only
sets an event. :meth:`ConfigHolder.run`, a task of the engine's TaskGroup, does the reloads one
at a time; signals that arrive during a reload set the event again and coalesce into a single
further reload, which reads the file as it is by then.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass

from . import Config, ConfigError, Issue, load_config
from .model_nodes import node_configs

__all__ = ["ConfigHolder", "ReloadOutcome"]

log = logging.getLogger("ivr_engine.engine")  # the engine's: its reload lines read as before


def _load_config_gc_paused(path: str) -> Config:
    """``load_config`` with the cyclic garbage collector paused, for a worker thread.

    Parsing keeps ~100 000 objects alive per 2 000 menus (PyYAML's nodes and marks). Their
    allocation triggers a full collection in the middle of the parse, and a collection holds
    the GIL while it traverses every object: ~100 ms of frozen event loop on a 2-core machine,
    whichever thread runs it. Reading a config leaves no cyclic garbage behind (reference
    counting frees it all), so the pause costs nothing but the engine's own cyclic garbage
    waiting a few seconds longer.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return load_config(path)
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True)
class ReloadOutcome:
    """What one reload did: ``config`` is the new snapshot now in use, or None when the file
    was refused (the running config stays). ``issues`` are the file's errors when refused, its
    warnings when applied (each prints as ``file:line: key.path: message``). ``unexpected``:
    the refusal is a bug (logged with its traceback), not the file's fault."""

    config: Config | None
    issues: tuple[Issue, ...] = ()
    unexpected: bool = False

    @property
    def applied(self) -> bool:
        return self.config is not None


class ConfigHolder:
    """The current config snapshot; a reload swaps it atomically or keeps the old one."""

    def __init__(self, config: Config):
        self.current = config
        self.requested = asyncio.Event()
        self._lock = asyncio.Lock()

    def request_reload(self) -> None:
        """Ask :meth:`run` for a reload; safe to call from a signal handler."""
        self.requested.set()

    async def run(self, trigger: asyncio.Event | None = None) -> None:
        """Reload each time ``trigger`` (by default :attr:`requested`) is set, until cancelled."""
        trigger = self.requested if trigger is None else trigger
        while True:
            await trigger.wait()
            trigger.clear()
            await self.reload()

    async def reload(self) -> bool:
        """Re-read ``current.path`` off the event loop; True when the new config is in use
        (SIGHUP). :meth:`reload_outcome` says why not."""
        return (await self.reload_outcome()).applied

    async def reload_outcome(self) -> ReloadOutcome:
        """Re-read ``current.path`` off the event loop and swap it in when valid.

        It never raises (except on cancellation): :meth:`run` sits in the engine's TaskGroup,
        where an exception would stop the engine. An unexpected error is a bug, so it is logged
        with its traceback, and the running config is kept as for a rejected file.
        """
        async with self._lock:  # two overlapping reloads could finish in the wrong order
            path = self.current.path
            try:
                new = await asyncio.to_thread(_load_config_gc_paused, path)
            except ConfigError as exc:
                log.error("config reload rejected, keeping the running config:\n%s", exc)
                return ReloadOutcome(None, tuple(exc.issues))
            except Exception:  # noqa: BLE001 - see the docstring
                log.exception("config reload rejected, keeping the running config: "
                              "unexpected error reading %s", path)
                return ReloadOutcome(None, (Issue(path, 0, "", "unexpected error reading the "
                                                  "file (see the engine log)"),), True)
            for w in new.warnings:
                log.warning("%s", w)
            if node_configs(new.engine) != node_configs(self.current.engine):
                log.warning("engine.ari changed: restart the engine to use the new connection"
                            if new.engine.ari is not None else
                            "engine.nodes changed: restart the engine to use the new nodes")
            self.current = new
            log.info("config reloaded from %s (%d menus)", new.path, len(new.tree.menus))
            return ReloadOutcome(new, tuple(new.warnings))
