"""Rate limits of the SDK routes, applied to requests (the buckets are in ``ratelimit``).

The per-address limit runs before authentication, so guessing keys from one address is
throttled like any other traffic; the per-key limit runs after it, keyed by the app (one key
per app), so a leaked key cannot flood the store or exhaust the app's token space. The client
address is the TCP peer: behind a reverse proxy, every client shares the proxy's bucket.
"""

from __future__ import annotations

import logging

from aiohttp import web

from .context import ApiContext
from .problems import Problem
from .ratelimit import TokenBuckets, retry_after

log = logging.getLogger("ivr_engine.api")


def _take(buckets: TokenBuckets, key: str, rate: float, burst: int, scope: str) -> None:
    wait = buckets.take(key, rate, burst)
    if wait:
        log.info("rate limit per %s: %r over %g/s (burst %d)", scope, key, rate, burst)
        raise Problem(429, "Too Many Requests",
                      f"too many requests for this {scope}; retry after the Retry-After delay",
                      headers={"Retry-After": retry_after(wait)})


def throttle_address(ctx: ApiContext, request: web.Request) -> None:
    limit = ctx.config().engine.api.rate_limit.per_address
    address = request.remote or "unknown"
    _take(ctx.address_buckets, address, limit.rate, limit.burst, "client address")


def throttle_key(ctx: ApiContext, app: str) -> None:
    """``app`` has authenticated: its bucket stands for its api key."""
    limit = ctx.config().engine.api.rate_limit.per_key
    _take(ctx.key_buckets, app, limit.rate, limit.burst, "api key")
