"""aiohttp's TestServer serving through the engine's own runner (``api/listener.py``), so
in-process tests see what the engine's listener does before any middleware: problem answers
for requests the HTTP parser refuses, and the app's budget of connections."""

from __future__ import annotations

from typing import Any

from aiohttp import test_utils, web

from ivr_engine.api.listener import ApiRunner


class ApiTestServer(test_utils.TestServer):
    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        kwargs["handler_cancellation"] = False  # as server.serve runs it (aiohttp's default)
        return ApiRunner(self.app, **kwargs)
