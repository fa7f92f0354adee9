"""Webhooks: POST what happened to a call (how it left the IVR, ``exits.py``) or to its
callback to the URLs that asked for that event.

Deliveries never block a call: a call only enqueues; each URL has its own queue and workers
(:class:`ContextNotifier`, run under the engine's supervisor), retrying with exponential
backoff on network errors, timeouts, 408, 429 and 5xx. Every attempt of one delivery carries
the same ``X-IVR-Delivery`` id so the receiver can de-duplicate; with a secret,
``X-IVR-Signature: sha256=<hex HMAC of the body>``. :class:`Webhooks` fans one event out to
every URL whose ``events`` list names it (or ``*``): a slow or dead receiver fills only its
own queue.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import uuid
from dataclasses import dataclass, fields
from typing import Any, Iterable

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
                 backoff: float = 0.5, secret: str | None = None, max_pending: int = 10_000,
                 events: Iterable[str] = ("call.queued",)):
        self.url = url
        self.events = frozenset(events)
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self._secret = secret.encode() if secret else None
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(max_pending)
        self.stats = WebhookStats()

    def wants(self, event: str) -> bool:
        return "*" in self.events or event in self.events

    def notify(self, payload: dict[str, Any]) -> None:
        """Enqueue a delivery; never blocks, never raises."""
        try:
            self._queue.put_nowait(payload)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            metrics.WEBHOOK_DELIVERIES.labels("dropped").inc()
            log.error("webhook queue of %s full: dropped %s for call %s", self.url,
                      payload.get("event"), payload.get("call_id"))

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
            log.warning("webhook %s attempt %d for call %s failed (%s); retrying in %.1fs",
                        payload.get("event"), attempt, payload.get("call_id"), error, delay)
            await asyncio.sleep(delay)
            delay *= 2
        self.stats.failed += 1
        metrics.WEBHOOK_DELIVERIES.labels("failed").inc()
        log.error("webhook %s for call %s failed after %d attempts: %s",
                  payload.get("event"), payload.get("call_id"), attempt, error)


class Webhooks:
    """Every configured URL (``context_webhook`` and ``webhooks:``) behind one ``notify``."""

    def __init__(self, notifiers: list[ContextNotifier]):
        self.notifiers = notifiers

    def notify(self, payload: dict[str, Any]) -> None:
        """Hand the event to each URL that wants it; never blocks, never raises."""
        event = str(payload.get("event", ""))
        for n in self.notifiers:
            if n.wants(event):
                n.notify(payload)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for n in self.notifiers:
                tg.create_task(n.run())

    @property
    def stats(self) -> WebhookStats:
        """Every URL's deliveries added up (``last_error``: the last URL's that has one)."""
        out = WebhookStats()
        for n in self.notifiers:
            for f in fields(WebhookStats):
                if f.name == "last_error":
                    out.last_error = n.stats.last_error or out.last_error
                else:
                    setattr(out, f.name, getattr(out, f.name) + getattr(n.stats, f.name))
        return out


def build_webhooks(model: Any) -> Webhooks | None:
    """The URLs of a config model (``context_webhook``, then ``webhooks:``); None: none."""
    hooks = ([model.context_webhook] if model.context_webhook is not None else []) + \
        list(model.webhooks)
    notifiers = [ContextNotifier(h.url, timeout=h.timeout_seconds, attempts=h.attempts,
                                 backoff=h.backoff_seconds, events=h.events,
                                 secret=h.secret.get_secret_value() if h.secret else None)
                 for h in hooks if h.enabled]
    return Webhooks(notifiers) if notifiers else None
