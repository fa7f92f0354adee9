"""What the API handlers share: the current config, the store, the calls, the limiters."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable

from .ratelimit import TokenBuckets


@dataclass
class ApiContext:
    config: Callable[[], Any]  # returns the current Config snapshot (reloads swap it)
    store: Any
    registry: Any
    engine: Any = None  # the Engine: active CallSessions (transfers inside the IVR)
    ami: Any = None  # AmiClient: transfers of calls already handed to the dialplan
    clock: Callable[[], dt.datetime] = field(
        default=lambda: dt.datetime.now(dt.timezone.utc))
    randbelow: Callable[[int], int] = secrets.randbelow
    address_buckets: TokenBuckets = field(default_factory=TokenBuckets)  # per client address
    key_buckets: TokenBuckets = field(default_factory=TokenBuckets)  # per app (its api_key)
