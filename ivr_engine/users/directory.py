"""Who a user is: the one resolver every reader of users goes through — the call path
(``user:<name>``), device registration, RFC 8599 bindings, the API. Database first, then the
config's ``users:``: on a name in both, the database's wins.

Nothing is cached: a database user is one primary-key read (``bench/users_scale.py``: p99
under a millisecond at 10 000 users on SQLite and PostgreSQL), so every engine sees every
write at once, whichever process made it. When the database cannot answer a caller in time,
the config's user of that name is used (``for_call``); without one the caller goes to the
dialplan fallback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Coroutine

from ..config import Config
from ..config.users import CompiledUser
from ..deadlines import CallerWaitFailed, caller_wait
from .records import UserRecord, from_config

log = logging.getLogger("ivr_engine.users")

DATABASE, CONFIG = "database", "config"


@dataclass(frozen=True, slots=True)
class Found:
    """A user, where it was found, and the ``users:`` line of the same name if there is
    one (shadowed when ``source`` is the database)."""

    record: UserRecord
    source: str  # DATABASE | CONFIG
    config_at: str | None = None  # "file:line" of users.<name> in the config

    def compile(self, cfg: Config) -> CompiledUser:
        return self.record.compile(cfg.model)

    def problems(self, cfg: Config) -> list[str]:
        """What the current config says against this user (an app or a message it names
        that is gone since it was written): ``field: message``."""
        return [f"{field}: {msg}" if field else msg
                for field, msg in self.record.problems(cfg.model)]


def config_at(cfg: Config, name: str) -> str | None:
    line = cfg.user_lines.get(name)
    return f"{cfg.path}:{line}" if line is not None else None


def from_yaml(cfg: Config, name: str) -> Found | None:
    user = cfg.model.users.get(name)
    if user is None:
        return None
    return Found(from_config(name, user), CONFIG, config_at(cfg, name))


def found_in_db(cfg: Config, rec: UserRecord) -> Found:
    return Found(rec, DATABASE, config_at(cfg, rec.name))


async def find(cfg: Config, repo: Any, name: str) -> Found | None:
    """The user named ``name``: the database's, else the config's, else None. ``repo``:
    the UserRepo (None: the config only)."""
    if repo is not None:
        rec = await repo.get(name)
        if rec is not None:
            return found_in_db(cfg, rec)
    return from_yaml(cfg, name)


async def by_mobile_endpoint(cfg: Config, repo: Any, endpoint: str) -> Found | None:
    """The user whose phone app registers as ``endpoint``: a database user's, else a config
    user's that no database user of the same name replaces."""
    if repo is not None:
        rec = await repo.by_mobile_endpoint(endpoint)
        if rec is not None:
            return found_in_db(cfg, rec)
    for name, user in cfg.model.users.items():
        if user.mobile_endpoint == endpoint:
            if repo is not None and await repo.get(name) is not None:
                continue  # the database's user of that name has another endpoint
            return Found(from_config(name, user), CONFIG, config_at(cfg, name))
    return None


async def for_call(cfg: Config, repo: Any, name: str, *, channel: str,
                   spawn: Callable[[Coroutine], Any]) -> Found | None:
    """The user a caller is about to ring, within ``engine.database.call_deadline_seconds``
    (``deadlines.caller_wait``). The database not answering in time: the config's user of
    that name. None: nobody to ring (the caller goes to the dialplan fallback)."""
    if repo is None:
        return from_yaml(cfg, name)
    try:
        rec = await caller_wait(
            spawn, cfg.engine.database.call_deadline_seconds, "user", channel, repo.get(name),
            then=(f"ringing user {name} as the config file has it"
                  if name in cfg.model.users else "the caller goes to the fallback"))
    except CallerWaitFailed:
        return from_yaml(cfg, name)
    if rec is not None:
        return found_in_db(cfg, rec)
    return from_yaml(cfg, name)
