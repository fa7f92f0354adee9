"""The dialers monitor, as ``GET /v1/sms/monitor``, the console's SMS page and
``ivr-engine sms monitor`` show it: the repository's counts and each dialer's switch, its
schedule now, through ``overview.report`` (pure); and whether a dialer's schedule is open
(what its lane checks before each batch)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..config.validate import _schedule
from .overview import report
from .repo import SmsRepo


def schedule_open(cfg: Any, dialer: Any, now: dt.datetime) -> bool:
    """Whether ``dialer`` may send at ``now``: no schedule, or its IVR schedule is open."""
    if dialer.schedule is None:
        return True
    model = cfg.model.schedules.get(dialer.schedule)
    return model is not None and _schedule(dialer.schedule, model,
                                           cfg.model.engine.timezone).is_open(now)


async def monitor(cfg: Any, repo: SmsRepo, now: dt.datetime) -> dict[str, Any]:
    """Per campaign its counts and rates, per dialer enabled, running, inside its schedule
    (the fields of ``schemas.SmsMonitor``)."""
    sms = cfg.model.sms
    running = {n: await repo.dialer_running(n) for n in sms.dialers}
    open_now = {n: schedule_open(cfg, d, now) for n, d in sms.dialers.items()}
    return report(sms, await repo.counts(now), running, open_now)
