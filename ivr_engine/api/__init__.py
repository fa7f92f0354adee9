"""HTTP API (aiohttp): SDK call plans and devices, call context for agents, transfers.

- ``POST /v1/apps/{app}/calls`` — the SDK asks VoIP or PSTN; PSTN answers carry the fallback
  number and a one-time token to dial after it. ``Authorization: Bearer <the app's api_key>``.
- ``POST /v1/devices`` — a user's app registers its push tokens ``{"app", "user",
  "platform": "ios"|"android", "push_token", "voip_token", "app_version", "os_version",
  "model"}``. Bearer api key of that app.
- ``GET /v1/calls/{id}`` — what the engine knows of a call (app, path, caller, language,
  custom data) for screen pops. Bearer ``engine.api.admin_token``.
- ``POST /v1/calls/{id}/transfer`` — ``{"to": "queue:<name>" | "endpoint:<name>"}``. Bearer
  ``engine.api.admin_token``.
- ``GET /v1/health`` — public.

Errors are RFC 9457 problem documents (``application/problem+json``, ``problems``).
Authentication fails closed (``auth``), SDK routes are rate limited (``guards``), and every
body goes through one bounded parser (``input``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict

from aiohttp import web

from .admin import admin_routes
from .context import ApiContext
from .input import MAX_BODY_BYTES
from .problems import problem_middleware
from .sdk import sdk_routes

__all__ = ["ApiContext", "build_app", "serve"]

log = logging.getLogger("ivr_engine.api")


def build_app(ctx: ApiContext) -> web.Application:
    routes = web.RouteTableDef()

    @routes.get("/v1/health")
    async def health(request: web.Request) -> web.Response:
        engine = ctx.engine
        notifier = engine.services.notifier if engine else None
        return web.json_response({
            "status": "ok",
            "ari_connected": bool(engine and engine.ari.connected),
            "calls_in_ivr": len(engine.calls) if engine else 0,
            "context_webhook": asdict(notifier.stats) if notifier else None,
        })

    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[problem_middleware])
    app.add_routes(routes)
    app.add_routes(sdk_routes(ctx))
    app.add_routes(admin_routes(ctx))
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
