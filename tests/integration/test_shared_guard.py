"""The guessing guard shared by engines (issue 18): two engines' guards on one PostgreSQL
(apps/guard_db.py) count every try in ``token_failures``, so tries spread over both reach the
limits together; with the database stopped, a try cannot be counted and is never looked up
(fails closed, one log line). Asterisk-free: a throw-away cluster of the test's own
(tests/support/pgcluster.py), stopped and started again by the test."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest

from ivr_engine.apps.guard import Attempt, GuessLimits, Kind
from ivr_engine.apps.guard_db import DatabaseGuard, guard_for
from ivr_engine.deadlines import CallerWaitFailed, caller_wait
from ivr_engine.repositories import Store
from tests.support import pgcluster

T0 = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.timezone.utc)
LIMITS = GuessLimits(per_caller=3, per_app=6, window_seconds=600)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


@pytest.fixture(scope="module")
async def cluster():
    async with pgcluster.upgraded("ivr-pg-guard-") as made:
        yield made


@pytest.fixture
async def engines(cluster):
    """Two engines' stores (two connection pools) on one database, its tries emptied."""
    _, url = cluster
    a, b = await Store.open(url), await Store.open(url)
    async with a.db.engine.begin() as conn:
        from sqlalchemy import text
        await conn.execute(text("TRUNCATE token_failures, token_hardening"))
    try:
        yield guard_for(a), guard_for(b)
    finally:
        await a.close()
        await b.close()


async def test_postgresql_gives_the_shared_guard(engines):
    ga, gb = engines
    assert isinstance(ga, DatabaseGuard) and isinstance(gb, DatabaseGuard) and ga.shared


async def test_tries_spread_over_two_engines_reach_the_app_limit_together(engines):
    ga, gb = engines
    for i in range(3):  # 3 wrong tokens at each engine, from six numbers
        for guard, who in ((ga, f"+1555000{i}"), (gb, f"+1555100{i}")):
            attempt = await guard.admit("customer", who, Kind.TOKEN, LIMITS, at(i))
            assert isinstance(attempt, Attempt), attempt
            await guard.failed(attempt)
    # the 7th short token, at either engine: the app's 6 are used up, it hardens
    why = await ga.admit("customer", "+15552000", Kind.TOKEN, LIMITS, at(10))
    assert why == ("6 tries of tokens for app 'customer' in the last 600 s: the app hardens "
                   "(short tokens refused, plans get long tokens)")
    assert await gb.long_tokens("customer", ["+15559999"], LIMITS, at(11))
    why = await gb.admit("customer", "+15553000", Kind.TOKEN, LIMITS, at(12))
    assert isinstance(why, str) and "hardened" in why
    # a long token or an offline code is still looked up (and counted)
    assert isinstance(await gb.admit("customer", "+15553000", Kind.LONG, LIMITS, at(13)),
                      Attempt)
    # another app is untouched
    assert isinstance(await gb.admit("other", "+15553000", Kind.TOKEN, LIMITS, at(13)), Attempt)
    # hardening ends window_seconds after the last short try presented while hardened
    assert not await ga.long_tokens("customer", [], LIMITS, at(12 + 601))


async def test_a_callers_tries_at_two_engines_count_together(engines):
    ga, gb = engines
    for guard, t in ((ga, 0), (gb, 1), (ga, 2)):
        assert isinstance(await guard.admit("customer", "+15550001", Kind.TOKEN, LIMITS,
                                            at(t)), Attempt)
    why = await gb.admit("customer", "+15550001", Kind.TOKEN, LIMITS, at(3))
    assert why == "3 tries from +15550001 in the last 600 s"
    # a plan for that number (any variant) gets a long token, at either engine
    assert await ga.long_tokens("customer", ["15550001", "+15550001"], LIMITS, at(4))
    assert not await ga.long_tokens("customer", ["+15550002"], LIMITS, at(4))
    # the window slides: 600 s after the first try, one is free again
    assert isinstance(await gb.admit("customer", "+15550001", Kind.TOKEN, LIMITS, at(600)),
                      Attempt)


async def test_a_matched_try_is_given_back_at_any_engine(engines):
    ga, gb = engines
    first = await ga.admit("customer", "+15550005", Kind.TOKEN, LIMITS, at(0))
    assert isinstance(first, Attempt) and first.ref is not None
    await gb.succeeded(first)  # the other engine's object: the row is what counts
    for t in range(3):
        assert isinstance(await gb.admit("customer", "+15550005", Kind.TOKEN, LIMITS,
                                         at(1 + t)), Attempt)


async def test_parallel_tries_on_two_engines_never_pass_the_limit(engines):
    ga, gb = engines
    limits = GuessLimits(per_caller=100, per_app=10, window_seconds=600)
    tries = [g.admit("customer", f"+1555{i:04d}", Kind.TOKEN, limits, at(0))
             for i in range(20) for g in (ga, gb)]
    results = await asyncio.gather(*tries)
    admitted = [r for r in results if isinstance(r, Attempt)]
    assert len(admitted) == 10, results


async def test_old_tries_are_pruned(engines):
    ga, _ = engines
    for t in (0, 100, 700):
        await ga.admit("customer", "+15550009", Kind.CODE, LIMITS, at(t))
    # the try at 100 s is just out of the window at 700 s (a window counts at > now - 600)
    assert await ga.prune(at(700) - dt.timedelta(seconds=600), at(700)) == 2
    assert await ga.prune(at(700) - dt.timedelta(seconds=600), at(700)) == 0


async def test_database_stopped_the_try_is_refused_with_one_log_line(cluster, engines,
                                                                       caplog):
    root, _ = cluster
    ga, _ = engines
    assert isinstance(await ga.admit("customer", "+15550010", Kind.TOKEN, LIMITS, at(0)),
                      Attempt)  # the pool holds a live connection
    await asyncio.to_thread(pgcluster.halt, root)
    try:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with caplog.at_level(logging.WARNING, logger="ivr_engine.calls"):
            async with asyncio.TaskGroup() as tg:
                with pytest.raises(CallerWaitFailed) as failed:
                    await caller_wait(tg.create_task, 2.0, "token-guard", "chan-1",
                                      ga.admit("customer", "+15550010", Kind.TOKEN, LIMITS,
                                               at(1)),
                                      then="its token is not checked (fails closed): the "
                                      "caller goes to the fallback")
        assert loop.time() - t0 < 2.5
        assert failed.value.wait == "token-guard"
        lines = [r.getMessage() for r in caplog.records if "token-guard" in r.getMessage()]
        assert len(lines) == 1, lines
        assert lines[0].startswith("call chan-1: token-guard: ")
        assert lines[0].endswith("its token is not checked (fails closed): the caller goes to "
                                 "the fallback")
    finally:
        await asyncio.to_thread(pgcluster.restart, root)
    # back: counted again, without restarting anything
    assert isinstance(await ga.admit("customer", "+15550011", Kind.TOKEN, LIMITS, at(2)),
                      Attempt)
