"""The lifecycle's repository on SQLite and PostgreSQL: one open session per user and app even
when logins race, releases re-published in place, notices replaced per device."""

from __future__ import annotations

import asyncio
import datetime as dt

from ivr_engine.lifecycle.sessions import hash_token, new_session_token

NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.timezone.utc)
FIELDS = dict(device_id="d", platform="mobile", app_type="Mobile", app_version="1.0",
              os="ios", os_version="17", device_model="iPhone", push_token=None)


async def test_concurrent_logins_leave_exactly_one_open_session(store):
    async def login(i: int):
        return await store.lifecycle.login(token_hash=hash_token(new_session_token()), app="a",
                                           user="u", now=NOW + dt.timedelta(seconds=i),
                                           **{**FIELDS, "device_id": f"d{i}"})

    results = await asyncio.gather(*(login(i) for i in range(12)))
    open_ = await store.lifecycle.open_sessions(app="a", user="u")
    assert len(open_) == 1
    ended = [old.id for _, olds in results for old in olds]
    assert len(ended) == 11 and len(set(ended)) == 11  # every other login was replaced once
    assert open_[0].id not in ended
    other = await store.lifecycle.login(token_hash=hash_token(new_session_token()), app="b",
                                        user="u", now=NOW, **FIELDS)
    assert other[1] == []  # another app: its own session
    assert await store.lifecycle.logged_out_users("a") == set()
    assert await store.lifecycle.end(open_[0].id, "logout", NOW)
    assert not await store.lifecycle.end(open_[0].id, "logout", NOW)  # once
    assert await store.lifecycle.logged_out_users("a") == {"u"}


async def test_republish_and_notices(store):
    row, created = await store.lifecycle.publish(app="a", platform="ios", version="2.0",
                                                 kind="recommended", store_url="https://x",
                                                 messages={"en": "hi"}, grace_seconds=0,
                                                 now=NOW)
    again, created2 = await store.lifecycle.publish(app="a", platform="ios", version="2.0",
                                                    kind="mandatory", store_url="https://y",
                                                    messages={}, grace_seconds=60, now=NOW)
    assert created and not created2 and again.id == row.id and again.kind == "mandatory"
    note = dict(user="u", device_version="1.0", reason="", sent_at=NOW)
    await store.lifecycle.record_notices(row.id, [
        {"device_id": 1, "result": "sent", **note},
        {"device_id": 2, "result": "provider_error", **note}])
    await store.lifecycle.record_notices(row.id, [{"device_id": 2, "result": "sent", **note}])
    assert await store.lifecycle.sent_devices(row.id) == {1, 2}
    assert await store.lifecycle.notice_counts(row.id) == {"sent": 2}
