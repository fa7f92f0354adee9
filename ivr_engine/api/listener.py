"""The HTTP listener under the door: aiohttp's server, with two things aiohttp does before any
middleware made to hold like the rest of the API.

- **Requests its parser refuses** (a header or request line over 8 190 bytes, a bad byte in
  the path, broken chunking) answer a problem document — 431 for a line too long, else 400
  — instead of aiohttp's text/plain page, and log one INFO line at most every 10 s per kind
  with no traceback and none of the request's bytes (the path may hold a provider's
  callback token). They are counted as ``ivr_http_requests_total{route="unparsed"}``.
- **A budget of connections.** Every connection is a file descriptor, and the engine's calls,
  database, Asterisk and provider connections need theirs whatever HTTP clients do: a
  listener holds at most ``limit`` connections at once (derived at start from
  ``RLIMIT_NOFILE`` minus ``engine.api.connections.reserve_fds`` and the accept burst) and
  ``per_address`` from one address. A connection past either gets a canned 503 problem and
  is closed at once, so its descriptor is back within the next loop iteration. asyncio
  accepts up to ``backlog`` connections in one go before any of them is seen: the listen
  backlog is :data:`BACKLOG` and the budget leaves that many descriptors per listener.

aiohttp builds its ``web.Server`` itself (``Application._make_handler``); :class:`ApiRunner`
(an ``AppRunner``) turns it into :class:`_Server`, whose protocol is :class:`_Protocol`. Use
``ApiRunner`` wherever the API is served (``server.serve``; the tests' server).
"""

from __future__ import annotations

import json
import logging
import resource
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from .. import metrics
from .problems import PROBLEM, problem_response
from .ratelimit import QuietLog

log = logging.getLogger("ivr_engine.api")
quiet = QuietLog(log)

KEEPALIVE_SECONDS = 75.0  # an idle connection is closed after this (aiohttp's default: 3630)
MIN_CONNECTIONS = 16
BACKLOG = 64  # the listen backlog, and the most connections asyncio accepts in one go


@dataclass
class ConnectionBudget:
    """The connections one listener holds, against its limits. ``per_address`` is read on
    every connection (a reload applies); ``limit`` is fixed at start."""

    limit: int
    per_address: Callable[[], int] = lambda: 1 << 30
    listener: str = "api"
    open: int = 0
    by_address: Counter = field(default_factory=Counter)

    def admit(self, address: str) -> str | None:
        """Count a new connection from ``address``; why it is refused (nothing counted)."""
        if self.open >= self.limit:
            return "budget"
        if self.by_address[address] >= self.per_address():
            return "per_address"
        self.open += 1
        self.by_address[address] += 1
        metrics.HTTP_CONNECTIONS.labels(self.listener).set(self.open)
        return None

    def release(self, address: str) -> None:
        self.open -= 1
        self.by_address[address] -= 1
        if self.by_address[address] <= 0:
            del self.by_address[address]
        metrics.HTTP_CONNECTIONS.labels(self.listener).set(self.open)


BUDGET: web.AppKey[ConnectionBudget] = web.AppKey("connection_budget", ConnectionBudget)


def descriptor_limit() -> int:
    """The process's soft ``RLIMIT_NOFILE`` (an unlimited one counts as 2**20)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else soft


def http_budget(settings: Any, *, admin_listener: bool,
                fds: int | None = None) -> tuple[int, int | None]:
    """(connections for ``listen``, for ``admin_listen`` or None) from the descriptor limit
    and ``engine.api.connections``: the listeners share ``fds - reserve_fds`` less one accept
    burst (:data:`BACKLOG`) each (or ``max``); an admin listener gets 1/16 of it (8 to 64),
    never taken by the public one."""
    fds = descriptor_limit() if fds is None else fds
    total = fds - settings.reserve_fds - BACKLOG * (2 if admin_listener else 1)
    if total < 2 * MIN_CONNECTIONS:
        log.warning("the descriptor limit (%d) leaves %d for HTTP connections after "
                    "engine.api.connections.reserve_fds (%d): raise LimitNOFILE", fds,
                    max(total, 0), settings.reserve_fds)
        total = max(2 * MIN_CONNECTIONS, fds // 2)
    if settings.max is not None:
        total = min(total, settings.max)
    if not admin_listener:
        return total, None
    admin = min(64, max(8, total // 16))
    return total - admin, admin


# ---------------------------------------------------------------- requests aiohttp refuses

def _parse_problem(exc: BaseException | None, status: int) -> tuple[int, str, str]:
    if isinstance(exc, LineTooLong):
        return 431, "Request Header Fields Too Large", (
            "the request line or a header field is longer than 8 190 bytes")
    if isinstance(exc, HttpProcessingError):
        return status if 400 <= status < 500 else 400, "Bad Request", (
            "the request is not valid HTTP/1.1 (request line, header or body framing)")
    if status == 504:
        return 504, "Gateway Timeout", "the engine took too long to answer this request"
    return 500, "Internal Server Error", ("the engine failed to answer this request; the "
                                          "error is in its log")


class _Protocol(RequestHandler):
    """aiohttp's connection handler, answering the errors it answers itself as problems, and
    refusing a connection past the budget before anything of it runs."""

    __slots__ = ()

    def connection_made(self, transport: Any) -> None:
        server = self._manager
        if isinstance(server, _Server) and not server.admit(self, transport):
            self._manager = None  # nothing of aiohttp runs for it (connection_lost included)
            transport.write(server._refusal)
            transport.close()  # flushes the 503, then the descriptor is released
            return
        super().connection_made(transport)

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp: a response is already on its way
            raise ConnectionError("Response is sent already, cannot send another response "
                                  "with the error message")
        status, title, detail = _parse_problem(exc, status)
        if isinstance(exc, HttpProcessingError):  # never the message: it quotes the request
            quiet(logging.INFO, type(exc).__name__, "refused a request HTTP cannot parse "
                  "from %s: %s (%s)", request.remote, title, type(exc).__name__)
        elif status == 500:
            log.error("unexpected error in the HTTP server answering %s: %s", request.remote,
                      type(exc).__name__ if exc is not None else "unknown")
        metrics.HTTP_REQUESTS.labels("unparsed", "-", str(status)).inc()
        resp = problem_response(status, title, detail, "/")
        resp.force_close()
        return resp


def _canned_503(listener: str) -> bytes:
    body = json.dumps({"type": "about:blank", "title": "Service Unavailable", "status": 503,
                       "detail": f"the {listener} listener holds as many connections as it "
                       "may (from this address, or in all); retry later", "instance": "/"}
                      ).encode()
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: " + PROBLEM.encode() +
            b"\r\nContent-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
            % len(body) + body)


class _Server(web.Server):
    """``web.Server`` with :class:`_Protocol` connections and a :class:`ConnectionBudget`
    (``budget``, set by :class:`ApiRunner`)."""

    budget: ConnectionBudget | None
    _admitted: dict[RequestHandler, str]
    _refusal: bytes

    def __call__(self) -> RequestHandler:
        # as web.Server.__call__, with our protocol class
        return _Protocol(self, loop=self._loop, **self._kwargs)

    def admit(self, handler: RequestHandler, transport: Any) -> bool:
        """Count a new connection against the budget; False: refuse it (counted, logged)."""
        budget = self.budget
        if budget is None:
            return True
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else "unix"
        reason = budget.admit(address)
        if reason is not None:
            metrics.HTTP_CONNECTIONS_REFUSED.labels(budget.listener, reason).inc()
            quiet(logging.WARNING, f"connections {reason}", "%s listener: connection from %s "
                  "refused (%s: %d open, limit %d in all, %d per address)", budget.listener,
                  address, reason, budget.open, budget.limit, budget.per_address())
            return False
        self._admitted[handler] = address
        return True

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None
                        ) -> None:
        address = self._admitted.pop(handler, None)
        if address is not None and self.budget is not None:
            self.budget.release(address)
        super().connection_lost(handler, exc)


class ApiRunner(web.AppRunner):
    """``web.AppRunner`` serving with :class:`_Server`: problem answers for what the parser
    refuses, the app's :data:`BUDGET` of connections (none: unlimited), idle connections
    closed after :data:`KEEPALIVE_SECONDS`, and no access log (its lines would carry the
    paths, a provider's callback token included; ``ivr_http_requests_total`` counts)."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("keepalive_timeout", KEEPALIVE_SECONDS)
        kwargs["access_log"] = None
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # same object, our hooks (aiohttp built it)
        assert isinstance(server, _Server)
        server.budget = self.app.get(BUDGET)
        server._admitted = {}
        server._refusal = _canned_503(server.budget.listener if server.budget else "API")
        return server
