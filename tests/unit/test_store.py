"""The store's repositories on each backend (SQLite, PostgreSQL: ``store`` and ``db_url`` in
tests/conftest.py): tokens are single use — also when many calls present one at once —,
devices, callbacks, and call records (written by the registry, read back after a restart,
deleted after the retention period)."""

from __future__ import annotations

import asyncio
import datetime as dt

from ivr_engine.calls.registry import CallInfo, CallRegistry
from ivr_engine.repositories import Store

NOW = dt.datetime(2026, 11, 23, 17, 0, tzinfo=dt.timezone.utc)
PARIS = dt.timezone(dt.timedelta(hours=1))


async def add(store: Store, token: str = "123456", *, app: str = "a", caller: str = "+1555",
              now: dt.datetime = NOW, ttl: int = 180, **custom: str):
    return await store.intents.add(app=app, draw=lambda: token, caller=caller, language="fr",
                                   custom_data=custom, now=now, ttl_seconds=ttl)


# ---------------------------------------------------------------------------- tokens

async def test_a_consumed_token_is_found_again_by_its_channel(store):
    await add(store, order="A-42")
    assert await store.intents.for_channel("chan-1") is None
    got = await store.intents.consume_token("a", "123456", NOW, "chan-1")
    assert got is not None and got.custom_data == {"order": "A-42"}
    assert got.used_at == NOW and got.channel_id == "chan-1"
    assert await store.intents.consume_token("a", "123456", NOW, "chan-2") is None  # single use
    again = await store.intents.for_channel("chan-1")
    assert again is not None and again.custom_data == {"order": "A-42"}
    assert await store.intents.for_channel("chan-2") is None


async def test_many_calls_presenting_one_token_at_once_exactly_one_wins(db_url):
    """30 concurrent consumers over 10 connections, on each backend, three rounds."""
    store = await Store.open(db_url, pool_size=10, max_overflow=0)
    try:
        for round_ in range(3):
            token = f"77700{round_}"
            await add(store, token)
            got = await asyncio.gather(*(
                store.intents.consume_token("a", token, NOW, f"chan-{round_}-{i}")
                for i in range(30)))
            winners = [g for g in got if g is not None]
            assert len(winners) == 1, [g.channel_id for g in winners]
            found = await store.intents.for_channel(winners[0].channel_id)
            assert found is not None and found.token == token
    finally:
        await store.close()


async def test_many_calls_from_one_caller_at_once_take_each_intent_once(db_url):
    store = await Store.open(db_url, pool_size=10, max_overflow=0)
    try:
        first, second = await add(store, "100001"), await add(store, "100002")
        got = await asyncio.gather(*(
            store.intents.consume_by_caller("a", "+1555", NOW, f"chan-{i}") for i in range(40)))
        winners = [g.id for g in got if g is not None]
        assert len(winners) == len(set(winners)) >= 1  # never one intent twice
        assert set(winners) <= {first.id, second.id}
    finally:
        await store.close()


async def test_expired_used_and_other_apps_tokens_do_not_match(store):
    await add(store, "111111", ttl=60)
    await add(store, "222222", app="b")
    assert await store.intents.active_count("a", NOW) == 1
    later = NOW + dt.timedelta(seconds=61)
    assert await store.intents.active_count("a", later) == 0
    assert await store.intents.consume_token("a", "111111", later, "c1") is None  # expired
    assert await store.intents.consume_token("a", "222222", NOW, "c1") is None  # app b's
    assert await store.intents.consume_token("b", "222222", NOW, "c1") is not None
    assert await store.intents.active_count("b", NOW) == 0


async def test_concurrent_plans_never_share_a_token_value(db_url):
    """Issue 16: two plans at the same moment picked their token from the active set and
    inserted it in separate transactions, so both could hold one value. 60 plans at once
    over 10 connections, whose first draws all give the same value: each active value is
    held once, and the 59 losers drew again."""
    store = await Store.open(db_url, pool_size=10, max_overflow=0)
    try:
        draws: list[str] = []

        def draw() -> str:  # the first 60 draws collide; then distinct values
            value = "000000" if len(draws) < 60 else f"{len(draws):06d}"
            draws.append(value)
            return value

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(store.intents.add(
                app="a", draw=draw, caller=f"+1555{i:04d}", language="fr",
                custom_data={"n": str(i)}, now=NOW, ttl_seconds=180)) for i in range(60)]
        rows = [t.result() for t in tasks]
        assert len(draws) >= 119  # the collisions were real: 59 plans drew twice
        tokens = [r.token for r in rows]
        assert len(set(tokens)) == 60, sorted(tokens)  # 0 duplicates
        assert await store.intents.active_count("a", NOW) == 60
        for r in rows:  # each caller's own context behind its token
            got = await store.intents.consume_token("a", r.token, NOW, f"chan-{r.id}")
            assert got is not None and got.custom_data == r.custom_data
    finally:
        await store.close()


async def test_an_expired_unused_token_gives_its_value_back(store):
    first = await add(store, "424242", ttl=60)
    later = NOW + dt.timedelta(seconds=61)
    second = await add(store, "424242", now=later)
    assert second.id != first.id
    assert await store.intents.consume_token("a", "424242", later, "c1") is not None
    assert await store.intents.active_count("a", later) == 0


async def test_consume_by_caller_takes_the_newest_and_needs_a_caller(store):
    old = await add(store, "111111")
    new = await add(store, "222222", now=NOW + dt.timedelta(seconds=5))
    assert await store.intents.consume_by_caller("a", "", NOW, "c0") is None
    assert (await store.intents.consume_by_caller("a", "+1555", NOW, "c1")).id == new.id
    assert (await store.intents.consume_by_caller("a", "+1555", NOW, "c2")).id == old.id
    assert await store.intents.consume_by_caller("a", "+1555", NOW, "c3") is None


async def test_times_are_utc_and_timezone_aware_on_every_backend(store):
    await add(store, now=NOW.astimezone(PARIS))  # same instant, another zone
    assert await store.intents.active_count("a", NOW + dt.timedelta(seconds=179)) == 1
    assert await store.intents.active_count("a", NOW + dt.timedelta(seconds=180)) == 0
    got = await store.intents.consume_token("a", "123456", NOW, "chan-1")
    row = await store.intents.for_channel("chan-1")
    for value in (got.created_at, row.created_at, row.expires_at, row.used_at):
        assert value.utcoffset() == dt.timedelta(0), value
    assert row.created_at == NOW and row.expires_at == NOW + dt.timedelta(seconds=180)


# ---------------------------------------------------------------------------- devices, callbacks

async def test_devices_upsert_list_and_forget_dead_tokens(store):
    d = await store.devices.upsert(user="u1", app="demo", platform="ios", push_token="p1",
                                   voip_token="v1", model="iPhone")
    same = await store.devices.upsert(user="u1", app="demo", platform="ios", push_token="p2")
    assert same.id == d.id and same.voip_token == "v1" and same.model == "iPhone"
    await store.devices.upsert(user="u1", app="other", platform="android", push_token="f1",
                               source="rfc8599")
    assert [x.platform for x in await store.devices.for_user("u1")] == ["ios", "android"]
    assert [x.push_token for x in await store.devices.for_user("u1", "demo")] == ["p2"]
    assert await store.devices.forget_token("v1") == 1
    (ios,) = await store.devices.for_user("u1", "demo")
    assert (ios.push_token, ios.voip_token) == ("p2", None)
    assert await store.devices.forget_token("f1") == 1  # its last token: the device goes
    assert await store.devices.for_user("u1", "other") == []
    assert await store.devices.forget_token("nope") == 0
    assert await store.devices.for_user("u1\x00") == []  # PostgreSQL text holds no NUL


async def test_concurrent_registrations_of_one_device_make_one_row(store):
    """Two registrations of one (user, app, platform) at once were a select-then-insert:
    the second insert broke the unique constraint (IntegrityError, a 500)."""
    async def register(i: int):
        return await store.devices.upsert(user="u1", app="demo", platform="android",
                                          push_token=f"tok-{i}", model=f"m{i}")
    for _ in range(3):
        got = await asyncio.gather(*(register(i) for i in range(12)))
        assert len({d.id for d in got}) == 1
    (row,) = await store.devices.for_user("u1")
    assert row.push_token.startswith("tok-") and row.model == row.push_token.replace("tok-", "m")
    # a later registration without a token keeps the token and the model
    again = await store.devices.upsert(user="u1", app="demo", platform="android",
                                       app_version="2.0")
    assert (again.id, again.push_token, again.model, again.app_version, again.source) == (
        row.id, row.push_token, row.model, "2.0", "api")


async def test_a_dead_token_removes_only_the_devices_it_leaves_empty(store):
    """``forget_token`` deleted every device without a token, of every user."""
    await store.devices.upsert(user="u1", app="demo", platform="android", push_token="dead")
    # a login records the version of a device that has no token yet (lifecycle)
    await store.devices.upsert(user="u2", app="demo", platform="ios", app_version="1.0",
                               source="login")
    await store.devices.upsert(user="u3", app="demo", platform="ios", push_token="dead",
                               voip_token="alive")
    assert await store.devices.forget_token("dead") == 2
    assert await store.devices.for_user("u1") == []
    (u2,) = await store.devices.for_user("u2")
    assert (u2.push_token, u2.voip_token, u2.app_version) == (None, None, "1.0")
    (u3,) = await store.devices.for_user("u3")
    assert (u3.push_token, u3.voip_token) == (None, "alive")


async def test_callbacks_are_recorded_requested(store):
    n = await store.callbacks.add(caller="+1555", queue="sales", language="en",
                                  entry="did:+1", path="top/sales", channel_id="c1")
    (row,) = await store.callbacks.find("requested")
    assert (row.id, row.queue, row.state, row.attempts) == (n.id, "sales", "requested", 0)
    assert await store.callbacks.find("completed") == []


# ---------------------------------------------------------------------------- call records

def _info(call_id: str = "1700000000.1", **kw) -> CallInfo:
    values = dict(channel_name="PJSIP/carrier-00000001", caller="+15550001111",
                  entry="did:+15551230000", via="did", app=None, root_menu="top",
                  language="en")
    return CallInfo(id=call_id, **{**values, **kw})


async def test_a_call_record_survives_an_engine_restart(db_url):
    store = await Store.open(db_url)
    registry = CallRegistry(store.calls)
    info = registry.add(_info(app="customer", custom_data={"order": "A-42"}))
    registry.update(info.id, path=["top", "sales"], destination="queue:sales",
                    state="handed-off")
    await registry.flush()
    assert registry.get(info.id) is info  # live: still in memory
    registry.ended(info.id)
    assert (await registry.lookup(info.id)).state == "ended"  # before it is written, too
    await registry.flush()
    assert registry.get(info.id) is None and registry.live() == []  # ended and written
    expected = info.as_json()
    await store.close()

    store = await Store.open(db_url)  # a new engine
    try:
        registry = CallRegistry(store.calls)
        back = await registry.lookup(info.id)
        assert back is not None and back.as_json() == expected
        assert back.started_at.utcoffset() == dt.timedelta(0)
        assert await registry.lookup("no-such-call") is None
        assert await registry.lookup("\x00") is None  # PostgreSQL text holds no NUL
    finally:
        await store.close()


async def test_a_call_taken_over_keeps_its_first_start_and_a_stale_record_is_ended(store):
    registry = CallRegistry(store.calls)
    first = registry.add(_info(started_at=NOW))
    await registry.flush()
    # a new engine takes the call over: registered again, state written, start kept
    registry = CallRegistry(store.calls)
    registry.add(_info(via="taken-over"))
    await registry.flush()
    back = await store.calls.get(first.id)
    assert back.via == "taken-over" and back.started_at == NOW
    # a call that began under an earlier engine and ended while it was away
    other = _info("1700000000.2")
    await store.calls.save([other])
    registry.ended(other.id)
    await registry.flush()
    assert (await store.calls.get(other.id)).state == "ended"


async def test_the_writer_task_batches_changes_and_survives_database_errors(store, caplog):
    class Flaky:
        """The real records, failing the first two writes."""

        def __init__(self):
            self.fail, self.saves = 2, 0

        async def save(self, infos):
            if self.fail:
                self.fail -= 1
                raise OSError("database unreachable")
            self.saves += 1
            await store.calls.save(infos)

        def __getattr__(self, name):
            return getattr(store.calls, name)

    flaky = Flaky()
    registry = CallRegistry(flaky, batch_seconds=0.05)  # type: ignore[arg-type]
    async with asyncio.TaskGroup() as tg:
        writer = tg.create_task(registry.run(retry_seconds=0.01))
        for i in range(20):
            registry.add(_info(f"c{i}"))
            registry.ended(f"c{i}")
        for _ in range(200):
            if len(registry) == 0:
                break
            await asyncio.sleep(0.01)
        writer.cancel()
    assert len(registry) == 0 and flaky.saves == 1  # one batch, after two failures
    assert "database unreachable" in caplog.text
    assert all([await store.calls.get(f"c{i}") for i in range(20)])


async def test_records_past_the_retention_are_deleted(store):
    old = _info("old", started_at=NOW - dt.timedelta(days=40),
                updated_at=NOW - dt.timedelta(days=31))
    recent = _info("recent", updated_at=dt.datetime.now(dt.timezone.utc))
    await store.calls.save([old, recent])
    registry = CallRegistry(store.calls)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(registry.expire(lambda: 30, every_seconds=3600))
        for _ in range(100):  # it purges at once, then every hour
            if await store.calls.get("old") is None:
                break
            await asyncio.sleep(0.01)
        task.cancel()
    assert await store.calls.get("old") is None
    assert await store.calls.get("recent") is not None


def test_without_records_ended_calls_stay_in_memory_bounded():
    registry = CallRegistry(max_calls=3)
    for i in range(5):
        registry.add(_info(f"c{i}", state="ended"))
    live = registry.add(_info("live"))
    assert [i.id for i in registry.live()] == ["live"]
    assert registry.get("c0") is None and registry.get("c4") is not None
    assert len(registry) == 3 and registry.get(live.id) is live
