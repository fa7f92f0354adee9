"""The HTTP API assembled: every feature's routes, the public health route, the problem+json
middleware and the body size limit. Features own their routes (``<feature>/http.py``); this
module only puts them together.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict

from aiohttp import web

from ..apps.http import app_routes
from ..calls.http import call_routes
from ..wakeup.http import device_routes
from .context import ApiContext
from .input import MAX_BODY_BYTES
from .problems import problem_middleware

log = logging.getLogger("ivr_engine.api")


def build_app(ctx: ApiContext) -> web.Application:
    routes = web.RouteTableDef()

    @routes.get("/v1/health")
    async def health(request: web.Request) -> web.Response:
        return web.json_response({
            "status": "ok",
            "ari_connected": bool(ctx.nodes) and all(n.ari.connected for n in ctx.nodes),
            "calls_in_ivr": len(ctx.calls) if ctx.calls is not None else 0,
            "context_webhook": asdict(ctx.notifier.stats) if ctx.notifier else None,
        })

    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[problem_middleware])
    app.add_routes(routes)
    for feature in (app_routes, device_routes, call_routes):
        app.add_routes(feature(ctx))
    return app


async def serve(app: web.Application, listen: str) -> None:
    """Serve until cancelled (run it in the engine's TaskGroup)."""
    host, _, port = listen.rpartition(":")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, int(port))
    await site.start()
    log.info("HTTP API listening on %s", listen)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
