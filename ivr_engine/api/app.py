"""The HTTP API assembled: every feature's routes, the engine's own (health, reload,
``/openapi.json``), the problem+json middleware and the body size limit. Features own their
routes (``<feature>/http.py``, declared with ``routes.ApiRoutes``); this module only puts
them together.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from ..apps.http import app_routes
from ..calls.http import call_routes
from ..lifecycle.http import lifecycle_routes
from ..sms.http import sms_routes
from ..livedata.http import livedata_routes
from ..wakeup.http import device_routes
from .admin import engine_routes
from .context import ApiContext
from .input import MAX_BODY_BYTES
from .openapi import openapi_routes
from .ops import count_requests, ops_routes
from .problems import problem_middleware

log = logging.getLogger("ivr_engine.api")


def build_app(ctx: ApiContext) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES,
                          middlewares=[count_requests, problem_middleware])
    app.add_routes(engine_routes(ctx))
    for feature in (app_routes, device_routes, call_routes, ops_routes):
        app.add_routes(feature(ctx))
    app.add_routes(lifecycle_routes(ctx))
    app.add_routes(sms_routes(ctx))
    app.add_routes(livedata_routes(ctx))
    app.add_routes(openapi_routes())
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
