"""Routes for agents and the contact centre's systems: call context and transfers.

Both need ``Authorization: Bearer <engine.api.admin_token>``; without a configured token
they refuse everything (see ``auth``). Transfer bodies come through ``input``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from ..ami import AmiError
from ..api.auth import require_admin
from ..api.context import ApiContext
from ..api.input import read_json_object
from ..api.problems import Problem
from ..ari import AriError
from ..ivr.destinations import parse_destination
from ..routing.transfer import TransferRefused, check_transfer
from .phase import TransferRequest

log = logging.getLogger("ivr_engine.api")


def call_routes(ctx: ApiContext) -> web.RouteTableDef:
    routes = web.RouteTableDef()

    @routes.get("/v1/calls/{call_id}")
    async def get_call(request: web.Request) -> web.Response:
        """What the engine knows of a call, for screen pops."""
        require_admin(ctx.config(), request)
        info = ctx.registry.get(request.match_info["call_id"])
        if info is None:
            raise Problem(404, "Unknown call", "no such call (or it ended before the engine "
                          "last started)")
        return web.json_response(info.as_json())

    @routes.post("/v1/calls/{call_id}/transfer")
    async def transfer(request: web.Request) -> web.Response:
        """``{"to": "queue:<name>" | "endpoint:<name>"}``: over ARI while the call is in the
        IVR, with an AMI redirect once it has been handed to the dialplan."""
        require_admin(ctx.config(), request)
        call_id = request.match_info["call_id"]
        info = ctx.registry.get(call_id)
        if info is None:
            raise Problem(404, "Unknown call", f"no such call {call_id!r}")
        body = await read_json_object(request)
        try:
            dest = parse_destination(body.get("to"))
            check_transfer(ctx.config().routing.queues_by_root, info.root_menu, info.app, dest)
        except ValueError as exc:
            raise Problem(422, "Invalid request", str(exc), field="to") from None
        except TransferRefused as exc:
            log.info("transfer of %s to %s refused: %s", call_id, dest, exc.detail)
            raise Problem(exc.status, "Transfer refused", exc.detail) from None
        session = ctx.calls.get(call_id) if ctx.calls is not None else None
        if session is not None and info.state == "ivr":
            done = asyncio.get_running_loop().create_future()
            session.post(TransferRequest(dest, done))
            try:
                ok = await asyncio.wait_for(done, 5)
            except TimeoutError:
                ok = False
            if ok:
                return web.json_response({"status": "transferred", "to": str(dest),
                                          "via": "ivr"}, status=202)
        if info.state == "ended":
            raise Problem(409, "Call ended", f"call {call_id!r} has ended")
        node = ctx.nodes[0] if ctx.nodes else None  # one Asterisk today
        if node is None or node.ami is None:
            raise Problem(503, "Transfer unavailable", "the call has left the IVR and AMI is "
                          "not configured (engine.ami.password)")
        dp = ctx.config().engine.dialplan
        context = dp.queue if dest.kind == "queue" else dp.endpoint
        variables = {"IVR_DESTINATION": str(dest), "IVR_LANGUAGE": info.language}
        if dest.kind == "endpoint":
            variables["IVR_DIAL_TIMEOUT"] = str(dp.endpoint_ring_seconds)
        try:
            # queue and endpoint names travel as the extension (see dialplan/)
            await node.ami.redirect(info.channel_name, context, variables, exten=dest.target)
        except (AmiError, TimeoutError, OSError) as exc:
            if await _channel_gone(node.ari, call_id):
                # the hang-up may not have reached the registry yet
                ctx.registry.ended(call_id)
                raise Problem(409, "Call ended", f"call {call_id!r} has ended") from None
            raise Problem(502, "Transfer failed",
                          f"Asterisk refused the redirect: {exc}") from None
        ctx.registry.update(call_id, destination=str(dest),
                            transfers=info.transfers + [str(dest)])
        return web.json_response({"status": "transferred", "to": str(dest), "via": "ami"},
                                 status=202)

    return routes


async def _channel_gone(ari: Any, channel_id: str) -> bool:
    try:
        return await ari.get_channel(channel_id) is None
    except AriError:
        return False
