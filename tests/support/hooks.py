"""A local webhook receiver (plain HTTP on loopback) for the tests of the engine's webhooks:
it keeps every delivery (headers, JSON, raw body), checks nothing itself, and lets a test
wait for the deliveries it expects.

    async with HookReceiver() as hook:
        url = hook.url("/crm")                     # one receiver, several paths (URLs)
        ...
        got = await hook.wait(lambda d: d.payload["event"] == "call.queued")
        assert got.signed_with(SECRET)
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Self

from aiohttp import web

from .loopback import serve


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]
    payload: dict[str, Any]
    body: bytes

    def signed_with(self, secret: str) -> bool:
        sig = hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return self.headers.get("X-IVR-Signature") == f"sha256={sig}"


class HookReceiver:
    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base = ""

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.deliveries.append(Delivery(request.path, dict(request.headers), json.loads(body),
                                        body))
        self._changed.set()
        return web.Response(status=204)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._runner, self.base = await serve(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str = "/hook") -> str:
        return self.base + path

    def matching(self, predicate: Callable[[Delivery], bool]) -> list[Delivery]:
        return [d for d in self.deliveries if predicate(d)]

    async def wait(self, predicate: Callable[[Delivery], bool], timeout: float = 10,
                   count: int = 1) -> list[Delivery]:
        """The first ``count`` deliveries matching ``predicate``, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.matching(predicate)
            if len(got) >= count:
                return got[:count]
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [(d.path, d.payload.get("event"), d.payload.get("call_id"))
                        for d in self.deliveries[-20:]]
                raise TimeoutError(f"{len(got)} of {count} deliveries in {timeout}s; "
                                   f"seen: {seen}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass
