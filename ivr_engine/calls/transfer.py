"""Moving a call where the API asked (``POST /v1/calls/<id>/transfer``): the route's service.

A call the engine drives is moved by its own session, over ARI: the request goes onto the
call's queue with its events and the session answers it exactly once, whatever happens
(``phase.TransferRequest``). The route waits with deadlines of its own, and giving up never
touches the call:

- the call must pick the request up within ``PICKUP_SECONDS``; when it does not (it is busy,
  e.g. stopping a user's ringing, which can take ~6 s), the request is withdrawn — nothing
  was done — and the answer is ``503`` with ``reason: busy`` and ``Retry-After``;
- once picked up, the move is waited for until ``DONE_SECONDS`` after the request; past that
  the answer is ``409`` with ``reason: in-progress``: the call is being moved and will be
  (``GET /v1/calls/<id>`` shows where it went).

A call that has left Stasis for the dialplan (a queue, an endpoint, the fallback) is moved
with an AMI ``Redirect``; a call still in Stasis never is. Whether it left is what its
session says (the StasisEnd it read), or the call's state when no session drives it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Callable

from aiohttp import web

from ..ami import AmiError
from ..api.problems import PROBLEM, Problem
from ..api.schemas import ProblemDocument
from ..ari import AriError
from ..ivr.destinations import Destination, parse_destination
from ..routing.transfer import TransferRefused, check_transfer
from .phase import TransferRequest
from .registry import CallInfo
from .schemas import TransferResult

log = logging.getLogger("ivr_engine.api")

PICKUP_SECONDS = 5.0
DONE_SECONDS = 15.0

#: the route's declared problem answers (``reason`` says which)
CONFLICT = ("`reason`: ended (the call has ended), in-progress (it is being moved: see GET "
            "/v1/calls/<id>), token (the caller is still keying an app token), bridged "
            "(talking to a user), ending (the engine is ending it: message, callback, "
            "hang-up)")
UNAVAILABLE = ("`reason`: busy (the call did not pick the request up in time; nothing was "
               "done, retry after Retry-After), not-driven (no engine drives it right now), "
               "no-ami (it has left the IVR and AMI is not configured), owner-down (another "
               "engine holds the call and did not answer when the request was forwarded to "
               "it), other-node (it is on a node no engine on the database names as its own)")

_CONFLICTS = {
    "token": "the caller is still keying the app's token; retry once it is in a menu",
    "bridged": "the caller is talking to a user; the engine does not move a conversation",
    "ending": "the engine is ending this call (a closing message, a callback or a hang-up)",
}


class TransferProblem(Problem):
    """A refused or unfinished transfer: a problem document with a ``reason`` member."""

    def __init__(self, status: int, title: str, detail: str, reason: str, **kw: Any):
        super().__init__(status, title, detail, **kw)
        self.reason = reason

    def response(self, request: web.Request) -> web.Response:
        body = ProblemDocument(title=self.title, status=self.status, detail=self.detail,
                               instance=request.path, reason=self.reason  # type: ignore[call-arg]
                               ).model_dump(exclude_none=True)
        return web.Response(status=self.status, text=json.dumps(body), content_type=PROBLEM,
                            headers=self.headers)


def _ended(call_id: str) -> TransferProblem:
    return TransferProblem(409, "Call ended", f"call {call_id!r} has ended", "ended")


async def transfer_call(info: CallInfo, to: str, *, calls: Any, registry: Any, nodes: list,
                        config: Callable[[], Any]) -> TransferResult:
    """Move the call ``info`` to ``to`` (``queue:<name>`` | ``endpoint:<name>``), or raise
    the problem that says why not."""
    call_id = info.id
    try:
        dest = parse_destination(to)
        check_transfer(config().routing.queues_by_root, info.root_menu, info.app, dest)
    except ValueError as exc:
        raise Problem(422, "Invalid request", str(exc), field="to") from None
    except TransferRefused as exc:
        log.info("transfer of %s to %s refused: %s", call_id, dest, exc.detail)
        raise Problem(exc.status, "Transfer refused", exc.detail) from None
    session = calls.get(call_id) if calls is not None else None
    if info.state == "ended":
        raise _ended(call_id)
    if session is not None and info.state != "handed-off":
        reason = await _ask_session(session, dest)
        if reason == "moved":
            return TransferResult(status="transferred", to=str(dest), via="ivr")
        if reason == "ended":
            raise _ended(call_id)
        if reason in _CONFLICTS:
            raise TransferProblem(409, "Transfer refused", _CONFLICTS[reason], reason)
        if reason != "handed-off":  # failed: the call broke, and did not reach the fallback
            raise TransferProblem(502, "Transfer failed", "the call failed while it was "
                                  "being moved", "failed")
    elif info.state != "handed-off":
        raise TransferProblem(503, "Transfer unavailable", "no engine drives this call right "
                              "now (it is taken back after a reconnect); retry",
                              "not-driven", headers={"Retry-After": "1"})
    return await _redirect(info, dest, registry=registry, nodes=nodes, config=config)


async def _ask_session(session: Any, dest: Destination) -> str:
    """Hand the request to the call's session; its outcome's reason, or a problem."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DONE_SECONDS
    req = TransferRequest(dest)
    session.offer(req)
    try:
        async with asyncio.timeout(PICKUP_SECONDS):
            await req.picked.wait()
    except TimeoutError:
        if req.withdraw():
            log.warning("transfer of %s to %s: the call did not pick it up in %.0f s",
                        session.channel_id, dest, PICKUP_SECONDS)
            raise TransferProblem(503, "Transfer unavailable", f"the call did not take the "
                                  f"request within {PICKUP_SECONDS:g} s (it is busy); nothing "
                                  "was done, retry", "busy", headers={"Retry-After": "2"}
                                  ) from None
    try:
        async with asyncio.timeout_at(deadline):
            await req.settled.wait()
    except TimeoutError:
        raise TransferProblem(409, "Transfer in progress", f"the call is being moved to "
                              f"{dest}; GET /v1/calls/<id> shows where it went",
                              "in-progress") from None
    assert req.outcome is not None
    return req.outcome.reason


async def _redirect(info: CallInfo, dest: Destination, *, registry: Any, nodes: list,
                    config: Callable[[], Any]) -> TransferResult:
    """AMI ``Redirect`` of a call that has left Stasis for the dialplan."""
    call_id = info.id
    node = node_of_channel(nodes, call_id)
    if node is None and nodes:  # engines sharing a database see each other's records
        raise TransferProblem(503, "Transfer unavailable", f"call {call_id!r} is on a node "
                              "this engine does not drive; ask the engine of its node",
                              "other-node")
    if node is None or node.ami is None:
        raise TransferProblem(503, "Transfer unavailable", "the call has left the IVR and AMI "
                              "is not configured (engine.ami.password)", "no-ami")
    dp = config().engine.dialplan
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
            registry.ended(call_id)
            raise _ended(call_id) from None
        raise Problem(502, "Transfer failed",
                      f"Asterisk refused the redirect: {exc}") from None
    current = registry.get(call_id) or info
    registry.update(call_id, destination=str(dest), transfers=current.transfers + [str(dest)])
    return TransferResult(status="transferred", to=str(dest), via="ami")


def node_of_channel(nodes: list, channel_id: str) -> Any:
    """The node a channel is on: its id starts with the node's system name (``node-a-...``);
    the one node of the shorthand (no system name checked) holds every channel."""
    if len(nodes) == 1 and getattr(nodes[0], "system_name", None) is None:
        return nodes[0]
    return next((n for n in nodes if getattr(n, "system_name", None)
                 and channel_id.startswith(f"{n.system_name}-")), None)


async def _channel_gone(ari: Any, channel_id: str) -> bool:
    try:
        return await ari.get_channel(channel_id) is None
    except AriError:
        return False
