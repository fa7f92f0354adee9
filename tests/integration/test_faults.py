"""Bulkheads under fault (issue 17): while a feature's peer or the database fails, SIPp callers
on the carrier trunk walk the menus and every one completes — the menu's queue, or the
dialplan fallback by the call deadline for a caller waiting on the database, never silence —
the feature recovers once the fault is over, and nothing is lost or sent twice.

Each test prints one line of the lead's table (``FAULT {...}``, see fault_harness.py).
Faults last IVR_FAULT_SECONDS (4 s here; ``IVR_FAULT_SECONDS=10`` for the longer runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from ivr_engine.testing.sipp import SippCaller
from tests.support import pgcluster
from tests.support.dblock import write_lock
from tests.support.sms_providers import LocalProviders, start

from .engine_proc import start_engine
from .fault_harness import (
    FAULT_SECONDS,
    FAULTS,
    Row,
    Stack,
    WebhookReceiver,
    fallback_delay,
    fell_back,
    in_app,
    until,
    walked,
)

pytestmark = pytest.mark.sandbox
DEADLINE = 2.0  # engine.database.call_deadline_seconds in faults.yaml


@contextlib.asynccontextmanager
async def make_stack(sandbox, workdir: Path, db_url: str | None = None):
    providers = LocalProviders(keep_requests=False)
    runner, url = await start(providers)
    hook = await WebhookReceiver().start()
    env = {"SMS_PROVIDER_URL": url, "IVR_WEBHOOK_URL": hook.url,
           "IVR_AMI_PASSWORD": sandbox.ami_password}
    if db_url is not None:
        env["IVR_DATABASE_URL"] = db_url
    engine = await start_engine(sandbox, workdir, config=FAULTS, extra_env=env)
    try:
        async with SippCaller(sandbox, workdir) as sipp:
            stack = Stack(engine, sipp, providers, hook, db_url or f"sqlite:///{engine.db_path}")
            await until(stack.ready, 20, "the engine ready (AMI logged in)")
            yield stack
        assert stack.alive(), engine.log()[-3000:]
    finally:
        await engine.stop()
        await hook.close()
        await runner.cleanup()


@pytest.fixture
async def stack(sandbox, tmp_path):
    """One engine per fault (the dialplan's Stasis app is ``ivr-engine``: one at a time)."""
    async with make_stack(sandbox, tmp_path) as s:
        yield s


async def batch_in_flight(stack: Stack, rows: int = 200) -> None:
    """A slow provider and rows being sent: the fault finds a batch between its sends and
    the write of their outcomes."""
    stack.providers.latency = 0.3
    await stack.upload(rows)

    async def sending() -> bool:
        return (await stack.spool()).get("sending", 0) > 0
    await until(sending, 10, "a batch in flight")


async def run_fault(stack: Stack, row: Row, fault, *, walkers: int = 6, token_callers: int = 0,
                    sms_during: int = 0, db_fault: bool = False, recovered=None) -> Row:
    """Callers walk (and wait on the database) while ``fault`` lasts FAULT_SECONDS; then the
    time until ``recovered()`` (default: a single SMS sent and /readyz 200); then every SMS
    row must be resolved, each sent once or marked."""
    tokens = [await stack.token() for _ in range(token_callers)]
    dup_before = stack.providers.summary()["duplicates"]
    async with asyncio.TaskGroup() as tg:  # the SIPp runs
        async with fault:
            began = time.monotonic()
            if sms_during:
                await stack.upload(sms_during)
            calls, walking = stack.walkers(walkers)
            runs = [tg.create_task(walking)]
            launched = [stack.token_caller(t) for t in tokens]
            runs += [tg.create_task(f) for _, f in launched]
            await asyncio.sleep(max(0.0, began + FAULT_SECONDS - time.monotonic()))  # the fault
            assert stack.alive(), stack.engine.log()[-3000:]
        ended = time.monotonic()

        async def back() -> bool:
            return await stack.probe_sms() and await stack.ready()
        row.recover_s = await until(recovered or back, 60, f"{row.fault}: recovery",
                                    every=0.2) - ended
        await asyncio.wait_for(asyncio.gather(*runs), 60)
    await until(stack.spool_settled, 60, "every SMS row resolved", every=0.2)
    token_calls = [c for cs, _ in launched for c in cs]
    row.callers = walkers + token_callers
    row.completed = sum(map(walked, calls)) + sum(
        fell_back(c) if db_fault else in_app(c) for c in token_calls)
    delays = [d for d in map(fallback_delay, token_calls) if d is not None]
    row.fallback_s = max(delays) if delays else None
    states = await stack.spool()
    row.lost = stack.uploaded - sum(states.get(s, 0) for s in ("sent", "failed", "other"))
    row.duplicated = stack.providers.summary()["duplicates"] - dup_before
    row.show()
    assert row.completed == row.callers, ([c.dialplan for c in calls + token_calls],
                                          stack.engine.log()[-3000:])
    assert all(walked(c) for c in calls)
    if db_fault:
        assert len(delays) == token_callers and row.fallback_s <= DEADLINE + 1.0, delays
    assert row.lost == 0 and row.duplicated == 0, states
    return row


@contextlib.asynccontextmanager
async def flag(obj, name: str, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


@contextlib.asynccontextmanager
async def held(event):
    event.clear()
    try:
        yield
    finally:
        event.set()


async def test_sms_provider_answers_garbage(stack):
    """Old main: AttributeError out of the in-engine SMS lane ends the engine's TaskGroup:
    the engine exits and every caller is sent to the fallback."""
    await run_fault(stack, Row("SMS provider answers garbage (200, unexpected JSON)",
                               note="rows sent during it: marked failed, none retried"),
                    flag(stack.providers, "garbage", True), sms_during=10)
    assert (await stack.spool()).get("failed", 0) >= 10


async def test_sms_provider_answers_500(stack):
    await run_fault(stack, Row("SMS provider answers HTTP 500"),
                    flag(stack.providers, "fail_status", 500), sms_during=10)


async def test_sms_provider_hangs(stack):
    await run_fault(stack, Row("SMS provider hangs (no answer)"),
                    held(stack.providers.answering), sms_during=10)


async def test_sqlite_locked_by_another_process(stack):
    """Old main: the SMS lanes' "database is locked" ends the engine; a caller waiting on
    its token waits past any deadline (the default journal blocks readers too)."""
    await batch_in_flight(stack)
    await run_fault(stack, Row("SQLite locked by another process (BEGIN EXCLUSIVE)",
                               note="SMS lanes failed and were restarted meanwhile"),
                    write_lock(stack.db_url), token_callers=2, db_fault=True)
    # the bulkhead was exercised: the lane failed, the engine and its calls went on
    assert "background task sms-dialer-bulk failed" in stack.engine.log()


async def test_webhook_receiver_hangs(stack):
    before = set(stack.hook.calls())
    row = Row("webhook receiver hangs")
    queued: list = []

    async def delivered() -> bool:
        got = stack.hook.calls()
        return all(got[c.channel] >= 1 for c in queued) and await stack.ready()

    async with asyncio.TaskGroup() as tg:
        async with held(stack.hook.answering):
            began = time.monotonic()
            calls, walking = stack.walkers(6)
            run = tg.create_task(walking)
            queued.extend(calls)
            await asyncio.sleep(max(0.0, began + FAULT_SECONDS - time.monotonic()))
        ended = time.monotonic()
        row.recover_s = await until(delivered, 60, "every queued call delivered") - ended
        await asyncio.wait_for(run, 60)
    row.callers, row.completed = len(calls), sum(map(walked, calls))
    got = stack.hook.calls()
    row.lost = sum(1 for c in calls if got[c.channel] == 0)
    row.duplicated = sum(n - 1 for c, n in got.items() if c not in before and n > 1)
    retried = len(stack.hook.seen) - len(set(stack.hook.seen))
    row.note = f"{retried} repeated attempts of one delivery (same X-IVR-Delivery id)"
    row.show()
    assert row.completed == row.callers and row.lost == 0 and row.duplicated == 0


def ami_sessions(sandbox, user: str = "ivr-engine") -> list[str]:
    """The file descriptors of ``user``'s AMI sessions (``manager show connected``)."""
    out = sandbox.cli("manager show connected")
    return [line.split()[4] for line in out.splitlines()
            if line.split()[:1] == [user] and len(line.split()) > 4]


@contextlib.asynccontextmanager
async def ami_dropped(sandbox, stack: Stack):
    """The engine's AMI connection killed by Asterisk, again each time it comes back."""
    stop = asyncio.Event()
    kicks = 0

    async def kick() -> None:
        nonlocal kicks
        while not stop.is_set():
            for fd in await asyncio.to_thread(ami_sessions, sandbox):
                await asyncio.to_thread(sandbox.cli, f"manager kick session {fd}")
                kicks += 1
            await asyncio.sleep(0.2)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(kick())
        try:
            yield
        finally:
            stop.set()
    assert kicks >= 1 and "AMI connection lost" in stack.engine.log()


async def test_ami_connection_dropped(sandbox, stack):
    resyncs = stack.engine.log().count("queues resynced from QueueStatus")

    async def back() -> bool:
        return await stack.ready() and \
            stack.engine.log().count("queues resynced from QueueStatus") > resyncs
    await run_fault(stack, Row("AMI connection dropped (kicked, again on each reconnect)"),
                    ami_dropped(sandbox, stack), recovered=back)


def cluster_pids(root: Path) -> list[int]:
    pm = int((root / "data" / "postmaster.pid").read_text().split()[0])
    kids = subprocess.run(["pgrep", "-P", str(pm)], capture_output=True, text=True).stdout
    return [pm, *map(int, kids.split())]


@contextlib.asynccontextmanager
async def postgres_stopped(root: Path):
    """SIGSTOP on the cluster's postmaster and every backend; SIGCONT after."""
    pids = cluster_pids(root)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


async def test_postgresql_stopped(sandbox, tmp_path):
    """Old main: a caller waiting on its token waits until PostgreSQL answers again (no
    deadline), in silence."""
    root = Path(tempfile.mkdtemp(prefix="ivr-pg-fault-"))
    try:
        url = pgcluster.start(root)
        async with make_stack(sandbox, tmp_path, db_url=url) as pg:
            await batch_in_flight(pg)
            await run_fault(pg, Row("PostgreSQL stopped (SIGSTOP postmaster + backends)"),
                            postgres_stopped(root), token_callers=2, db_fault=True)
    finally:
        pgcluster.stop(root)


async def test_engine_killed_during_the_token_wait_the_watchdog_takes_the_caller(sandbox,
                                                                                tmp_path):
    """The token phase arms Asterisk's watchdog: an engine killed while a caller is about to
    send ``<token>#`` leaves it in Stasis for token_wait + 3 × deadline + grace (3 + 6 + 3
    s: the guard's count, the lookup, the give-back or number match), then the dialplan
    fallback. Old main armed nothing: silence until the caller gave up."""
    providers = LocalProviders(keep_requests=False)
    runner, url = await start(providers)
    engine = await start_engine(sandbox, tmp_path, config=FAULTS,
                                extra_env={"SMS_PROVIDER_URL": url})
    try:
        async with SippCaller(sandbox, tmp_path) as sipp:
            calls, finished = sipp.launch("+17144505656", "", hold_ms=18000)
            call = calls[0]
            async with asyncio.TaskGroup() as tg:
                run = tg.create_task(finished)
                await until(lambda: call.first("state", "Up") is not None, 10, "answered")
                engine.proc.kill()
                await engine.proc.wait()
                answered = call.first("state", "Up")
                await until(lambda: call.first("app", "Playback(pls-hold-while-try")
                            is not None, 18, "the caller in the fallback")
                waited = call.first("app", "Goto(ivr-engine-resume") - answered
                Row("engine killed during the token wait", callers=1, completed=1,
                    fallback_s=waited, note="answer -> out of Stasis (budget 12 s)").show()
                assert 12 - 0.5 <= waited <= 12 + 1.5, waited
                await asyncio.wait_for(run, 30)
    finally:
        await engine.stop()
        await runner.cleanup()

