"""Callback requests in the database, on SQLite and PostgreSQL (issue 19): every transition is
a compare-and-set, so two engines (two Stores on one database, as two processes would have)
and API clients racing for the same requests never both win; leases are taken over only when
they ran out; expiry; the 0001 → head migration turns ``pending`` into ``requested``."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import insert

from ivr_engine.callbacks.policy import (
    BUSY,
    CLAIMED,
    COMPLETED,
    DIALING,
    EXPIRED,
    FAILED,
    REQUESTED,
    Next,
)
from ivr_engine.repositories import Store
from ivr_engine.store import Database

T0 = dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.timezone.utc)
A, B = "engine:host-a:ivr-engine", "engine:host-b:ivr-engine"


async def add(store, n: int = 1, queue: str = "sales", at: dt.datetime = T0) -> list:
    return [await store.callbacks.add(caller=f"+1555000{i:04d}", queue=queue, language="en",
                                      entry="did:100", path="top/sales", channel_id=f"c{i}",
                                      app="customer", user="alice", verified=True, now=at)
            for i in range(n)]


@pytest.fixture
async def second(db_url):
    """Another engine's Store on the same database."""
    s = await Store.open(db_url)
    yield s
    await s.close()


async def test_a_request_keeps_the_calls_identity(store):
    (row,) = await add(store)
    got = await store.callbacks.get(row.id)
    assert (got.state, got.app, got.user, got.verified, got.attempts, got.placements) == \
        (REQUESTED, "customer", "alice", True, 0, 0)
    assert got.created_at == got.updated_at == T0
    assert await store.callbacks.get(row.id + 1) is None


async def test_two_engines_claiming_at_once_split_the_requests(store, second):
    await add(store, 12)
    await add(store, 3, queue="support")
    got_a, got_b = await asyncio.gather(
        store.callbacks.claim_due("sales", A, T0, 8), second.callbacks.claim_due("sales", B, T0, 8))
    ids_a, ids_b = {r.id for r in got_a}, {r.id for r in got_b}
    assert not ids_a & ids_b, "a request claimed twice"
    assert len(ids_a | ids_b) == 12  # 8 + 4: each request once
    rows = await store.callbacks.find(queue="sales")
    assert {r.state for r in rows} == {CLAIMED}
    assert {r.id: r.claimed_by for r in rows} == {**{i: A for i in ids_a}, **{i: B for i in ids_b}}
    assert {r.state for r in await store.callbacks.find(queue="support")} == {REQUESTED}


async def test_only_due_requests_are_claimed(store):
    first, later = await add(store, 2)
    nxt = Next(REQUESTED, 1, T0 + dt.timedelta(minutes=5))
    (claimed,) = await store.callbacks.claim_due("sales", A, T0, 1)
    assert claimed.id == first.id  # oldest first
    await store.callbacks.placing(first.id, A, "ch-1", T0)
    await store.callbacks.settle(first.id, A, nxt, BUSY, T0)
    (claimed,) = await store.callbacks.claim_due("sales", A, T0, 5)
    assert claimed.id == later.id  # the first waits for its retry
    assert await store.callbacks.claim_due("sales", A, T0 + dt.timedelta(minutes=4), 5) == []
    again = await store.callbacks.claim_due("sales", A, T0 + dt.timedelta(minutes=5), 5)
    assert [r.id for r in again] == [first.id]
    assert (again[0].attempts, again[0].last_outcome) == (1, BUSY)


async def test_an_engine_and_an_api_client_racing_for_one_request(store, second):
    for _ in range(5):
        (row,) = await add(store)
        engine, api = await asyncio.gather(
            store.callbacks.claim_due("sales", A, T0, 1),
            second.callbacks.claim(row.id, "ann", "tok", T0))
        assert (len(engine) == 1) != (api is not None), "both or neither got it"
        if api is not None:
            assert (api.state, api.claimed_by) == (CLAIMED, "api:ann")
            assert await store.callbacks.claim(row.id, "bob", "tok2", T0) is None
        else:
            assert await second.callbacks.claim(row.id, "ann", "tok", T0) is None
        if engine:
            await store.callbacks.settle(row.id, A, Next(FAILED, 1), BUSY, T0)


async def test_api_claims_complete_with_their_token_only(store):
    (row,) = await add(store)
    assert await store.callbacks.complete(row.id, "tok", COMPLETED, "answered", None, T0) \
        is None  # not claimed
    claimed = await store.callbacks.claim(row.id, "ann", "tok", T0)
    assert claimed.claim_token == "tok"
    assert await store.callbacks.complete(row.id, "other", COMPLETED, "answered", None, T0) \
        is None
    done = await store.callbacks.complete(row.id, "tok", COMPLETED, "answered", "ok", T0)
    assert (done.state, done.last_outcome, done.note, done.attempts, done.claim_token) == \
        (COMPLETED, "answered", "ok", 1, None)
    assert done.completed_at == T0
    assert await store.callbacks.complete(row.id, "tok", FAILED, "busy", None, T0) is None


async def test_an_engine_cannot_settle_or_place_what_another_owns(store):
    (row,) = await add(store)
    await store.callbacks.claim_due("sales", A, T0, 1)
    assert await store.callbacks.placing(row.id, B, "ch", T0) is None
    placed = await store.callbacks.placing(row.id, A, "ch-1", T0)
    assert (placed.state, placed.dial_channel, placed.placements) == (DIALING, "ch-1", 1)
    assert await store.callbacks.settle(row.id, B, Next(COMPLETED, 1), "answered", T0) is None
    assert await store.callbacks.touch([row.id], B, T0) == 0
    assert await store.callbacks.touch([row.id], A, T0 + dt.timedelta(seconds=10)) == 1
    done = await store.callbacks.settle(row.id, A, Next(COMPLETED, 1), "answered", T0)
    assert (done.state, done.completed_at, done.attempts) == (COMPLETED, T0, 1)


async def test_a_placement_whose_lease_ran_out_is_taken_over_once(store, second):
    (row,) = await add(store)
    await store.callbacks.claim_due("sales", A, T0, 1)
    await store.callbacks.placing(row.id, A, "ch-1", T0)
    later = T0 + dt.timedelta(seconds=40)
    assert await store.callbacks.stale(T0) == []  # renewed at T0: not stale yet
    (seen,) = await store.callbacks.stale(later - dt.timedelta(seconds=30))
    (seen_too,) = await second.callbacks.stale(later - dt.timedelta(seconds=30))
    takers = await asyncio.gather(store.callbacks.take_over(seen, B, later),
                                  second.callbacks.take_over(seen_too, "engine:c", later))
    won = [t for t in takers if t is not None]
    assert len(won) == 1 and won[0].dial_channel == "ch-1" and won[0].state == DIALING
    # the old owner renewing after it lost the lease holds nothing any more
    assert await store.callbacks.touch([row.id], A, later) == 0
    # API claims never go stale: only the engine's placements have a lease
    (other,) = await add(store)
    await store.callbacks.claim(other.id, "ann", "tok", T0)
    assert [r.id for r in await store.callbacks.stale(later)] == []


async def test_requests_not_done_in_time_expire(store):
    old, new = await add(store, 1, at=T0 - dt.timedelta(days=2)) + await add(store, 1)
    (expired,) = await store.callbacks.expire("sales", T0 - dt.timedelta(days=1), T0)
    assert (expired.id, expired.state, expired.completed_at) == (old.id, EXPIRED, T0)
    assert await store.callbacks.expire("sales", T0 - dt.timedelta(days=1), T0) == []
    assert (await store.callbacks.get(new.id)).state == REQUESTED
    assert await store.callbacks.counts() == {EXPIRED: 1, REQUESTED: 1}


async def test_listing_filters_and_pages(store):
    rows = await add(store, 5) + await add(store, 2, queue="support")
    await store.callbacks.claim(rows[1].id, "ann", "t", T0)
    assert [r.id for r in await store.callbacks.find(limit=3)] == [r.id for r in rows[:3]]
    assert [r.id for r in await store.callbacks.find(after=rows[2].id, limit=2)] == \
        [rows[3].id, rows[4].id]
    assert [r.id for r in await store.callbacks.find(CLAIMED)] == [rows[1].id]
    assert len(await store.callbacks.find(REQUESTED, "support")) == 2


async def test_pending_requests_of_an_older_engine_become_requested(empty_db_url):
    db = Database(empty_db_url)
    try:
        await db.upgrade("0009")
        async with db.engine.begin() as conn:
            from sqlalchemy import table, column
            t = table("callback_requests", *(column(c) for c in (
                "created_at", "caller", "queue", "language", "entry", "path", "channel_id",
                "status")))
            await conn.execute(insert(t).values(
                created_at=T0, caller="+15550001111", queue="sales", language="en",
                entry="did:100", path="top", channel_id="c1", status="pending"))
        await db.upgrade()
    finally:
        await db.close()
    store = await Store.open(empty_db_url)
    try:
        (row,) = await store.callbacks.find()
        assert (row.state, row.attempts, row.updated_at, row.verified) == \
            (REQUESTED, 0, T0, False)
        assert [r.id for r in await store.callbacks.claim_due("sales", A, T0, 5)] == [row.id]
    finally:
        await store.close()
