"""``Lifecycle``: what the API and the engine hold of the feature — sessions, releases, and
the sweeper task the engine runs under its supervisor (idle expiry, mandatory grace periods,
release reminders, log retention)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any, Callable

from .logs import LogRequests
from .releases import Releases
from .reminders import Reminders
from .sessions import Sessions

log = logging.getLogger("ivr_engine.lifecycle")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Lifecycle:
    def __init__(self, config: Callable[[], Any], store: Any, push: Any,
                 clock: Callable[[], dt.datetime] = _utcnow):
        self.config = config
        self.repo = store.lifecycle
        self.sessions = Sessions(config, store, push, clock)
        self.releases = Releases(config, store, push, clock)
        self.logs = LogRequests(config, store, push, clock)
        self.reminders = Reminders(config, store, push, clock)

    async def run(self) -> None:
        """Record sessions that ended by idleness or a mandatory grace, send the release
        reminders due, and delete app logs past their retention, every
        ``lifecycle.sweep_seconds`` (a child of the engine's supervisor: a failed sweep is
        logged, counted and started again after a backoff)."""
        while True:
            await self.sessions.sweep()
            await self.reminders.sweep()
            await self.repo.purge_jtis(self.sessions.now())
            if n := await self.logs.purge():
                log.info("app logs: %d requests or uploads past their retention deleted", n)
            await asyncio.sleep(self.config().model.lifecycle.sweep_seconds)
