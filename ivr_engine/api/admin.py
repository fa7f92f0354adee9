"""Engine-level routes: ``GET /v1/health`` (public) and ``POST /v1/admin/reload`` (admin
token). Feature admin routes live with their features (apps status in ``apps/http.py``, live
calls in ``calls/http.py``, test pushes in ``wakeup/http.py``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict

from aiohttp import web

from .auth import require_admin
from .context import ApiContext
from .problems import PROBLEM, Problem
from .routes import ADMIN_TOKEN, PUBLIC, ApiRoutes, Reply
from .schemas import Health, ReloadProblem, ReloadSummary, WebhookStats, reply

log = logging.getLogger("ivr_engine.api")

# settings a reload reads but only a restart applies
RESTART_ONLY = (("engine.ari", lambda c: c.engine.ari),
                ("engine.ami", lambda c: c.engine.ami),
                ("engine.api.listen", lambda c: c.engine.api.listen),
                ("engine.database_url", lambda c: c.engine.database_url))


def engine_routes(ctx: ApiContext) -> ApiRoutes:
    routes = ApiRoutes("engine")

    @routes.get("/v1/health", summary="The engine answers; is Asterisk connected",
                security=PUBLIC, responses={200: Health})
    async def health(request: web.Request) -> web.Response:
        """Public; for load balancers and dashboards."""
        stats = ctx.notifier.stats if ctx.notifier else None
        return reply(Health(
            status="ok",
            ari_connected=bool(ctx.nodes) and all(n.ari.connected for n in ctx.nodes),
            calls_in_ivr=len(ctx.calls) if ctx.calls is not None else 0,
            context_webhook=WebhookStats(**asdict(stats)) if stats is not None else None))

    @routes.post("/v1/admin/reload", summary="Reload the configuration file",
                 security=ADMIN_TOKEN, responses={200: ReloadSummary},
                 problems={422: Reply(ReloadProblem, "the file is refused, the running config "
                                      "stays; `errors` lists every problem as "
                                      "`file:line: key.path: message`"),
                           503: "this process cannot reload (no config holder)"},
                 tag="admin")
    async def reload(request: web.Request) -> web.Response:
        """Re-reads the file the engine was started with, off the event loop (as SIGHUP
        does). Calls in progress keep the config they started with."""
        require_admin(ctx.config(), request)
        holder = ctx.holder
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
