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
    calls: Any = None  # calls.manager.Calls: live sessions (transfers inside the IVR)
    nodes: list = field(default_factory=list)  # AsteriskNode: ARI state, AMI redirects
    notifier: Any = None  # calls.webhook.ContextNotifier: delivery stats for /v1/health
    holder: Any = None  # config.reloader.ConfigHolder: admin reloads
    push: Any = None  # push.PushService: admin test pushes
    lifecycle: Any = None  # lifecycle.Lifecycle: sessions, releases (made on first use if None)
    sms: Any = None  # sms.dialer.SmsService when the dialers run in the engine (wakes them)
    queues: Any = None  # livedata.monitor.QueueMonitor: live queues and wait estimates
    supervisor: Any = None  # supervisor.Supervisor: background tasks that keep failing
    clock: Callable[[], dt.datetime] = field(
        default=lambda: dt.datetime.now(dt.timezone.utc))
    randbelow: Callable[[int], int] = secrets.randbelow
    address_buckets: TokenBuckets = field(default_factory=TokenBuckets)  # per client address
    key_buckets: TokenBuckets = field(default_factory=TokenBuckets)  # per app (its api_key)
