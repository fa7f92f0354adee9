"""The HTTP API assembled, on the top floor beside ``main.py``: every feature's routes, each
given its own service, behind the one door (``api/door.py``), served on one listener — or on
two when ``engine.api.admin_listen`` is set: the admin routes (and ``/metrics``) only there,
everything else only on ``engine.api.listen``. Keep the admin listener private. The admin
console (``console/``, ``/console``) is served where the admin routes are.

The features never see this module: each ``<feature>/http.py`` takes what it needs (its
repository, its service, the config) and answers for the principal the door hands it.

Each listener holds a budget of connections derived at start from the descriptor limit
(``api/listener.py``: calls, the database and the providers keep
``engine.api.connections.reserve_fds``), and the queue event streams at most half the public
one's (``livedata/streams.py``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

from aiohttp import web

from .api.admin import engine_routes
from .api.door import Door
from .api.input import MAX_BODY_BYTES
from .api.listener import BACKLOG, BUDGET, ApiRunner, ConnectionBudget, http_budget
from .api.openapi import openapi_routes
from .api.ops import count_requests, ops_routes
from .api.problems import problem_middleware
from .api.ratelimit import TokenBuckets
from .api.routes import ApiRoutes, spec_of
from .api.schemas import WebhookStats
from .apps.guard_db import DatabaseGuard, MemoryGuard
from .apps.http import app_routes
from .callbacks.http import callback_routes
from .calls.http import call_routes
from .calls.targets_http import transfer_target_routes
from .console.http import Console, ConsoleParts
from .edge.http import widget_routes
from .lifecycle.http import lifecycle_routes
from .lifecycle.service import Lifecycle
from .livedata.http import livedata_routes
from .livedata.streams import StreamGate
from .sms.http import sms_routes
from .sms.inbound_http import inbound_routes
from .sms.webhooks import provider_check
from .users.http import user_routes
from .users.service import UsersService
from .wakeup.http import device_routes

log = logging.getLogger("ivr_engine.api")
READY_TIMEOUT = 2.0


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class ApiParts:
    """What the API is built from: the composition root's objects (main.py; the tests build
    their own)."""

    config: Callable[[], Any]  # the current Config snapshot (reloads swap it)
    store: Any  # repositories.Store
    registry: Any = None  # calls.registry.CallRegistry
    calls: Any = None  # calls.manager.Calls: live sessions
    nodes: list = field(default_factory=list)  # node.AsteriskNode
    notifier: Any = None  # calls.webhook.Webhooks
    holder: Any = None  # config.reloader.ConfigHolder: admin reloads
    push: Any = None  # push.PushService
    lifecycle: Lifecycle | None = None  # made here when None (no sweeper then)
    sms: Any = None  # sms.dialer.SmsService when the dialers run in the engine
    inbound: Any = None  # sms.inbound_webhook.InboundDelivery (woken by inbound messages)
    queues: Any = None  # livedata.shared.SharedQueues (or one livedata.monitor.QueueMonitor)
    supervisor: Any = None  # supervisor.Supervisor: background loops that keep failing
    clock: Callable[[], dt.datetime] = _utcnow
    randbelow: Callable[[int], int] = secrets.randbelow
    buckets: TokenBuckets = field(default_factory=TokenBuckets)  # the door's rate limits
    guard: MemoryGuard | DatabaseGuard = field(default_factory=MemoryGuard)  # the calls' too
    streams: StreamGate | None = None  # the event streams' caps; made here when None
    fds: int | None = None  # the descriptor limit the budgets come from (None: the process's)
    console: Console | None = None  # the admin console, made with the routes (feature_routes)
    owners: Any = None  # calls.owners.Owners: calls other engines hold (None: none forwarded)


class _Status:
    """What ``GET /v1/health`` reads of the engine."""

    def __init__(self, parts: ApiParts) -> None:
        self._parts = parts

    def ari_connected(self) -> bool:
        nodes = self._parts.nodes
        return bool(nodes) and all(n.ari.connected for n in nodes)

    def calls_in_ivr(self) -> int:
        return len(self._parts.calls) if self._parts.calls is not None else 0

    def webhook_stats(self) -> WebhookStats | None:
        notifier = self._parts.notifier
        return WebhookStats(**asdict(notifier.stats)) if notifier is not None else None


async def not_ready(parts: ApiParts) -> list[str]:
    """Why the engine cannot take calls now (empty: it can)."""
    reasons = []
    if not parts.nodes:
        reasons.append("no Asterisk node")
    for node in parts.nodes:
        if getattr(node, "refused", None):
            reasons.append(f"{node.name}: {node.refused}")
        elif not node.ari.connected:
            reasons.append(f"{node.name}: ARI calls application {node.ari.app!r} not connected")
        elif not node.calls_ready.is_set():
            reasons.append(f"{node.name}: calls application still taking calls back")
        if not node.contacts.ready.is_set():
            reasons.append(f"{node.name}: {node.contacts.unready}")
        if node.ami is not None and not node.ami.connected:
            reasons.append(f"{node.name}: AMI not logged in")
    if parts.supervisor is not None:  # a background loop that keeps failing, by name
        reasons.extend(parts.supervisor.failing())
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await parts.store.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means: not ready, and why
        reasons.append(f"database not reachable: {type(exc).__name__}")
    return reasons


def feature_routes(parts: ApiParts, stream_ceiling: int | None = None) -> list[ApiRoutes]:
    """Every feature's routes, each given what it needs."""
    cfg, store, clock = parts.config, parts.store, parts.clock
    if parts.lifecycle is None:
        parts.lifecycle = Lifecycle(cfg, store, parts.push, clock)
    if parts.streams is None:
        parts.streams = StreamGate(lambda: cfg().engine.api.streams, stream_ceiling)
    parts.console = Console(ConsoleParts(cfg, store, parts.registry, parts.calls,
                                         parts.queues, parts.lifecycle, clock))
    return [
        engine_routes(_Status(parts), parts.holder),
        app_routes(cfg, store.intents, clock, parts.randbelow, parts.guard),
        device_routes(cfg, store.devices, parts.push, store.users),
        call_routes(cfg, parts.registry, parts.calls, parts.nodes, parts.queues, clock,
                    parts.owners),
        transfer_target_routes(cfg, parts.registry),
        callback_routes(store.callbacks, parts.notifier, clock),
        lifecycle_routes(cfg, parts.lifecycle, clock),
        sms_routes(cfg, store.sms, parts.sms, clock),
        inbound_routes(cfg, store.sms_inbound, parts.inbound, clock),
        livedata_routes(cfg, parts.queues, clock, parts.streams),
        parts.console.routes,
        user_routes(UsersService(cfg, store.users, clock)),
        widget_routes(cfg, store.intents, parts.queues, clock, parts.randbelow, parts.guard),
    ]


def _app(door: Door, routes: Iterable[web.AbstractRouteDef],
         budget: ConnectionBudget, console: Console | None = None) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES,
                          middlewares=[count_requests, problem_middleware, door.middleware])
    app.add_routes(list(routes))
    if console is not None:  # its event streams end when the server stops
        app.on_shutdown.append(console.close)
    app.add_routes(openapi_routes())
    app[BUDGET] = budget
    return app


def build_apps(parts: ApiParts) -> tuple[web.Application, web.Application | None]:
    """(the app for ``listen``, the admin app for ``admin_listen`` or None)."""
    assert parts.lifecycle is None or isinstance(parts.lifecycle, Lifecycle)
    api = parts.config().engine.api
    split = api.admin_listen is not None
    public_limit, admin_limit = http_budget(api.connections, admin_listener=split,
                                            fds=parts.fds)

    def budget(limit: int, listener: str) -> ConnectionBudget:
        return ConnectionBudget(
            limit, lambda: parts.config().engine.api.connections.per_address, listener)

    features = feature_routes(parts, stream_ceiling=public_limit // 2)
    assert parts.lifecycle is not None
    door = Door(parts.config, sessions=parts.lifecycle.sessions.prove,
                providers=provider_check(parts.config), buckets=parts.buckets)
    defs = [d for routes in features for d in routes]

    async def readiness() -> list[str]:
        return await not_ready(parts)

    if not split:
        return _app(door, defs + list(ops_routes(readiness)), budget(public_limit, "api"),
                    parts.console), None
    assert admin_limit is not None
    admin = [d for d in defs if spec_of(d.handler).admin]  # type: ignore[attr-defined,union-attr]
    public = [d for d in defs if not spec_of(d.handler).admin]  # type: ignore[attr-defined,union-attr]
    return (_app(door, public + list(ops_routes(readiness, with_metrics=False)),
                 budget(public_limit, "api")),
            _app(door, admin + list(ops_routes(readiness)), budget(admin_limit, "admin"),
                 parts.console))


def build_app(parts: ApiParts) -> web.Application:
    """Every route on one app (``admin_listen`` unset)."""
    app, admin = build_apps(parts)
    if admin is not None:
        raise ValueError("engine.api.admin_listen is set: use build_apps")
    return app


async def serve(app: web.Application, listen: str, what: str = "HTTP API") -> None:
    """Serve until cancelled (run it in the engine's TaskGroup)."""
    host, _, port = listen.rpartition(":")
    runner = ApiRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, int(port), backlog=BACKLOG)
    await site.start()
    budget = app.get(BUDGET)
    log.info("%s listening on %s (at most %s connections)", what, listen,
             budget.limit if budget is not None else "unlimited")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
