"""Which engine holds a call, and API calls for a call another engine holds (issue 18).

Engines on one PostgreSQL see each other's call records; only the engine that drives a call
(``call_records.engine``) can move it — over ARI while it is in the IVR, over its node's AMI
once it has left. So ``POST /v1/calls/<id>/transfer`` and ``GET /v1/calls/<id>`` at engine b
for a live call engine a holds are forwarded to engine a's advertised URL
(``engine.api.advertise``), read from the ``engines`` table every engine keeps its row in
(:func:`announce_loop`, supervised). Engine a's answer is relayed as it is (status, problem
document, ``Retry-After``), with ``X-IVR-Engine`` naming who answered. When engine a cannot
be reached (refused, or no answer within the deadlines below) the transfer is a ``503`` with
``reason: owner-down``; a read falls back to the record.

``GET /v1/admin/calls`` lists the engine's own live calls and those of every other engine
that announced itself lately (each asked once; ``unreachable`` names those that did not
answer within ``CONNECT_SECONDS``).

The forwarded request carries this engine's own admin token (the caller was authenticated
here, by the door) and ``X-IVR-Forwarded-By``: a forwarded request is never forwarded again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any, Callable

import aiohttp
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..store.models import EngineRow

log = logging.getLogger("ivr_engine.api")

FORWARDED_BY = "X-IVR-Forwarded-By"
ANSWERED_BY = "X-IVR-Engine"
CONNECT_SECONDS = 2.0  # loopback or a LAN: an engine that does not accept by then is down
#: the owner's own transfer deadlines (transfer.py: pick-up 5 s, done 15 s) and a margin
ANSWER_SECONDS = 20.0
ANNOUNCE_SECONDS = 10.0
_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


class EngineDirectory:
    """The ``engines`` table: each engine's advertised API URL."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], dialect: str):
        self._sessions = sessions
        self._insert = _INSERTS[dialect]

    async def announce(self, name: str, api_url: str, now: dt.datetime) -> None:
        stmt = self._insert(EngineRow).values(name=name, api_url=api_url, seen_at=now)
        stmt = stmt.on_conflict_do_update(index_elements=[EngineRow.name],
                                          set_={"api_url": api_url, "seen_at": now})
        async with self._sessions() as s, s.begin():
            await s.execute(stmt)

    async def alive(self, since: dt.datetime) -> list[EngineRow]:
        """The engines that announced themselves after ``since``."""
        async with self._sessions() as s:
            return list((await s.execute(select(EngineRow).where(EngineRow.seen_at > since)
                                         .order_by(EngineRow.name))).scalars())

    async def get(self, name: str) -> EngineRow | None:
        async with self._sessions() as s:
            return (await s.execute(select(EngineRow).where(EngineRow.name == name))
                    ).scalar_one_or_none()


async def announce_loop(directory: EngineDirectory, name: str, api_url: Callable[[], str],
                        clock: Callable[[], dt.datetime],
                        every_seconds: float = ANNOUNCE_SECONDS) -> None:
    """Keep this engine's row (URL, seen_at) fresh; a failure raises to the supervisor. At
    its first round, a row of the same name with another URL seen lately means two engines
    share a name (their calls' requests would not be forwarded): logged as an error."""
    first = True
    while True:
        url, now = api_url(), clock()
        if first:
            row = await directory.get(name)
            if row is not None and row.api_url != url and \
                    now - row.seen_at < dt.timedelta(seconds=3 * every_seconds):
                log.error("engine name %r is also used by the engine at %s (seen %s): give "
                          "each engine on the database its own engine.name", name,
                          row.api_url, row.seen_at.isoformat(timespec="seconds"))
            first = False
        await directory.announce(name, url, now)
        await asyncio.sleep(every_seconds)


class OwnerDown(Exception):
    """The engine holding the call could not be reached (``detail`` says how)."""

    def __init__(self, owner: str, detail: str):
        super().__init__(detail)
        self.owner, self.detail = owner, detail


class Owners:
    """This engine's view: is a call another engine's, and forwarding a request there."""

    def __init__(self, name: str, directory: EngineDirectory | None,
                 config: Callable[[], Any], answer_seconds: float = ANSWER_SECONDS):
        self.name, self.directory, self._config = name, directory, config
        self.answer_seconds = answer_seconds

    def elsewhere(self, info: Any, request: web.Request) -> str | None:
        """The engine holding the live call ``info``, when it is not this one and the request
        was not already forwarded here; else None (this engine answers)."""
        owner = getattr(info, "engine", None)
        if self.directory is None or owner is None or owner == self.name \
                or info.state == "ended" or FORWARDED_BY in request.headers:
            return None
        return owner

    def _headers(self) -> dict[str, str]:
        token = self._config().engine.api.admin_token
        headers = {FORWARDED_BY: self.name}
        if token is not None:
            headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        return headers

    async def gather(self, request: web.Request, now: dt.datetime
                     ) -> tuple[list[dict], list[str]]:
        """The live calls of every other engine seen in the last three announcements (each
        asked once, ``CONNECT_SECONDS`` to answer), and the engines that did not answer."""
        if self.directory is None:
            return [], []
        try:
            rows = await self.directory.alive(now - dt.timedelta(seconds=3 * ANNOUNCE_SECONDS))
        except Exception as exc:  # noqa: BLE001 - the database: only our own calls
            log.warning("%s: the other engines cannot be looked up (%s)", request.path,
                        type(exc).__name__)
            return [], ["(database)"]
        others = [r for r in rows if r.name != self.name]
        timeout = aiohttp.ClientTimeout(total=CONNECT_SECONDS)

        async def ask(http: aiohttp.ClientSession, row: EngineRow) -> list[dict] | None:
            try:
                async with http.get(row.api_url + request.rel_url.path,
                                    headers=self._headers()) as r:
                    if r.status == 200:
                        return list((await r.json())["calls"])
                    log.warning("%s: engine %r answered %d", request.path, row.name, r.status)
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError, KeyError) as exc:
                log.warning("%s: engine %r at %s did not answer (%s)", request.path, row.name,
                            row.api_url, type(exc).__name__)
            return None
        async with aiohttp.ClientSession(timeout=timeout) as http:
            answers = await asyncio.gather(*(ask(http, r) for r in others))
        calls = [c for a in answers if a is not None for c in a]
        return calls, [r.name for r, a in zip(others, answers) if a is None]

    async def forward(self, request: web.Request, owner: str) -> web.Response:
        """The owner's answer to this request, relayed; OwnerDown when it cannot be had."""
        assert self.directory is not None
        try:
            row = await self.directory.get(owner)
        except Exception as exc:  # noqa: BLE001 - the database: the owner cannot be found
            raise OwnerDown(owner, f"the engine {owner!r} holding the call cannot be looked "
                            f"up ({type(exc).__name__})") from None
        if row is None:
            raise OwnerDown(owner, f"the engine {owner!r} holding the call has never "
                            "announced its API URL (engines table)")
        headers = self._headers()
        if request.content_type:
            headers["Content-Type"] = request.content_type
        url = row.api_url + request.rel_url.path_qs
        body = await request.read()
        timeout = aiohttp.ClientTimeout(total=self.answer_seconds,
                                        sock_connect=CONNECT_SECONDS)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http, http.request(
                    request.method, url, data=body or None, headers=headers,
                    allow_redirects=False) as r:
                text = await r.read()
                relay = {ANSWERED_BY: owner}
                if "Retry-After" in r.headers:
                    relay["Retry-After"] = r.headers["Retry-After"]
                log.info("%s %s: forwarded to engine %r at %s: %d", request.method,
                         request.path, owner, row.api_url, r.status)
                return web.Response(status=r.status, body=text, headers=relay,
                                    content_type=r.content_type)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            why = "no answer in time" if isinstance(exc, TimeoutError) else \
                f"{type(exc).__name__}: {exc}"
            raise OwnerDown(owner, f"the engine {owner!r} holding the call did not answer at "
                            f"{row.api_url} ({' '.join(why.split())[:200]})") from None
