"""``Store``: the database and each feature's repository, assembled on the top floor beside
``main.py`` (the features' repositories live with their features; the store package knows
none of them). The engine hands each part only the repositories it uses.

    store.intents    apps/repo.py     app call plans: one-time tokens
    store.devices    wakeup/repo.py   users' app installs and their push tokens
    store.callbacks  callbacks/repo.py  callback requests: claims, placements, outcomes
    store.calls      calls/repo.py    call records (GET /v1/calls/<id>)
    store.engines    calls/owners.py  the engines on the database and their API URLs
    store.lifecycle  lifecycle/repo.py  app sessions, releases, release notices
    store.sms        sms/repo.py      the SMS spool, do-not-contact list, dialers' state
    store.users      users/repo.py    the database's users (user:<name> targets)
    store.sms_inbound  sms/inbound_repo.py  inbound SMS, their webhook's state
"""

from __future__ import annotations

from typing import Any

from .apps.repo import IntentRepo
from .callbacks.repo import CallbackRepo
from .calls.owners import EngineDirectory
from .calls.repo import CallRecordRepo
from .lifecycle.repo import LifecycleRepo
from .sms.inbound_repo import InboundRepo
from .sms.repo import SmsRepo
from .store import Database, SchemaNotReady, SchemaState
from .users.repo import UserRepo
from .wakeup.repo import DeviceRepo


class Store:
    def __init__(self, db: Database):
        self.db = db
        self.intents = IntentRepo(db.sessions)
        self.devices = DeviceRepo(db.sessions)
        self.callbacks = CallbackRepo(db.sessions)
        self.calls = CallRecordRepo(db.sessions, db.dialect)
        self.engines = EngineDirectory(db.sessions, db.dialect)
        self.lifecycle = LifecycleRepo(db.sessions)
        self.sms = SmsRepo(db.sessions, db.dialect)
        self.users = UserRepo(db.sessions, db.dialect)
        self.sms_inbound = InboundRepo(db.sessions, db.dialect, self.sms.writer)

    @classmethod
    async def open(cls, url: str, *, check: bool = True, **engine_options: Any) -> "Store":
        """Connect to ``url``; with ``check`` (the engine), refuse a schema that is not at the
        newest revision (SchemaNotReady, naming ``ivr-engine db upgrade``)."""
        store = cls(Database(url, **engine_options))
        try:
            if check:
                await store.check()
        except BaseException:
            await store.close()
            raise
        return store

    async def check(self) -> SchemaState:
        state = await self.db.state()
        problem = state.problem(self.db.url)
        if problem is not None:
            raise SchemaNotReady(problem, state)
        return state

    @property
    def engine(self) -> Any:
        return self.db.engine

    async def ping(self) -> None:
        await self.db.ping()

    async def close(self) -> None:
        await self.db.close()
