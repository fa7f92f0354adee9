"""Operations endpoints (public, for the supervisor and the monitoring system):

- ``GET /healthz`` — the process answers (liveness);
- ``GET /readyz`` — 200 when every Asterisk node is connected and ready (calls application
  with its calls taken back, registrations subscribed), the database answers, when
  configured AMI is logged in, and no background task keeps failing (``supervisor.py``);
  else 503 with the reasons;
- ``GET /metrics`` — Prometheus text exposition of :mod:`ivr_engine.metrics`.

The middleware counts every request by route template (never the raw path: ids would make
the series unbounded), method and status.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import metrics
from .routes import PUBLIC, ApiRoutes, Reply
from .schemas import Liveness, Readiness

# why the engine cannot take calls now (empty: it can); the composition root knows
NotReady = Callable[[], Awaitable[list[str]]]


@web.middleware
async def count_requests(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = request.match_info.route.resource
        template = route.canonical if route is not None else "unmatched"
        metrics.HTTP_REQUESTS.labels(template, request.method, str(status)).inc()


def ops_routes(not_ready: NotReady, *, with_metrics: bool = True) -> ApiRoutes:
    routes = ApiRoutes("engine")

    @routes.get("/healthz", summary="Liveness: the process answers", security=PUBLIC,
                responses={200: Liveness})
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    @routes.get("/readyz", summary="Readiness: ARI connected, database reachable, AMI when "
                "configured", security=PUBLIC, responses={
                    200: Readiness, 503: Reply(Readiness, "not ready: `reasons` says why")})
    async def readyz(request: web.Request) -> web.Response:
        reasons = await not_ready()
        if reasons:
            return web.json_response({"status": "not ready", "reasons": reasons}, status=503)
        return web.json_response({"status": "ready"})

    if not with_metrics:
        return routes

    @routes.get("/metrics", summary="Prometheus metrics", security=PUBLIC, responses={
        200: Reply(description="the Prometheus text exposition format",
                   media_type="text/plain", schema={"type": "string"})})
    async def metrics_text(request: web.Request) -> web.Response:
        """Served on the admin listener when `engine.api.admin_listen` is set."""
        body = generate_latest(metrics.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return routes
