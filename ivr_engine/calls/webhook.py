"""Context passing: POST the call's context to a webhook when it reaches a queue.

Deliveries never block a call: a call only enqueues; one worker task (owned by the engine's
TaskGroup) sends, retrying with exponential backoff on network errors, timeouts, 408, 429 and
5xx. Every attempt of one delivery carries the same ``X-IVR-Delivery`` id so the receiver can
de-duplicate; with a secret, ``X-IVR-Signature: sha256=<hex HMAC of the body>``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

from .. import metrics

log = logging.getLogger("ivr_engine.webhook")

RETRY_STATUSES = {408, 425, 429}


@dataclass
class WebhookStats:
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    attempts: int = 0
    last_error: str = ""


class ContextNotifier:
    def __init__(self, url: str, *, timeout: float = 3.0, attempts: int = 4,
                 backoff: float = 0.5, secret: str | None = None, max_pending: int = 10_000):
        self.url = url
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self._secret = secret.encode() if secret else None
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(max_pending)
        self.stats = WebhookStats()

    def notify(self, payload: dict[str, Any]) -> None:
        """Enqueue a delivery; never blocks, never raises."""
        try:
            self._queue.put_nowait(payload)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            metrics.WEBHOOK_DELIVERIES.labels("dropped").inc()
            log.error("context webhook queue full: dropped the delivery for call %s",
                      payload.get("call_id"))

    async def run(self, concurrency: int = 4) -> None:
        """The sender; run it in the engine's TaskGroup, cancel it to stop."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as s:
            async with asyncio.TaskGroup() as tg:
                for _ in range(concurrency):
                    tg.create_task(self._worker(s))

    async def _worker(self, session: aiohttp.ClientSession) -> None:
        while True:
            payload = await self._queue.get()
            await self._deliver(session, payload)

    async def _deliver(self, session: aiohttp.ClientSession, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "X-IVR-Delivery": uuid.uuid4().hex,
                   "User-Agent": "ivr-engine"}
        if self._secret is not None:
            sig = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
            headers["X-IVR-Signature"] = f"sha256={sig}"
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            self.stats.attempts += 1
            try:
                async with session.post(self.url, data=body, headers=headers) as r:
                    if 200 <= r.status < 300:
                        self.stats.delivered += 1
                        metrics.WEBHOOK_DELIVERIES.labels("delivered").inc()
                        return
                    error = f"HTTP {r.status}"
                    retry = r.status >= 500 or r.status in RETRY_STATUSES
            except (aiohttp.ClientError, TimeoutError) as exc:
                error, retry = type(exc).__name__, True
            self.stats.last_error = error
            if not retry or attempt == self.attempts:
                break
            log.warning("context webhook attempt %d for call %s failed (%s); retrying in %.1fs",
                        attempt, payload.get("call_id"), error, delay)
            await asyncio.sleep(delay)
            delay *= 2
        self.stats.failed += 1
        metrics.WEBHOOK_DELIVERIES.labels("failed").inc()
        log.error("context webhook for call %s failed after %d attempts: %s",
                  payload.get("call_id"), attempt, error)
