"""Engine-level routes: ``GET /v1/health`` (public) and ``POST /v1/admin/reload`` (admin
token). Feature admin routes live with their features (apps status in ``apps/http.py``, live
calls in ``calls/http.py``, test pushes in ``wakeup/http.py``).

What the health route reads of the engine comes through :class:`EngineStatus`, which the
composition root implements over its nodes, calls and webhook notifier.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from aiohttp import web

from .principal import Principal
from .problems import PROBLEM, Problem
from .routes import ADMIN, PUBLIC, ApiRoutes, Reply
from .schemas import Health, ReloadProblem, ReloadSummary, WebhookStats, reply

log = logging.getLogger("ivr_engine.api")

# settings a reload reads but only a restart applies
RESTART_ONLY = (("engine.ari", lambda c: c.engine.ari),
                ("engine.ami", lambda c: c.engine.ami),
                ("engine.nodes", lambda c: c.engine.nodes),
                ("engine.api.listen", lambda c: c.engine.api.listen),
                ("engine.api.admin_listen", lambda c: c.engine.api.admin_listen),
                ("engine.database_url", lambda c: c.engine.database_url),
                ("context_webhook", lambda c: c.model.context_webhook),
                ("webhooks", lambda c: c.model.webhooks),
                # the placer runs when the engine starts with queues to place
                ("callbacks.queues", lambda c: bool(c.model.callbacks.queues)))


class EngineStatus(Protocol):
    def ari_connected(self) -> bool: ...
    def calls_in_ivr(self) -> int: ...
    def webhook_stats(self) -> WebhookStats | None: ...


def engine_routes(status: EngineStatus, holder: Any) -> ApiRoutes:
    """``holder``: the config.reloader.ConfigHolder (None: this process cannot reload)."""
    routes = ApiRoutes("engine")

    @routes.get("/v1/health", summary="The engine answers; is Asterisk connected",
                security=PUBLIC, responses={200: Health})
    async def health(request: web.Request) -> web.Response:
        """Public; for load balancers and dashboards."""
        return reply(Health(status="ok", ari_connected=status.ari_connected(),
                            calls_in_ivr=status.calls_in_ivr(),
                            context_webhook=status.webhook_stats()))

    @routes.post("/v1/admin/reload", summary="Reload the configuration file",
                 security=ADMIN, responses={200: ReloadSummary},
                 problems={422: Reply(ReloadProblem, "the file is refused, the running config "
                                      "stays; `errors` lists every problem as "
                                      "`file:line: key.path: message`"),
                           503: "this process cannot reload (no config holder)"})
    async def reload(request: web.Request, who: Principal) -> web.Response:
        """Re-reads the file the engine was started with, off the event loop (as SIGHUP
        does). Calls in progress keep the config they started with."""
        if holder is None:
            raise Problem(503, "Reload unavailable", "this process has no config holder")
        old = holder.current
        outcome = await holder.reload_outcome()
        if outcome.unexpected:
            raise Problem(500, "Reload failed", "the engine failed to read the file; the "
                          "error is in its log (the running config stays)")
        if outcome.config is None:
            errors = [str(i) for i in outcome.issues if i.severity == "error"]
            doc = ReloadProblem(
                title="Configuration refused", status=422, instance=request.path,
                detail=f"{old.path}: {len(errors)} error(s); the running config stays:\n"
                       + "\n".join(errors), errors=errors,
                warnings=[str(i) for i in outcome.issues if i.severity != "error"])
            return web.Response(status=422, content_type=PROBLEM,
                                text=json.dumps(doc.model_dump(exclude_none=True)))
        new = outcome.config
        return reply(ReloadSummary(
            status="reloaded", path=new.path, menus=len(new.tree.menus),
            apps=len(new.model.apps), access_points=len(new.model.access_points),
            users=len(new.users), warnings=[str(w) for w in outcome.issues],
            restart_needed=[name for name, get in RESTART_ONLY if get(new) != get(old)]))

    return routes
