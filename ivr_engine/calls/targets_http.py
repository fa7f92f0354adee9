"""``GET /v1/calls/{call_id}/transfer-targets`` (admin, as the other call routes): where an
agent may transfer the call — the queues of the structure it entered (an app's call: its
app's tree), and any agent. Computed by ``routing.transfer.transfer_targets`` from the
running config and the call's record: the set ``POST /v1/calls/{call_id}/transfer``
checks, so what is listed is what is allowed.
"""

from __future__ import annotations

from typing import Any, Callable

from aiohttp import web

from ..api.principal import Principal
from ..api.problems import Problem
from ..api.routes import ADMIN, ApiRoutes
from ..api.schemas import reply
from ..routing.transfer import transfer_targets
from .schemas import TransferTargets

UNKNOWN_CALL = "no such call (or its record is older than engine.call_records.retention_days)"


def transfer_target_routes(config: Callable[[], Any], registry: Any) -> ApiRoutes:
    """``registry``: the CallRegistry (live calls, then the call records)."""
    routes = ApiRoutes("calls")

    @routes.get("/v1/calls/{call_id}/transfer-targets", summary="Where an agent may transfer "
                "a call", security=ADMIN, responses={200: TransferTargets},
                problems={404: UNKNOWN_CALL})
    async def transfer_targets_of(request: web.Request, who: Principal) -> web.Response:
        """The queues of the structure the call entered (for an app's call, its app's tree:
        an agent never moves it into another app's queues), sorted; agents are unrestricted.
        An ended call still answers (its record holds where it entered)."""
        call_id = request.match_info["call_id"]
        info = await registry.lookup(call_id)
        if info is None:
            raise Problem(404, "Unknown call", UNKNOWN_CALL)
        t = transfer_targets(config().routing.queues_by_root, info.root_menu, info.app)
        return reply(TransferTargets(call_id=info.id, app=t.app, root_menu=t.root_menu,
                                     queues=list(t.queues), agents="unrestricted"))

    return routes
