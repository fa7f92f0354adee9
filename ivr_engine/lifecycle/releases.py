"""Releases: publish one (admin), notify the devices still below it, and for a mandatory one
end the sessions below it (at the notice, or when the sweeper finds the grace run out).

A notice goes only to a device whose last reported version (at login or device
registration, the ``devices`` row) is older than the release and that was not yet *sent*
this release; it goes through the app's own push credentials, as an APNs alert push (never
VoIP) or an FCM data message. Each one is recorded per device with its delivery result
(``sent``, ``provider_error``, ``token_removed``). A device that was not reached is not
chased: only a re-publication tries it again (if it is still older). Reminders of a
recommended release (the sweeper's, ``reminders.py``) go to the devices that had its notice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from typing import Any, Callable

from ..push import PushError
from .fanout import fan_out
from .models import AppRelease, NoticeTarget
from .rules import (
    MANDATORY,
    MANDATORY_UPDATE,
    PROVIDER_ERROR,
    PUSH_PLATFORMS,
    RECOMMENDED,
    DeviceFacts,
    notice_result,
    notice_targets,
)
from .schemas import NoticeCounts, PublishResponse, ReleaseInfo, ReleaseRequest, ReminderInfo
from .versions import parse_version

log = logging.getLogger("ivr_engine.lifecycle")

TITLES = {"recommended": "Update available", "mandatory": "Update required"}


def counts_of(raw: dict[str, int]) -> NoticeCounts:
    return NoticeCounts(**{k: v for k, v in raw.items() if k in NoticeCounts.model_fields})


def release_info(row: AppRelease, counts: dict[str, int],
                 reminders: ReminderInfo | None = None) -> ReleaseInfo:
    return ReleaseInfo(id=row.id, app=row.app, platform=row.platform, version=row.version,
                       kind=row.kind, store_url=row.store_url, messages=dict(row.messages),
                       grace_seconds=row.grace_seconds, published_at=row.published_at,
                       republished_at=row.republished_at, notices=counts_of(counts),
                       reminders=reminders)


def reminder_policy(row: AppRelease, settings: Any) -> tuple[int, int, str]:
    """(after_seconds, max, "release" | "config"): the release's own reminder policy, else
    ``lifecycle.reminders``."""
    if row.remind_max is not None and row.remind_after_seconds is not None:
        return row.remind_after_seconds, row.remind_max, "release"
    return settings.reminders.after_seconds, settings.reminders.max, "config"


async def describe(repo: Any, row: AppRelease, settings: Any) -> ReleaseInfo:
    """A release as the admin reads it: its notices counted, and (recommended) reminders."""
    reminders = None
    if row.kind == RECOMMENDED:
        after, most, policy = reminder_policy(row, settings)
        c = await repo.reminders.counts(row.id)
        reminders = ReminderInfo(after_seconds=after, max=most, policy=policy,  # type: ignore[arg-type]
                                 reminders=c["reminders"], devices=c["devices"],
                                 last_result=counts_of(c["last"]), updated=c["updated"])
    return release_info(row, await repo.notice_counts(row.id), reminders)


def notice_data(row: AppRelease) -> dict[str, str]:
    """What a notice (and each reminder) of the release carries for the app."""
    return {"type": "app_update", "kind": row.kind, "version": row.version,
            "store_url": row.store_url, "release_id": str(row.id),
            "grace_seconds": str(row.grace_seconds), "messages": json.dumps(row.messages)}


def notice_text(release: AppRelease, default_language: str) -> tuple[str, str]:
    """(title, body) of the visible part: the message in the app's default language, else
    the first one, else a sentence naming the version."""
    messages = release.messages or {}
    body = messages.get(default_language) or next(iter(messages.values()), "") or (
        f"Version {release.version} is available in the store")
    return TITLES.get(release.kind, "Update"), body


class Releases:
    def __init__(self, config: Callable[[], Any], store: Any, push: Any,
                 clock: Callable[[], dt.datetime]):
        self._config, self._store, self._push, self._clock = config, store, push, clock
        self._one_at_a_time = asyncio.Lock()  # two publications never notify one device twice

    @property
    def repo(self) -> Any:
        return self._store.lifecycle

    def _default_language(self, app: str) -> str:
        cfg = self._config()
        spec = cfg.model.apps.get(app)
        return spec.languages[0] if spec is not None and spec.languages else \
            cfg.model.engine.default_language

    async def publish(self, app: str, req: ReleaseRequest) -> PublishResponse:
        """Publications run one at a time in this engine (a second one waits for the
        first), so a re-publication made meanwhile sees what the first one sent."""
        async with self._one_at_a_time:
            return await self._publish(app, req)

    async def _publish(self, app: str, req: ReleaseRequest) -> PublishResponse:
        settings = self._config().model.lifecycle
        now = self._clock()
        row, created = await self.repo.publish(
            app=app, platform=req.platform, version=req.version, kind=req.kind,
            store_url=req.store_url, messages=dict(req.messages),
            grace_seconds=req.grace_seconds if req.kind == MANDATORY else 0, now=now,
            remind_after_seconds=req.reminders.after_seconds if req.reminders else None,
            remind_max=req.reminders.max if req.reminders else None)
        version = parse_version(row.version)
        already = await self.repo.sent_devices(row.id)
        out = await self.repo.logged_out_users(app)
        targets: list[NoticeTarget] = []
        skipped = {"sent": 0, "out": 0, "up": 0}
        if row.platform in PUSH_PLATFORMS:
            async for part in self.repo.notice_candidates(app, row.platform):
                facts = [DeviceFacts(t.id, t.app_version, bool(t.push_token), t.user)
                         for t in part]
                keep = {d.id for d in notice_targets(facts, version, already, out)}
                targets.extend(t for t in part if t.id in keep)
                for t in part:
                    if t.id not in keep:
                        skipped["sent" if t.id in already else
                                "out" if t.user in out else "up"] += 1
        title, body = notice_text(row, self._default_language(app))
        data = notice_data(row)

        async def send(t: NoticeTarget) -> dict[str, Any]:
            try:
                r = await self._push.notify(t, title, body, data, app=app, kind="notice")
                result, reason = notice_result(r.ok, r.token_invalid), r.reason
            except PushError as exc:
                result, reason = PROVIDER_ERROR, str(exc)
            return {"device_id": t.id, "user": t.user, "device_version": t.app_version,
                    "result": result, "reason": reason[:128], "sent_at": self._clock()}

        async def record(rows: list[dict[str, Any]]) -> None:
            await self.repo.record_notices(row.id, rows)

        if self._push is None:
            targets = []
        counts, seconds = await fan_out(targets, send, record,
                                        concurrency=settings.notice_concurrency,
                                        batch=settings.notice_batch,
                                        rate=settings.notice_rate_per_second)
        ended = await self._end_sessions_now(row) if row.kind == MANDATORY else 0
        log.info("release %s %s %s (%s) %s: %d notified (%s) in %.2f s, %d sessions ended",
                 app, row.platform, row.version, row.kind,
                 "published" if created else "re-published", len(targets), dict(counts),
                 seconds, ended)
        return PublishResponse(
            release=await describe(self.repo, row, settings), created=created,
            notified=counts_of(counts),
            skipped_up_to_date=skipped["up"], skipped_already_sent=skipped["sent"],
            skipped_logged_out=skipped["out"], sessions_ended=ended,
            fanout_seconds=round(seconds, 3))

    async def _end_sessions_now(self, row: AppRelease) -> int:
        """Mandatory without grace: the open sessions below it end at the notice. With a
        grace period, the sweeper (or the session's next request) ends them after it."""
        if row.grace_seconds:
            return 0
        version, now, n = parse_version(row.version), self._clock(), 0
        for s in await self.repo.open_sessions(app=row.app):
            if s.os != row.platform:
                continue
            try:
                below = parse_version(s.app_version) < version
            except ValueError:
                continue
            if below and await self.repo.end(s.id, MANDATORY_UPDATE, now):
                n += 1
        return n
