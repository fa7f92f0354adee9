"""The ``sms.received`` webhook: every stored inbound message POSTed to
``sms.inbound.webhook.url``, signed like the context webhook (``X-IVR-Signature: sha256=<hex
HMAC-SHA256 of the body>`` with the webhook's ``secret``), its ``X-IVR-Delivery`` id the
same on every attempt (the message's ``event_id``: a receiver de-duplicates on it) and
``X-IVR-Event: sms.received``.

Nothing is lost when the receiver is down: the message was stored waiting for its webhook in
the transaction that stored it, and :class:`InboundDelivery` (a supervised background loop of
the engine) delivers what is due, oldest first, one at a time. Any answer but a 2xx, a
timeout or a refused connection is a failed attempt: the message is tried again after
``backoff_seconds``, doubled each time up to ``max_backoff_seconds`` — the messages claimed
with it wait as long, instead of knocking at a receiver that just failed — until it is
delivered or ``max_age_hours`` old (then given up: the admin search lists it ``failed``).
A message is claimed with a lease (its next try is set ahead before it is sent), so an
engine killed mid-delivery leaves it to be tried again once the lease ends (a stopping
engine gives the lease back), and several engines sharing PostgreSQL never deliver one
message at once: at least once, with the same delivery id.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
from typing import Any, Callable

import aiohttp
from prometheus_client import Counter

from ..metrics import REGISTRY
from .inbound_search import EVENT, event

log = logging.getLogger("ivr_engine.sms")

BATCH = 20  # messages claimed at once
DELIVERIES = Counter("ivr_sms_inbound_webhook_deliveries", "sms.received webhook attempts, by "
                     "result (delivered, retry, failed: given up)", ["result"],
                     registry=REGISTRY)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def signed_request(row: Any, secret: str | None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a message's webhook request."""
    body = json.dumps(event(row), separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "ivr-engine",
               "X-IVR-Delivery": row.event_id, "X-IVR-Event": EVENT}
    if secret:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers["X-IVR-Signature"] = f"sha256={digest}"
    return body, headers


def retry_delay(hook: Any, attempts: int) -> float:
    """Seconds before the next try of a message that has failed ``attempts`` times."""
    return min(hook.backoff_seconds * 2 ** max(attempts - 1, 0), hook.max_backoff_seconds)


class InboundDelivery:
    """The webhook's sender. ``wake`` it when a message was stored in this process (it
    otherwise looks every ``sms.inbound.poll_seconds``, for messages another engine
    stored)."""

    def __init__(self, config: Callable[[], Any], repo: Any,
                 clock: Callable[[], dt.datetime] = utcnow):
        self.config = config
        self.repo = repo
        self.clock = clock
        self.wake = asyncio.Event()

    async def run(self) -> None:
        """Deliver until cancelled (under the engine's supervisor: a failure is counted,
        backed off, restarted; the messages stay stored)."""
        async with aiohttp.ClientSession() as http:
            while True:
                self.wake.clear()
                inbound = self.config().model.sms.inbound
                if inbound.webhook is not None and await self.deliver_due(http,
                                                                          inbound.webhook):
                    continue  # a whole batch went: more may be due
                try:
                    await asyncio.wait_for(self.wake.wait(), inbound.poll_seconds)
                except TimeoutError:
                    pass

    async def deliver_due(self, http: aiohttp.ClientSession, hook: Any) -> bool:
        """One batch of the messages due; True when all of a full batch were delivered."""
        now = self.clock()
        lease = dt.timedelta(seconds=hook.timeout_seconds * BATCH + 30)
        rows = await self.repo.claim_hooks(now, now + lease, BATCH)
        secret = hook.secret.get_secret_value() if hook.secret is not None else None
        done = 0  # rows[:done] are written delivered; the others are still leased
        try:
            for row in rows:
                error = await self._post(http, hook, row, secret)
                if error is None:
                    DELIVERIES.labels("delivered").inc()
                    await self.repo.hook_done(row.id, self.clock())
                    done += 1
                    continue
                await self._failed(hook, row, error, rows[done + 1:])
                return False
        except asyncio.CancelledError:  # stopping: the leases given back, due at once
            await self.repo.hook_release([r.id for r in rows[done:]], self.clock())
            raise
        return len(rows) == BATCH

    async def _failed(self, hook: Any, row: Any, error: str, rest: list[Any]) -> None:
        """A failed attempt: tried again later (or given up), and the rest of the batch
        waits as long."""
        now = self.clock()
        attempts = row.hook_attempts + 1
        give_up = now - row.received_at >= dt.timedelta(hours=hook.max_age_hours)
        later = now + dt.timedelta(seconds=retry_delay(hook, attempts))
        DELIVERIES.labels("failed" if give_up else "retry").inc()
        if give_up:
            log.error("sms.received webhook for inbound message %d given up after %d "
                      "attempts over %g hours: %s", row.id, attempts, hook.max_age_hours,
                      error)
        else:
            log.warning("sms.received webhook for inbound message %d failed (attempt %d: "
                        "%s); next try at %s", row.id, attempts, error,
                        later.isoformat(timespec="seconds"))
        await self.repo.hook_failed(row.id, error, None if give_up else later, now)
        await self.repo.hook_release([r.id for r in rest], later)

    @staticmethod
    async def _post(http: aiohttp.ClientSession, hook: Any, row: Any,
                    secret: str | None) -> str | None:
        """None when delivered, else why not (never the URL: it may carry a credential)."""
        body, headers = signed_request(row, secret)
        try:
            async with http.post(hook.url, data=body, headers=headers,
                                 timeout=aiohttp.ClientTimeout(total=hook.timeout_seconds),
                                 allow_redirects=False) as r:
                return None if 200 <= r.status < 300 else f"HTTP {r.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return type(exc).__name__
