"""Reminders of a recommended release (the seed's "multiple notices for recommended
updates"): the sweeper sends the notice again to the devices that had it and still report an
older version, ``after_seconds`` after the last one, at most ``max`` times.

Which release: per app and platform, only the newest release, and only when it is
recommended (a newer release replaces the reminders of the older; a mandatory one ends the
sessions below it instead). Its own policy (``reminders`` at publication) or
``lifecycle.reminders`` (``max: 0`` by default: none).

Which devices: those with a notice row of the release, a push token, fewer than ``max``
reminders and the last one (or the notice) at least ``after_seconds`` old; then, as for a
notice, only a device whose last reported version (``devices.app_version``, from its login
or registration) is older than the release, and whose user is not logged out of the app. A
device found at the release or newer is never reminded again (``reminder_stop``). Each due
device is claimed in the database before its push (two engines never remind it twice), then
sent through the same push fan-out as notices (``kind`` "reminder" in
``ivr_push_sends_total``) and its result recorded.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from typing import Any, Callable

from ..push import PushError
from .fanout import fan_out
from .models import AppRelease
from .reminderrepo import UPDATED, DueReminder
from .releases import notice_data, notice_text, reminder_policy
from .rules import PROVIDER_ERROR, PUSH_PLATFORMS, RECOMMENDED, notice_result
from .versions import VersionError, older_or_unknown, parse_version

log = logging.getLogger("ivr_engine.lifecycle")


def reminded_releases(rows: list[AppRelease]) -> list[AppRelease]:
    """Per app and platform, the newest release, when it is recommended."""
    newest: dict[tuple[str, str], tuple[Any, AppRelease]] = {}
    for r in rows:
        try:
            v = parse_version(r.version)
        except VersionError:  # every stored version was parsed before it was stored
            continue
        key = (r.app, r.platform)
        if key not in newest or newest[key][0] < v:
            newest[key] = (v, r)
    return [r for _, r in newest.values() if r.kind == RECOMMENDED]


class Reminders:
    def __init__(self, config: Callable[[], Any], store: Any, push: Any,
                 clock: Callable[[], dt.datetime]):
        self._config, self._store, self._push, self._clock = config, store, push, clock

    @property
    def repo(self) -> Any:
        return self._store.lifecycle

    async def sweep(self) -> Counter:
        """Send the reminders due now; their results counted (``sent``, ``provider_error``,
        ``token_removed``; ``updated``: devices found up to date, no more reminders)."""
        total: Counter = Counter()
        if self._push is None:
            return total
        settings = self._config().model.lifecycle
        for row in reminded_releases(await self.repo.releases()):
            if row.platform not in PUSH_PLATFORMS or row.app not in self._config().model.apps:
                continue
            after, most, _ = reminder_policy(row, settings)
            if most > 0:
                total += await self._remind(row, after, most, settings)
        return total

    async def _remind(self, row: AppRelease, after: int, most: int, settings: Any) -> Counter:
        now = self._clock()
        cutoff = now - dt.timedelta(seconds=after)
        due = await self.repo.reminders.due(row.id, cutoff, most)
        if not due:
            return Counter()
        version = parse_version(row.version)
        out = await self.repo.logged_out_users(row.app)
        updated = [d.notice_id for d in due
                   if older_or_unknown(d.target.app_version, version) is False]
        if updated:
            await self.repo.reminders.stop(updated, UPDATED)
        older = [d for d in due if older_or_unknown(d.target.app_version, version) is True
                 and d.target.user not in out]
        taken = await self.repo.reminders.claim([d.notice_id for d in older], cutoff, most, now)
        todo = [d for d in older if d.notice_id in taken]
        title, body = notice_text(row, self._default_language(row.app))
        data = notice_data(row)

        async def send(d: DueReminder) -> dict[str, Any]:
            try:
                r = await self._push.notify(d.target, title, body,
                                            {**data, "reminder": str(d.reminders + 1)},
                                            app=row.app, kind="reminder")
                result = notice_result(r.ok, r.token_invalid)
            except PushError:
                result = PROVIDER_ERROR
            return {"notice_id": d.notice_id, "result": result}

        counts, seconds = await fan_out(todo, send, self.repo.reminders.record,
                                        concurrency=settings.notice_concurrency,
                                        batch=settings.notice_batch,
                                        rate=settings.notice_rate_per_second)
        if updated:
            counts["updated"] = len(updated)
        log.info("release %s %s %s: %d reminders (%s) in %.2f s", row.app, row.platform,
                 row.version, len(todo), dict(counts), seconds)
        return counts

    def _default_language(self, app: str) -> str:
        cfg = self._config()
        spec = cfg.model.apps.get(app)
        return spec.languages[0] if spec is not None and spec.languages else \
            cfg.model.engine.default_language
