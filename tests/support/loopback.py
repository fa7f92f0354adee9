"""An aiohttp app served on the loopback interface, for the local servers the tests talk to
(providers, webhook receivers): its runner (``cleanup()`` stops it) and its base URL."""

from __future__ import annotations

from typing import Any

from aiohttp import web


async def serve(app: web.Application, port: int = 0,
                **runner: Any) -> tuple[web.AppRunner, str]:
    """``app`` on 127.0.0.1:``port`` (0: a free port); ``runner``: AppRunner options."""
    r = web.AppRunner(app, **runner)
    await r.setup()
    site = web.TCPSite(r, "127.0.0.1", port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return r, f"http://127.0.0.1:{bound}"
