"""Where the guard's windows live (apps/guard.py holds the rules): in the engine's memory, or
in the database, shared by every engine on it (issue 18; principle 14).

- :class:`MemoryGuard` — SQLite. A SQLite file is never shared by two engines, so today's
  in-memory :class:`~.guard.TokenGuard` is exact there and costs no write per try.
- :class:`DatabaseGuard` — PostgreSQL, always (an engine cannot know whether another one
  shares its database, and one started later must not double a guesser's allowance). Each try
  is a ``token_failures`` row, inserted before the lookup and deleted when it matched; the
  windows are ``COUNT``s over ``at > now - window_seconds`` (exact, not approximated by
  buckets). The app's ``token_hardening`` row is locked (``SELECT … FOR UPDATE``) for the
  length of an admission, so tries of one app are admitted one after another across all
  engines: no number of parallel calls on any number of engines passes a limit.
  The time is the engine's UTC clock (engines' clocks must agree: NTP).

Both have the same async interface. A failing database raises (``store.DATABASE_ERRORS``):
the call's wait (``deadlines.caller_wait``) turns it into the fallback, so a try that cannot
be counted is never looked up — the guard fails closed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any, Callable, Iterable

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..deadlines import DATABASE_ERRORS
from ..store.models import TokenFailure, TokenHardening
from .guard import Attempt, GuessLimits, Kind, TokenGuard

_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


class MemoryGuard:
    """The in-memory guard of one engine (SQLite), behind the shared interface."""

    shared = False

    def __init__(self, guard: TokenGuard | None = None,
                 monotonic: Callable[[], float] = time.monotonic):
        self.guard = guard if guard is not None else TokenGuard()
        self._mono = monotonic

    async def admit(self, app: str, caller: str, kind: Kind, limits: GuessLimits,
                    now: dt.datetime) -> Attempt | str:
        return self.guard.admit(app, caller, kind, limits, self._mono())

    async def succeeded(self, attempt: Attempt) -> None:
        self.guard.succeeded(attempt)

    async def failed(self, attempt: Attempt) -> None:
        self.guard.failed(attempt)

    async def long_tokens(self, app: str, callers: Iterable[str], limits: GuessLimits,
                          now: dt.datetime) -> bool:
        """Must a new plan get a long token (the app hardened, or a variant of the caller's
        number has used up its short tries)?"""
        mono = self._mono()
        return self.guard.hardened(app, mono) or any(
            self.guard.caller_limited(app, c, limits, mono) for c in callers)

    async def prune(self, before: dt.datetime, now: dt.datetime) -> int:
        return 0  # the deques age out as they are read


class DatabaseGuard:
    """The guard's windows in ``token_failures`` / ``token_hardening``, shared by engines."""

    shared = True

    def __init__(self, sessions: async_sessionmaker[AsyncSession], dialect: str):
        self._sessions = sessions
        self._insert = _INSERTS[dialect]

    async def admit(self, app: str, caller: str, kind: Kind, limits: GuessLimits,
                    now: dt.datetime) -> Attempt | str:
        """Count a try before its lookup (a row), or say why it may not be looked up — the
        rules of ``TokenGuard.admit``, over every engine's tries."""
        w = limits.window_seconds
        since = now - dt.timedelta(seconds=w)
        async with self._sessions() as s, s.begin():
            await s.execute(self._insert(TokenHardening).values(app=app, until=None)
                            .on_conflict_do_nothing(index_elements=["app"]))
            until = (await s.execute(select(TokenHardening.until)
                                     .where(TokenHardening.app == app)
                                     .with_for_update())).scalar()
            if kind is Kind.TOKEN:
                why = await self._refusal(s, app, caller, limits, now, since, until)
                if why is not None:
                    return why
            row = TokenFailure(app=app, caller=caller, kind=kind.value, at=now)
            s.add(row)
            await s.flush()
            return Attempt(app, caller, kind, now.timestamp(), row.id)

    async def _refusal(self, s: AsyncSession, app: str, caller: str, limits: GuessLimits,
                       now: dt.datetime, since: dt.datetime,
                       until: dt.datetime | None) -> str | None:
        w = limits.window_seconds
        harden = update(TokenHardening).where(TokenHardening.app == app).values(
            until=now + dt.timedelta(seconds=w))
        if until is not None and until > now:
            await s.execute(harden)  # still attacked: it stays hardened
            return (f"app {app!r} is hardened against guessing (short tokens refused, "
                    "plans get long tokens)")
        tries = select(func.count()).select_from(TokenFailure).where(
            TokenFailure.app == app, TokenFailure.at > since)
        if (await s.execute(tries)).scalar_one() >= limits.per_app:
            await s.execute(harden)
            return (f"{limits.per_app} tries of tokens for app {app!r} in the last {w:g} s:"
                    " the app hardens (short tokens refused, plans get long tokens)")
        if caller and (await s.execute(tries.where(TokenFailure.caller == caller))
                       ).scalar_one() >= limits.per_caller:
            return f"{limits.per_caller} tries from {caller} in the last {w:g} s"
        return None

    async def succeeded(self, attempt: Attempt) -> None:
        """The lookup matched: the try is given back (its row deleted)."""
        if attempt.ref is None:
            return
        async with self._sessions() as s, s.begin():
            await s.execute(delete(TokenFailure).where(TokenFailure.id == attempt.ref))

    async def failed(self, attempt: Attempt) -> None:
        """The lookup did not match: the row stays."""

    async def long_tokens(self, app: str, callers: Iterable[str], limits: GuessLimits,
                          now: dt.datetime) -> bool:
        numbers = [c for c in callers if c]
        since = now - dt.timedelta(seconds=limits.window_seconds)
        async with self._sessions() as s:
            until = (await s.execute(select(TokenHardening.until)
                                     .where(TokenHardening.app == app))).scalar()
            if until is not None and until > now:
                return True
            if not numbers:
                return False
            most = (await s.execute(
                select(func.count()).select_from(TokenFailure)
                .where(TokenFailure.app == app, TokenFailure.caller.in_(numbers),
                       TokenFailure.at > since)
                .group_by(TokenFailure.caller).order_by(func.count().desc()).limit(1)
            )).scalar()
            return most is not None and most >= limits.per_caller

    async def prune(self, before: dt.datetime, now: dt.datetime) -> int:
        """Delete the tries older than ``before`` (past every app's window); how many. The
        ``token_hardening`` rows stay (one per app: the lock admissions take)."""
        async with self._sessions() as s, s.begin():
            done = await s.execute(delete(TokenFailure).where(TokenFailure.at <= before))
            return done.rowcount or 0


def guard_for(store: Any) -> MemoryGuard | DatabaseGuard:
    """The guard an engine on ``store`` uses: shared on PostgreSQL, in memory on SQLite."""
    if store is not None and store.db.dialect == "postgresql":
        return DatabaseGuard(store.db.sessions, store.db.dialect)
    return MemoryGuard()


async def prune_loop(guard: MemoryGuard | DatabaseGuard, config: Callable[[], Any],
                     clock: Callable[[], dt.datetime], every_seconds: float = 60.0) -> None:
    """The supervised loop that deletes tries past the longest window of any app (a
    failure raises: the supervisor counts it and restarts the loop after its backoff)."""
    while True:
        apps = config().model.apps.values()
        window = max((a.fallback.guessing.window_seconds for a in apps), default=600.0)
        now = clock()
        await guard.prune(now - dt.timedelta(seconds=window), now)
        await asyncio.sleep(every_seconds)


async def plan_digits(guard: MemoryGuard | DatabaseGuard, model: Any, routing: Any, app: str,
                      callers: Iterable[str], now: dt.datetime) -> int:
    """How many digits a new call plan's token of ``app`` gets: the long length when the app
    is hardened or a variant of the caller's number has used up its short tries — and when
    the guard cannot be read (fails closed: a long token cannot be guessed)."""
    guessing = model.apps[app].fallback.guessing
    limits = GuessLimits(guessing.per_caller, guessing.per_app, guessing.window_seconds)
    entry = routing.apps[app]
    try:
        long = await guard.long_tokens(app, callers, limits, now)
    except DATABASE_ERRORS as exc:
        logging.getLogger("ivr_engine.api").warning(
            "app %r: the guard could not be read (%s: %s); the plan gets a long token", app,
            type(exc).__name__, " ".join(str(exc).split())[:200])
        long = True
    return entry.hardened_digits if long else entry.token_digits
