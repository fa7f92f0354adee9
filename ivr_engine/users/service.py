"""What the users API and ``ivr-engine users`` do: create, replace, change, delete, switch
the ringing device, import a CSV. Every write is checked against the config the engine runs
(``records.check_against``) before it reaches the database.

A user under the config's ``users:`` that the API changes (``PATCH``, the user's own ringing
switch) becomes a database user: a copy with the change, which wins from then on (``ivr-
engine check`` says so); deleting the database user brings the config's back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Mapping

from .csvrows import LineError
from .csvspool import CheckResult, TooLarge, UserCsvSpool
from .directory import DATABASE, Found, find, found_in_db
from .records import UserInvalid, UserRecord, check_against, parse_user, patched
from .repo import EndpointTaken, UserRepo

__all__ = ["Conflict", "ImportResult", "NotFound", "TooLarge", "UserInvalid", "UsersService"]

log = logging.getLogger("ivr_engine.users")


class NotFound(LookupError):
    pass


class Conflict(Exception):
    """The change cannot be made as things stand: ``field`` names the key at fault."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass
class ImportResult:
    check: CheckResult
    imported: int = 0
    created: int = 0

    @property
    def ok(self) -> bool:
        return self.check.ok


class UsersService:
    def __init__(self, config: Callable[[], Any], repo: UserRepo,
                 clock: Callable[[], dt.datetime]):
        self.config, self.repo, self.clock = config, repo, clock

    async def find(self, name: str) -> Found | None:
        return await find(self.config(), self.repo, name)

    async def page(self, after: str | None, limit: int) -> tuple[list[Found], bool]:
        """Database users after ``after``; whether more follow."""
        cfg = self.config()
        rows = await self.repo.page(after, limit + 1)
        return [found_in_db(cfg, r) for r in rows[:limit]], len(rows) > limit

    async def _store(self, rec: UserRecord) -> bool:
        check_against(self.config().model, rec)
        try:
            return await self.repo.put(rec, self.clock())
        except EndpointTaken:
            owners = await self.repo.endpoint_owners([rec.mobile_endpoint or ""])
            owner = owners.get(rec.mobile_endpoint or "", "another user")
            raise Conflict(f"endpoint {rec.mobile_endpoint!r} is already the mobile endpoint "
                           f"of user {owner!r}", "mobile_endpoint") from None

    async def create(self, name: str, values: Mapping[str, Any]) -> Found:
        rec = parse_user(name, values)
        if await self.repo.get(name) is not None:
            raise Conflict(f"user {name!r} is already in the database: PUT or PATCH "
                           f"/v1/admin/users/{name} changes it", "name")
        await self._store(rec)
        return found_in_db(self.config(), rec)

    async def replace(self, name: str, values: Mapping[str, Any]) -> tuple[Found, bool]:
        """Create or replace; (the user, whether it was created)."""
        rec = parse_user(name, values)
        created = await self._store(rec)
        return found_in_db(self.config(), rec), created

    async def patch(self, name: str, changes: Mapping[str, Any]) -> Found:
        found = await self.find(name)
        if found is None:
            raise NotFound(name)
        rec = patched(found.record, changes)
        await self._store(rec)
        return found_in_db(self.config(), rec)

    async def delete(self, name: str) -> None:
        if await self.repo.delete(name):
            return
        cfg = self.config()
        if name in cfg.model.users:
            line = cfg.user_lines.get(name)
            raise Conflict(f"user {name!r} is defined in the config file ({cfg.path}:{line}), "
                           "not in the database: remove it there", "name")
        raise NotFound(name)

    async def switch(self, name: str, app: str, device: str) -> Found:
        """The user's own choice of ringing device (from their app's session)."""
        found = await self.find(name)
        if found is None:
            raise NotFound(name)
        if found.record.app != app:
            raise Conflict(f"user {name!r} is woken through app {found.record.app!r}, not "
                           f"{app!r}", "app")
        rec = patched(found.record, {"ringing_device": device})
        for field, msg in rec.problems(self.config().model):
            raise UserInvalid("ringing_device", f"{msg}: ask your administrator"
                              if field is None else f"{field}: {msg}")
        if found.source == DATABASE:
            if not await self.repo.set_device(name, device, self.clock()):
                raise NotFound(name)  # deleted meanwhile
        else:
            await self._store(rec)  # the config's user, copied with the change
        log.info("user %s switched their ringing device to %s", name, device)
        return found_in_db(self.config(), rec)

    # ----------------------------------------------------------------- import

    async def import_csv(self, chunks: AsyncIterator[bytes]) -> ImportResult:
        """Check and spool the file's bytes (in a worker thread), then import every user in
        one transaction if every line is good. TooLarge past ``user_directory.imports``."""
        spool = UserCsvSpool(self.config().model)
        result = ImportResult(spool.result)
        started = time.monotonic()
        try:
            async for chunk in chunks:
                await asyncio.to_thread(spool.feed, chunk)
                if spool.unreadable:
                    break
            check = await asyncio.to_thread(spool.finish)
            if not spool.unreadable:
                await self._endpoints_free(check)
            if not check.ok:
                return result
            existing = await self.repo.existing(check.names)
            t0 = time.monotonic()
            try:
                result.imported = await self.repo.import_all(check.names, _batches(spool),
                                                             self.clock())
            except EndpointTaken:
                raise Conflict("a mobile endpoint of the file was given to a user outside "
                               "it meanwhile; nothing was imported: send the file again",
                               "mobile_endpoint") from None
            result.created = result.imported - len(existing)
            log.info("users import: %d users checked in %.2f s, %d imported (%d new) in one "
                     "transaction of %.2f s", check.rows, t0 - started, result.imported,
                     result.created, time.monotonic() - t0)
            return result
        finally:
            await asyncio.to_thread(spool.close)

    async def _endpoints_free(self, check: CheckResult) -> None:
        """Lines whose mobile endpoint a database user outside the file holds."""
        owners = await self.repo.endpoint_owners(check.endpoints)
        bad = sorted((check.endpoints[ep][0], ep, owner) for ep, owner in owners.items()
                     if owner not in check.names)
        for line, ep, owner in bad:
            check.add(LineError(line, f"mobile_endpoint: endpoint {ep!r} is already the "
                                f"mobile endpoint of user {owner!r} (in the database)"))
        if bad:
            check.errors.sort(key=lambda e: e.line)


async def _batches(spool: UserCsvSpool) -> AsyncIterator[list[UserRecord]]:
    await asyncio.to_thread(spool.rewind)
    while (batch := await asyncio.to_thread(spool.next_batch)) is not None:
        yield batch
