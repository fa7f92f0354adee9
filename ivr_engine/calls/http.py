"""Routes for agents and the contact centre's systems: call context, transfers, live calls.

All are admin routes (the door checks ``engine.api.admin_token``; without a configured token
they refuse everything). Transfer bodies come through ``input``.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Callable

from aiohttp import web
from pydantic import ValidationError

from ..api.input import read_model
from ..api.principal import Principal
from ..api.problems import Problem
from ..api.routes import ADMIN, ApiRoutes
from ..api.schemas import reply
from .owners import FORWARDED_BY, OwnerDown, Owners
from .schemas import CallContext, LiveCall, LiveCalls, TransferBody, TransferResult
from .transfer import CONFLICT, UNAVAILABLE, TransferProblem, transfer_call

log = logging.getLogger("ivr_engine.api")


_PHASES = {"IvrPhase": "ivr", "RingPhase": "ringing", "BridgePhase": "bridged",
           "TokenPhase": "token"}
UNKNOWN_CALL = "no such call (or its record is older than engine.call_records.retention_days)"


def live_call(session: Any, now: dt.datetime) -> LiveCall | None:
    """A live session as the admin list shows it (None before it is routed)."""
    info, rt = session.info, session.runtime
    if info is None:
        return None
    phase = _PHASES.get(type(session.phase).__name__, "starting") if session.phase else \
        "starting"
    return LiveCall(id=info.id, app=info.app, entry=info.entry, caller=info.caller,
                    language=info.language, user=info.user, verified=info.verified,
                    phase=phase,
                    path=list(rt.path) if rt is not None else list(info.path),
                    waiting_since=info.started_at,
                    waiting_seconds=max(0.0, round((now - info.started_at).total_seconds(), 3)),
                    node=info.node, engine=info.engine)


def live_calls(calls: Any, now: dt.datetime) -> LiveCalls:
    """The calls the engine is driving now, oldest first (the admin list and the console)."""
    sessions = list(calls.sessions.values()) if calls is not None else []
    live = sorted((c for c in (live_call(s, now) for s in sessions) if c is not None),
                  key=lambda c: c.waiting_since)
    return LiveCalls(count=len(live), calls=live)


async def call_context(registry: Any, queues: Any, call_id: str) -> CallContext | None:
    """A call's context (live or from its record) with its queue position while it waits
    in one; None for an unknown call (the admin route and the console)."""
    info = await registry.lookup(call_id)
    if info is None:
        return None
    waiting = queues.call_queue(info.id) if queues is not None else None
    return CallContext.model_validate(info).model_copy(update={"queue": waiting})


def call_routes(config: Callable[[], Any], registry: Any, calls: Any, nodes: list,
                queues: Any, clock: Callable[[], dt.datetime],
                owners: Owners | None = None) -> ApiRoutes:
    """``registry``: the CallRegistry; ``calls``: the live sessions (calls.manager.Calls);
    ``nodes``: the Asterisk nodes (AMI redirects); ``queues``: the QueueMonitor or None;
    ``owners``: the engines holding calls this one does not (owners.py), or None."""
    routes = ApiRoutes("calls")

    @routes.get("/v1/calls/{call_id}", summary="A call's context, for screen pops",
                security=ADMIN, responses={200: CallContext},
                problems={404: UNKNOWN_CALL})
    async def get_call(request: web.Request, who: Principal) -> web.Response:
        """What the engine knows of a call, for screen pops."""
        context = await call_context(registry, queues, request.match_info["call_id"])
        if context is None:
            raise Problem(404, "Unknown call", UNKNOWN_CALL)
        owner = owners.elsewhere(context, request) if owners is not None else None
        if owner is not None:  # its engine knows where it waits now
            try:
                return await owners.forward(request, owner)  # type: ignore[union-attr]
            except OwnerDown as exc:
                log.warning("GET %s: %s; answered from the call's record", request.path,
                            exc.detail)
        return reply(context)

    @routes.post("/v1/calls/{call_id}/transfer", summary="Move a call to a queue or an agent",
                 security=ADMIN, body=TransferBody, responses={202: TransferResult},
                 problems={403: "the queue is outside the structure the call entered",
                           404: UNKNOWN_CALL, 409: CONFLICT,
                           422: "`to` is not queue:<name> or endpoint:<name> (`field`: to)",
                           502: "Asterisk refused the redirect",
                           503: UNAVAILABLE})
    async def transfer(request: web.Request, who: Principal) -> web.Response:
        """``{"to": "queue:<name>" | "endpoint:<name>"}``: over ARI while the call is in the
        IVR, with an AMI redirect once it has left Stasis (``transfer.py``)."""
        call_id = request.match_info["call_id"]
        info = await registry.lookup(call_id)
        if info is None:
            raise Problem(404, "Unknown call", f"no such call {call_id!r}")
        owner = owners.elsewhere(info, request) if owners is not None else None
        if owner is not None:  # only the engine driving the call can move it
            try:
                return await owners.forward(request, owner)  # type: ignore[union-attr]
            except OwnerDown as exc:
                log.warning("transfer of %s: %s", call_id, exc.detail)
                raise TransferProblem(503, "Transfer unavailable", f"{exc.detail}; retry "
                                      "once it is back", "owner-down",
                                      headers={"Retry-After": "5"}) from None
        body = await read_model(request, TransferBody)
        result = await transfer_call(info, body.to, calls=calls, registry=registry,
                                     nodes=nodes, config=config)
        return reply(result, status=202)

    @routes.get("/v1/admin/calls", summary="Live calls", security=ADMIN,
                responses={200: LiveCalls})
    async def list_calls(request: web.Request, who: Principal) -> web.Response:
        """The calls the engine is driving now — and those of the other engines on its
        database (each asked once; `unreachable` names those that did not answer): app,
        path, language, waiting since."""
        live = live_calls(calls, clock())
        if owners is None or FORWARDED_BY in request.headers:
            return reply(live)
        theirs, unreachable = await owners.gather(request, clock())
        merged = list(live.calls)
        for c in theirs:
            try:  # another engine's version may answer another shape
                merged.append(LiveCall.model_validate(c))
            except ValidationError as exc:
                log.warning("/v1/admin/calls: a call of engine %r left out: %s",
                            c.get("engine") if isinstance(c, dict) else None,
                            " ".join(str(exc).split())[:200])
        merged.sort(key=lambda c: c.waiting_since)
        return reply(LiveCalls(count=len(merged), calls=merged, unreachable=unreachable))

    return routes

