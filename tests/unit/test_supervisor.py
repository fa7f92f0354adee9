"""The supervisor of background loops: a failing child is logged with its name, counted,
backed off and restarted while its siblings (and whatever runs beside the supervisor) go on;
one that keeps failing is named for /readyz until it is stable again; cancelling it leaves
no task behind. Waits poll with deadlines (no sleep-then-assert)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from ivr_engine import metrics
from ivr_engine.supervisor import RestartPolicy, Supervisor

FAST = RestartPolicy(backoff_seconds=0.01, backoff_max_seconds=0.04, jitter=0.0, failures=3,
                     window_seconds=60, stable_seconds=0.3)


async def until(predicate, timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.005)


def failures(task: str) -> float:
    return metrics.REGISTRY.get_sample_value("ivr_task_failures_total", {"task": task}) or 0.0


def test_backoff_doubles_up_to_its_cap_with_bounded_jitter():
    p = RestartPolicy(backoff_seconds=1, backoff_max_seconds=10, jitter=0.2)
    assert [p.backoff(n, lambda: 0.5) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert p.backoff(3, lambda: 0.0) == pytest.approx(3.2)  # 4 - 20 %
    assert p.backoff(3, lambda: 1.0) == pytest.approx(4.8)  # 4 + 20 %


async def test_a_failing_child_is_restarted_and_its_siblings_go_on(caplog):
    sup = Supervisor(FAST)
    runs, ticks = [], []
    before = failures("flaky")

    async def flaky() -> None:
        runs.append(time.monotonic())
        if len(runs) <= 3:
            raise RuntimeError(f"database is locked ({len(runs)})")
        await asyncio.Event().wait()

    async def steady() -> None:
        while True:
            ticks.append(1)
            await asyncio.sleep(0.005)

    sup.add("flaky", flaky)
    sup.add("steady", steady)
    caplog.set_level(logging.ERROR, logger="ivr_engine.supervisor")
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(sup.run())
        await until(lambda: len(runs) == 4, what="the fourth start")
        await until(lambda: sup.children["flaky"].state == "running")
        n = len(ticks)
        await until(lambda: len(ticks) > n + 3, what="the sibling still running")
        task.cancel()
    assert failures("flaky") - before == 3
    gaps = [b - a for a, b in zip(runs, runs[1:])]
    assert gaps[0] >= 0.01 and gaps[1] >= 0.02 and gaps[2] >= 0.04, gaps  # 10, 20, 40 ms
    logged = [r for r in caplog.records if "background task flaky failed" in r.getMessage()]
    assert len(logged) == 3 and logged[0].exc_info is not None  # with its traceback
    assert "RuntimeError: database is locked (3)" in logged[-1].getMessage()


async def test_a_child_that_keeps_failing_is_named_until_it_is_stable_again():
    sup = Supervisor(FAST)
    broken = asyncio.Event()
    broken.set()
    starts = []

    async def lane() -> None:
        starts.append(1)
        if broken.is_set():
            raise OSError("connection refused")
        await asyncio.Event().wait()

    sup.add("sms-dialer-bulk", lane)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(sup.run())
        await until(lambda: len(starts) >= 3, what="three failures")
        reasons = sup.failing()
        assert len(reasons) == 1 and "'sms-dialer-bulk' keeps failing" in reasons[0], reasons
        assert "OSError: connection refused" in reasons[0]
        broken.clear()  # the fault is over: the next start stays up
        await until(lambda: sup.children["sms-dialer-bulk"].state == "running")
        assert sup.failing()  # not stable yet
        await until(lambda: not sup.failing(), what="named no more once stable")
        task.cancel()


async def test_two_failures_in_the_window_are_not_enough():
    sup = Supervisor(FAST)
    starts = []

    async def twice() -> None:
        starts.append(1)
        if len(starts) <= 2:
            raise ValueError("unexpected JSON")
        await asyncio.Event().wait()

    sup.add("webhook", twice)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(sup.run())
        await until(lambda: len(starts) == 3)
        assert sup.failing() == []
        task.cancel()


async def test_a_child_that_returns_is_finished_and_run_returns():
    sup = Supervisor(FAST)
    done = []

    async def once() -> None:
        done.append(1)

    sup.add("a", once)
    sup.add("b", once)
    async with asyncio.timeout(5):
        await sup.run()
    assert done == [1, 1] and {c.state for c in sup.children.values()} == {"finished"}


async def test_cancelling_it_stops_every_child_and_leaves_no_task():
    sup = Supervisor(RestartPolicy(backoff_seconds=30, backoff_max_seconds=30, jitter=0))
    cleaned = []

    async def loop() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append("loop")

    async def fails() -> None:
        raise RuntimeError("boom")  # then waits its 30 s backoff: cancelled too

    sup.add("loop", loop)
    sup.add("fails", fails)
    mine = asyncio.current_task()
    task = asyncio.create_task(sup.run())
    await until(lambda: sup.children["fails"].state == "backing-off")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["loop"]
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("supervised-")] == []
    assert task.done() and mine is not None


async def test_a_failing_child_never_reaches_a_sibling_of_the_supervisor():
    """What the engine relies on: a call beside the supervisor in the engine's TaskGroup
    lives on whatever the background does (before, an SMS lane's exception ended that
    TaskGroup and every call with it)."""
    sup = Supervisor(FAST)

    async def lane() -> None:
        raise AttributeError("'str' object has no attribute 'get'")

    sup.add("sms-single", lane)
    call_steps = []

    async def call() -> None:
        for _ in range(20):
            call_steps.append(1)
            await asyncio.sleep(0.01)

    async with asyncio.TaskGroup() as tg:
        background = tg.create_task(sup.run())
        await tg.create_task(call())
        background.cancel()
    assert len(call_steps) == 20 and sup.children["sms-single"].total_failures >= 3


async def test_a_child_added_while_running_starts_at_once():
    sup = Supervisor(FAST)
    started = asyncio.Event()

    async def idle() -> None:
        await asyncio.Event().wait()

    async def late() -> None:
        started.set()

    sup.add("idle", idle)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(sup.run())
        await until(lambda: sup.children["idle"].state == "running")
        sup.add("late", late)
        async with asyncio.timeout(5):
            await started.wait()
        with pytest.raises(ValueError):
            sup.add("late", late)
        task.cancel()


async def test_readyz_names_a_background_task_that_keeps_failing(store):
    """/readyz's reasons (server.py ``not_ready``) carry the supervisor's: 503 by name."""
    from ivr_engine.server import ApiParts, not_ready

    sup = Supervisor(FAST)
    starts = []

    async def lane() -> None:
        starts.append(1)
        raise RuntimeError("database is locked")

    sup.add("sms-single", lane)
    ctx = ApiParts(config=lambda: None, store=store, supervisor=sup)
    assert await not_ready(ctx) == ["no Asterisk node"]
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(sup.run())
        await until(lambda: len(starts) >= 3, what="three failures")
        reasons = await not_ready(ctx)
        task.cancel()
    assert reasons[0] == "no Asterisk node" and len(reasons) == 2, reasons
    assert reasons[1].startswith("background task 'sms-single' keeps failing: 3 failures in "
                                 "the last 60 s (last: RuntimeError: database is locked)")
