"""Live pages: the calls the engine drives now (pushed to the page as server-sent events), a
call's detail, and the queues with the engine's wait estimate beside Asterisk's.

The same functions as the admin JSON API: ``calls.http.live_calls`` (``GET
/v1/admin/calls``), ``calls.http.call_context`` (``GET /v1/calls/{id}``), the queue
monitor's ``status`` (``GET /v1/queues/{name}/status``).

**The calls stream** (``GET /console/calls/events``): the rows of the calls table, sent at
once and again whenever they change (a call arrives, moves in the tree, changes phase,
leaves). The live calls are the engine's in-memory sessions, read every
:data:`POLL_SECONDS` (no database, no Asterisk request; the row is sent only when its text
changed — the time on the line is counted in the browser); a comment every
:data:`KEEPALIVE_SECONDS` keeps proxies from closing a quiet stream. At most
:data:`MAX_STREAMS` at once (429 past it), each ends after :data:`LIFETIME_SECONDS` (the
browser reconnects) and all of them when the engine stops.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from ..api.principal import Principal
from ..api.problems import Problem
from ..api.routes import CONSOLE, ApiRoutes, Reply
from ..calls.http import UNKNOWN_CALL, call_context, live_calls
from ..livedata.tree import queues_of
from .pages import HEADERS, page, render

POLL_SECONDS = 0.2
KEEPALIVE_SECONDS = 15.0
LIFETIME_SECONDS = 600.0
MAX_STREAMS = 16
WRITE_SECONDS = 10.0
HTML = Reply(description="an HTML page or fragment", media_type="text/html",
             schema={"type": "string"})
STREAM = Reply(description="text/event-stream: `event: calls`, the table's rows as `data`",
               media_type="text/event-stream", schema={"type": "string"})


class CallStreams:
    """The open calls streams: their count, and the stop at the engine's shutdown."""

    def __init__(self) -> None:
        self.open = 0
        self._closed = asyncio.Event()

    def close(self) -> None:
        self._closed.set()

    async def wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless the engine stops first (True: it stops)."""
        try:
            await asyncio.wait_for(self._closed.wait(), seconds)
        except TimeoutError:
            return False
        return True


def queue_names(cfg: Any) -> list[str]:
    """Every queue a caller can reach in any structure of the tree."""
    names: set[str] = set()
    for top in cfg.tree.top_level():
        names |= queues_of(cfg.tree, top)
    return sorted(names)


def add_live_pages(routes: ApiRoutes, parts: Any, streams: CallStreams) -> None:
    config, clock = parts.config, parts.clock

    def rows() -> str:
        return render("_calls_rows.html", calls=live_calls(parts.calls, clock()).calls)

    @routes.get("/console/calls", summary="Live calls", security=CONSOLE,
                responses={200: HTML})
    async def calls_page(request: web.Request, who: Principal) -> web.Response:
        live = live_calls(parts.calls, clock())
        return page("calls.html", who=who, active="calls", calls=live.calls)

    @routes.get("/console/calls/events", summary="Live calls as server-sent events",
                security=CONSOLE, responses={200: STREAM},
                problems={429: "too many console streams open"})
    async def calls_events(request: web.Request, who: Principal) -> web.StreamResponse:
        if streams.open >= MAX_STREAMS:
            raise Problem(429, "Too Many Requests", "too many console streams are open",
                          headers={"Retry-After": "5"})
        streams.open += 1
        try:
            resp = web.StreamResponse(headers={**HEADERS, "Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
            await resp.prepare(request)
            try:
                await _stream(resp, rows, streams)
            except (ConnectionError, TimeoutError):  # the browser went away or reads nothing
                pass
            return resp
        finally:
            streams.open -= 1

    @routes.get("/console/calls/{call_id}", summary="A call's detail", security=CONSOLE,
                responses={200: HTML}, problems={404: UNKNOWN_CALL})
    async def call_page(request: web.Request, who: Principal) -> web.Response:
        context = await call_context(parts.registry, parts.queues,
                                     request.match_info["call_id"])
        if context is None:
            return page("call.html", status=404, who=who, active="calls", call=None)
        return page("call.html", who=who, active="calls", call=context)

    @routes.get("/console/queues", summary="Queues: callers, agents, wait estimates",
                security=CONSOLE, responses={200: HTML})
    async def queues_page(request: web.Request, who: Principal) -> web.Response:
        return page("queues.html", who=who, active="queues", **_queues(config(), parts.queues))

    @routes.get("/console/queues/panel", summary="The queues (fragment)", security=CONSOLE,
                responses={200: HTML})
    async def queues_panel(request: web.Request, who: Principal) -> web.Response:
        return page("_queues.html", **_queues(config(), parts.queues))


def _queues(cfg: Any, monitor: Any) -> dict[str, Any]:
    names = queue_names(cfg)
    if monitor is None or not monitor.tracking:
        return {"tracking": False, "names": names, "queues": []}
    return {"tracking": True, "names": names, "queues": [monitor.status(n) for n in names]}


async def _write(resp: web.StreamResponse, data: str) -> None:
    async with asyncio.timeout(WRITE_SECONDS):
        await resp.write(data.encode())


async def _stream(resp: web.StreamResponse, rows: Any, streams: CallStreams) -> None:
    await _write(resp, "retry: 2000\n\n")
    start = sent_at = time.monotonic()
    last = None
    while time.monotonic() - start < LIFETIME_SECONDS:
        text = rows()
        if text != last:
            data = "".join(f"data: {line}\n" for line in text.splitlines() or [""])
            await _write(resp, f"event: calls\n{data}\n")
            last, sent_at = text, time.monotonic()
        elif time.monotonic() - sent_at >= KEEPALIVE_SECONDS:
            await _write(resp, ": keep-alive\n\n")
            sent_at = time.monotonic()
        if await streams.wait(POLL_SECONDS):
            break
    await _write(resp, "event: end\ndata: {}\n\n")
