"""Reminders of a recommended release (issue 19 item 7), on SQLite and PostgreSQL, through
the real PushService to the local FCM HTTP v1 server (tests/support/push_servers.FakeFcm,
with its OAuth2 endpoint): the sweeper reminds only the devices that had the notice and
still report an older version, after the delay, at most ``max`` times, never a device that
updated or whose user logged out, and two engines sweeping at once remind a device once."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from types import SimpleNamespace

from ivr_engine.config import parse_config
from ivr_engine.lifecycle.reminders import reminded_releases
from ivr_engine.lifecycle.schemas import ReleaseRequest
from ivr_engine.lifecycle.service import Lifecycle
from ivr_engine.push import PushService
from tests.support.push_servers import FakeFcm

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "lifecycle.yaml"
HOUR = dt.timedelta(hours=1)


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 12, 1, 8, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now


def config(fcm: FakeFcm, reminders: str = ""):
    text = FIXTURE.read_text().replace("  sweep_seconds: 1\n",
                                       f"  sweep_seconds: 1\n{reminders}")
    return parse_config(text, str(FIXTURE), {"IVR_TEST_FCM_SA": str(fcm.account.path),
                                             "IVR_TEST_FCM_URL": fcm.url})


async def device(store, user: str, version: str) -> None:
    await store.devices.upsert(user=user, app="field", platform="android",
                               push_token=f"fcm-{user}", app_version=version)


async def session(store, user: str, now: dt.datetime) -> int:
    row, _ = await store.lifecycle.login(
        token_hash=f"{user}-{now.timestamp()}".ljust(64, "0"), app="field", user=user, now=now,
        device_id=f"d-{user}", platform="mobile", app_type="Mobile", app_version="1.0.0",
        os="android", os_version="14", device_model="Pixel")
    return row.id


def reminders_to(fcm: FakeFcm) -> list[tuple[str, str]]:
    return sorted((m.token, m.data["reminder"]) for m in fcm.messages if "reminder" in m.data)


async def test_reminders_go_to_older_devices_after_the_delay_at_most_max(store, tmp_path):
    async with FakeFcm() as fcm:
        fcm.make_service_account(tmp_path)
        cfg, clock = config(fcm), Clock()
        push = PushService(lambda: cfg, store)
        try:
            life = Lifecycle(lambda: cfg, store, push, clock)
            other_engine = Lifecycle(lambda: cfg, store, push, clock)
            for user, version in (("old", "1.0.0"), ("updates", "1.0.0"), ("leaves", "1.0.0"),
                                  ("new", "1.1.0")):
                await device(store, user, version)
            leaving = await session(store, "leaves", clock.now)
            out = await life.releases.publish("field", ReleaseRequest.model_validate({
                "platform": "android", "version": "1.1.0", "kind": "recommended",
                "store_url": "https://play.example/field",
                "reminders": {"after_seconds": 3600, "max": 2}}))
            assert out.notified.sent == 3 and out.skipped_up_to_date == 1
            assert len(fcm.messages) == 3
            assert out.release.reminders.policy == "release"

            clock.now += HOUR - dt.timedelta(seconds=1)  # not yet due
            assert sum((await life.reminders.sweep()).values()) == 0
            clock.now += dt.timedelta(seconds=1)
            await device(store, "updates", "1.1.0")  # updated: no reminder, ever
            await store.lifecycle.end(leaving, "logout", clock.now)  # logged out: not reached
            got = await asyncio.gather(life.reminders.sweep(), other_engine.reminders.sweep())
            assert got[0]["sent"] + got[1]["sent"] == 1  # two engines: one reminder
            assert reminders_to(fcm) == [("fcm-old", "1")]
            (m,) = [m for m in fcm.messages if "reminder" in m.data]
            assert (m.data["type"], m.data["version"], m.data["kind"]) == (
                "app_update", "1.1.0", "recommended")
            assert m.data["title"] == "Update available"
            assert sum((await life.reminders.sweep()).values()) == 0  # claimed: not again

            clock.now += HOUR
            assert (await life.reminders.sweep())["sent"] == 1
            clock.now += 5 * HOUR
            assert sum((await life.reminders.sweep()).values()) == 0  # max 2 reached
            assert reminders_to(fcm) == [("fcm-old", "1"), ("fcm-old", "2")]

            # a device that logs back in still older is reminded again (within max)
            info = (await life.releases.publish("field", ReleaseRequest.model_validate({
                "platform": "android", "version": "1.1.0", "kind": "recommended",
                "store_url": "https://play.example/field",
                "reminders": {"after_seconds": 3600, "max": 3}}))).release
            assert info.reminders.reminders == 2 and info.reminders.devices == 1
            assert info.reminders.last_result.sent == 1 and info.reminders.updated == 1
            await session(store, "leaves", clock.now)
            assert (await life.reminders.sweep())["sent"] == 2  # "old" (3rd), "leaves" (1st)
            notices = {n.user: n for n in await store.lifecycle.notices(info.id)}
            assert (notices["old"].reminders, notices["leaves"].reminders,
                    notices["updates"].reminders) == (3, 1, 0)
            assert notices["updates"].reminder_stop == "updated"
            assert notices["old"].reminder_result == "sent"

            # a newer release replaces the older one's reminders
            clock.now += 5 * HOUR
            await life.releases.publish("field", ReleaseRequest.model_validate({
                "platform": "android", "version": "1.2.0", "kind": "recommended",
                "store_url": "https://play.example/field"}))
            before = len(fcm.messages)
            assert sum((await life.reminders.sweep()).values()) == 0  # config: max 0
            assert len(fcm.messages) == before
        finally:
            await push.close()


async def test_reminders_from_the_config(store, tmp_path):
    async with FakeFcm() as fcm:
        fcm.make_service_account(tmp_path)
        cfg = config(fcm, "  reminders: {after_seconds: 600, max: 1}\n")
        clock = Clock()
        push = PushService(lambda: cfg, store)
        try:
            life = Lifecycle(lambda: cfg, store, push, clock)
            await device(store, "old", "1.0.0")
            out = await life.releases.publish("field", ReleaseRequest.model_validate({
                "platform": "android", "version": "2.0.0", "kind": "recommended",
                "store_url": "https://play.example/field"}))
            r = out.release.reminders
            assert (r.after_seconds, r.max, r.policy) == (600, 1, "config")
            clock.now += dt.timedelta(seconds=600)
            assert (await life.reminders.sweep())["sent"] == 1
            clock.now += HOUR
            assert sum((await life.reminders.sweep()).values()) == 0
            assert reminders_to(fcm) == [("fcm-old", "1")]
            # a mandatory release is never reminded (its sessions end instead)
            out = await life.releases.publish("field", ReleaseRequest.model_validate({
                "platform": "android", "version": "3.0.0", "kind": "mandatory",
                "store_url": "https://play.example/field"}))
            assert out.release.reminders is None
            clock.now += HOUR
            assert sum((await life.reminders.sweep()).values()) == 0
        finally:
            await push.close()


def test_only_the_newest_release_per_app_and_platform_is_reminded():
    def rel(app, platform, version, kind="recommended"):
        return SimpleNamespace(app=app, platform=platform, version=version, kind=kind)

    rows = [rel("a", "ios", "1.10.0"), rel("a", "ios", "1.9.0"), rel("a", "android", "2.0"),
            rel("a", "android", "2.1", "mandatory"), rel("b", "ios", "1.0")]
    assert [(r.app, r.platform, r.version) for r in reminded_releases(rows)] == [
        ("a", "ios", "1.10.0"), ("b", "ios", "1.0")]
