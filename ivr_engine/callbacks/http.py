"""Routes for the contact centre's systems: the callback requests (all admin routes).

- ``GET /v1/callbacks`` (``state``, ``queue``, ``after``, ``limit``), ``GET /v1/callbacks/{id}``;
- ``POST /v1/callbacks/{id}/claim`` ``{"agent"}``: requested → claimed, with a claim token;
  ``409`` when it is not requested any more (claimed by someone else, placed by the engine,
  done);
- ``POST /v1/callbacks/{id}/complete`` ``{"claim", "outcome", "note"}``: the claim's owner
  says how it went (``answered`` → completed, anything else → failed); ``409`` for a claim
  that is not (or no longer) this one. A completed or failed callback goes to the webhooks
  (``callback.completed`` / ``callback.failed``).
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any, Callable

from aiohttp import web

from ..api.input import read_model
from ..api.principal import Principal
from ..api.problems import Problem
from ..api.routes import ADMIN, ApiRoutes, query_of
from ..api.schemas import reply
from .announce import announce_callback
from .policy import api_result
from .schemas import Callback, CallbackList, CallbackQuery, Claimed, ClaimBody, CompleteBody

NOT_FOUND = "no such callback request"


def _id(request: web.Request) -> int:
    raw = request.match_info["callback_id"]
    if not (raw.isascii() and raw.isdigit() and len(raw) < 10):
        raise Problem(404, "Not found", NOT_FOUND, field="callback_id")
    return int(raw)


def callback_routes(repo: Any, notifier: Any, clock: Callable[[], dt.datetime]) -> ApiRoutes:
    """``repo``: the CallbackRepo; ``notifier``: the webhooks (None: none configured)."""
    routes = ApiRoutes("callbacks")

    async def found(callback_id: int) -> Any:
        row = await repo.get(callback_id)
        if row is None:
            raise Problem(404, "Not found", NOT_FOUND, field="callback_id")
        return row

    @routes.get("/v1/callbacks", summary="Callback requests", security=ADMIN,
                query=CallbackQuery, responses={200: CallbackList})
    async def list_callbacks(request: web.Request, who: Principal) -> web.Response:
        """Oldest first; filter by `state` and `queue`; page with `after`."""
        q: CallbackQuery = query_of(request)
        rows = await repo.find(q.state, q.queue, after=q.after, limit=q.limit)
        items = [Callback.model_validate(r) for r in rows]
        return reply(CallbackList(count=len(items), callbacks=items,
                                  next_after=items[-1].id if len(items) == q.limit else None))

    @routes.get("/v1/callbacks/{callback_id}", summary="One callback request",
                security=ADMIN, responses={200: Callback}, problems={404: NOT_FOUND})
    async def get_callback(request: web.Request, who: Principal) -> web.Response:
        """Where it stands: state, owner, attempts, last outcome."""
        return reply(Callback.model_validate(await found(_id(request))))

    @routes.post("/v1/callbacks/{callback_id}/claim", summary="Take a callback request",
                 security=ADMIN, body=ClaimBody, responses={200: Claimed},
                 problems={404: NOT_FOUND, 409: "it is not waiting any more: claimed by "
                           "another client or the engine, or done"})
    async def claim(request: web.Request, who: Principal) -> web.Response:
        """Only one client gets it (compare-and-set): keep the `claim` to complete it."""
        callback_id = _id(request)
        body = await read_model(request, ClaimBody)
        token = secrets.token_hex(16)
        row = await repo.claim(callback_id, body.agent, token, clock())
        if row is None:
            now = await found(callback_id)
            raise Problem(409, "Conflict", f"callback {callback_id} is {now.state}"
                          + (f" (claimed by {now.claimed_by})" if now.claimed_by else ""))
        return reply(Claimed.model_validate(
            {**Callback.model_validate(row).model_dump(), "claim": token}))

    @routes.post("/v1/callbacks/{callback_id}/complete", summary="Say how a claimed callback "
                 "went", security=ADMIN, body=CompleteBody, responses={200: Callback},
                 problems={404: NOT_FOUND, 409: "not claimed with this claim (another "
                           "client's, the engine's, or already completed)"})
    async def complete(request: web.Request, who: Principal) -> web.Response:
        """`answered` completes it; any other outcome fails it."""
        callback_id = _id(request)
        body = await read_model(request, CompleteBody)
        row = await repo.complete(callback_id, body.claim, api_result(body.outcome),
                                  body.outcome, body.note, clock())
        if row is None:
            now = await found(callback_id)
            raise Problem(409, "Conflict", f"callback {callback_id} is {now.state}; this "
                          "claim does not hold it", field="claim")
        announce_callback(notifier, row, clock())
        return reply(Callback.model_validate(row))

    return routes
