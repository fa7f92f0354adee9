"""Routes for agents and the contact centre's systems: call context, transfers, live calls.

All need ``Authorization: Bearer <engine.api.admin_token>``; without a configured token
they refuse everything (see ``auth``). Transfer bodies come through ``input``.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from aiohttp import web

from ..ami import AmiError
from ..api.auth import require_admin
from ..api.context import ApiContext
from ..api.input import read_model
from ..api.problems import Problem
from ..api.routes import ADMIN_TOKEN, ApiRoutes
from ..api.schemas import reply
from .schemas import CallContext, LiveCall, LiveCalls, TransferBody, TransferResult
from .transfer import CONFLICT, UNAVAILABLE, transfer_call

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
                    language=info.language, phase=phase,
                    path=list(rt.path) if rt is not None else list(info.path),
                    waiting_since=info.started_at,
                    waiting_seconds=max(0.0, round((now - info.started_at).total_seconds(), 3)))


def call_routes(ctx: ApiContext) -> ApiRoutes:
    routes = ApiRoutes("calls")

    @routes.get("/v1/calls/{call_id}", summary="A call's context, for screen pops",
                security=ADMIN_TOKEN, responses={200: CallContext},
                problems={404: UNKNOWN_CALL})
    async def get_call(request: web.Request) -> web.Response:
        """What the engine knows of a call, for screen pops."""
        require_admin(ctx.config(), request)
        info = await ctx.registry.lookup(request.match_info["call_id"])
        if info is None:
            raise Problem(404, "Unknown call", UNKNOWN_CALL)
        waiting = ctx.queues.call_queue(info.id) if ctx.queues is not None else None
        return reply(CallContext.model_validate(info).model_copy(update={"queue": waiting}))

    @routes.post("/v1/calls/{call_id}/transfer", summary="Move a call to a queue or an agent",
                 security=ADMIN_TOKEN, body=TransferBody, responses={202: TransferResult},
                 problems={403: "the queue is outside the structure the call entered",
                           404: UNKNOWN_CALL, 409: CONFLICT,
                           422: "`to` is not queue:<name> or endpoint:<name> (`field`: to)",
                           502: "Asterisk refused the redirect",
                           503: UNAVAILABLE})
    async def transfer(request: web.Request) -> web.Response:
        """``{"to": "queue:<name>" | "endpoint:<name>"}``: over ARI while the call is in the
        IVR, with an AMI redirect once it has left Stasis (``transfer.py``)."""
        require_admin(ctx.config(), request)
        call_id = request.match_info["call_id"]
        info = await ctx.registry.lookup(call_id)
        if info is None:
            raise Problem(404, "Unknown call", f"no such call {call_id!r}")
        body = await read_model(request, TransferBody)
        result = await transfer_call(info, body.to, calls=ctx.calls, registry=ctx.registry,
                                     nodes=ctx.nodes, config=ctx.config)
        return reply(result, status=202)

    @routes.get("/v1/admin/calls", summary="Live calls", security=ADMIN_TOKEN,
                responses={200: LiveCalls}, tag="admin")
    async def list_calls(request: web.Request) -> web.Response:
        """The calls the engine is driving now: app, path, language, waiting since."""
        require_admin(ctx.config(), request)
        now = ctx.clock()
        sessions = list(ctx.calls.sessions.values()) if ctx.calls is not None else []
        calls = [c for c in (live_call(s, now) for s in sessions) if c is not None]
        calls.sort(key=lambda c: c.waiting_since)
        return reply(LiveCalls(count=len(calls), calls=calls))

    return routes

