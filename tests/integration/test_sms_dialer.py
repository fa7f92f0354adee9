"""The dialer as a real process (`ivr-engine sms dialer`) against a local Infobip, on SQLite
and PostgreSQL: killed with SIGKILL in the middle of a batch and restarted, every message
reaches the provider exactly once (and SIGTERM leaves no send in flight); two workers on one PostgreSQL spool never send a row
twice; a single send issued behind 10 000 queued bulk rows leaves within one cycle."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from ivr_engine.config import parse_config
from ivr_engine.sms.dialer import SmsService
from ivr_engine.sms.models import SENDING, SENT, TO_PROCESS, SpoolRow
from ivr_engine.sms.spool import spool_row
from ivr_engine.repositories import Store
from tests.conftest import _admin, _with_database
from tests.support.sms_providers import LocalProviders, start

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "sms.yaml"


def bulk_rows(n: int, start_at: int = 0, lane: str = "bulk", campaign: str = "promo"):
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    return [spool_row(destination=f"099{i:06d}", message=f"bulk {i}", region="UY",
                      encoding="auto", now=now, lane=lane, campaign=campaign, position=i)
            for i in range(start_at, start_at + n)]


async def spawn(db_url: str, provider_url: str, worker: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "IVR_DATABASE_URL": db_url, "SMS_PROVIDER_URL": provider_url}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ivr_engine.cli", "sms", "dialer", "-c", str(FIXTURE),
        "--dialer", "bulk", "--worker", worker, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)


async def states(store: Store) -> dict[int, int]:
    async with store.db.sessions() as s:
        return dict((await s.execute(select(SpoolRow.state, func.count())
                                     .group_by(SpoolRow.state))).all())


async def wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def stop(proc: asyncio.subprocess.Process) -> str:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 15)
    return err.decode()


async def test_kill_9_mid_batch_then_restart_sends_each_message_once(db_url):
    total = 1500
    providers = LocalProviders(latency=0.05, keep_requests=False)
    runner, url = await start(providers)
    store = await Store.open(db_url)
    try:
        await store.sms.enqueue(bulk_rows(total))
        proc = await spawn(db_url, url, "worker-a")

        async def some_sent() -> bool:
            return len(providers.accepted) >= 300
        await wait_for(some_sent, 60, "300 messages at the provider")
        proc.kill()  # SIGKILL: no clean-up of any kind
        await proc.wait()
        at_kill = await states(store)
        assert at_kill.get(SENDING, 0) > 0, at_kill  # sends were in flight when it died
        assert at_kill.get(TO_PROCESS, 0) > 0, at_kill  # and the batch was not the last

        proc = await spawn(db_url, url, "worker-a")

        async def more_sent() -> bool:
            return len(providers.accepted) >= 800
        await wait_for(more_sent, 60, "800 messages at the provider")
        log = await stop(proc)  # SIGTERM: the batches in flight finish, nothing is left
        assert "sends left in flight resolved" in log, log
        at_stop = await states(store)
        assert at_stop.get(SENDING, 0) == 0 and at_stop.get(TO_PROCESS, 0) > 0, at_stop

        proc = await spawn(db_url, url, "worker-a")

        async def all_done() -> bool:
            st = await states(store)
            return st.get(SENT, 0) == total
        await wait_for(all_done, 90, "every row sent")
        log = await stop(proc)
        assert "sends left in flight resolved" not in log, log
    finally:
        await store.close()
        await runner.cleanup()
    assert providers.summary() == {"accepted": total, "distinct": total, "duplicates": 0}


async def test_two_workers_on_one_postgresql_spool_never_send_a_row_twice(postgres_server):
    total = 3000
    name = "ivr_test_sms_two_workers"
    await _admin(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                 f'CREATE DATABASE "{name}"')
    db_url = _with_database(postgres_server, name)
    providers = LocalProviders(latency=0.01, keep_requests=False)
    runner, url = await start(providers)
    store = await Store.open(db_url, check=False)
    try:
        await store.db.upgrade()
        await store.sms.enqueue(bulk_rows(total))
        procs = [await spawn(db_url, url, f"worker-{w}") for w in "ab"]

        async def all_done() -> bool:
            return (await states(store)).get(SENT, 0) == total
        await wait_for(all_done, 120, "every row sent")
        for p in procs:
            await stop(p)
        async with store.db.sessions() as s:
            per_worker = dict((await s.execute(select(SpoolRow.claimed_by, func.count())
                                               .group_by(SpoolRow.claimed_by))).all())
    finally:
        await store.close()
        await runner.cleanup()
        await _admin(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert providers.summary() == {"accepted": total, "distinct": total, "duplicates": 0}
    assert set(per_worker) == {"worker-a", "worker-b"} and min(per_worker.values()) > 0, \
        per_worker


async def test_a_single_send_leaves_within_one_cycle_of_a_10000_row_backlog(db_url):
    providers = LocalProviders(keep_requests=False)
    runner, url = await start(providers)
    cfg = parse_config(FIXTURE.read_text(), "sms.yaml",
                       {"IVR_DATABASE_URL": db_url, "SMS_PROVIDER_URL": url,
                        "SMS_SPACING_MS": "2"})  # one batch: 50 × 2 ms at least
    store = await Store.open(db_url)
    try:
        await store.sms.enqueue(bulk_rows(10_000))
        async with SmsService(lambda: cfg, store.sms, worker="w") as svc, \
                asyncio.TaskGroup() as tg:
            task = tg.create_task(svc.run(["bulk"]))

            async def started() -> bool:
                return len(providers.accepted) >= 200
            await wait_for(started, 60, "the bulk lane running")
            bulk_before = len(providers.accepted)
            t0 = time.monotonic()
            row = await svc.enqueue_single("099 635 199", "urgent", campaign="promo")

            async def single_sent() -> bool:
                return (await store.sms.get(row["id"])).state == SENT
            await wait_for(single_sent, 10, "the single send")
            latency = time.monotonic() - t0
            bulk_after = len(providers.accepted)
            task.cancel()
        backlog = (await states(store)).get(TO_PROCESS, 0)
    finally:
        await store.close()
        await runner.cleanup()
    assert backlog > 8000  # the bulk backlog was still there
    # at most one bulk batch (50 rows) went out meanwhile: it left within one cycle
    assert bulk_after - bulk_before <= 50 + 1, (bulk_before, bulk_after, latency)
    assert latency < 0.5, latency


async def test_lanes_do_not_block_each_other_and_follow_their_settings(db_url):
    """A dialer outside its schedule and a stopped one hold nothing up; the dial string
    rotates channels 0-3; spacing is kept; a number the provider's regexp refuses is "other"
    with the reason."""
    import datetime as dt

    from ivr_engine.sms.models import OTHER

    providers = LocalProviders()
    runner, url = await start(providers)
    cfg = parse_config(FIXTURE.read_text(), "sms.yaml",
                       {"IVR_DATABASE_URL": db_url, "SMS_PROVIDER_URL": url})
    store = await Store.open(db_url)
    try:
        await store.sms.enqueue(bulk_rows(100, 0, "closed", "night")
                                + bulk_rows(100, 100, "slow", "reminders")
                                + bulk_rows(6, 200, "ports", "ports") + bulk_rows(50, 300))
        now = dt.datetime.now(dt.timezone.utc)
        await store.sms.set_dialer("slow", False, now)
        async with SmsService(lambda: cfg, store.sms, worker="w") as svc, \
                asyncio.TaskGroup() as tg:
            task = tg.create_task(svc.run())

            async def sent() -> bool:
                return (await states(store)).get(SENT, 0) == 56
            t0 = time.monotonic()
            await wait_for(sent, 20, "the bulk and ports lanes")
            elapsed = time.monotonic() - t0
            await store.sms.enqueue([spool_row(
                destination="+33612345678", message="x", region="UY", encoding="auto",
                now=now, lane="slow", campaign="reminders", priority=0)])
            await store.sms.set_dialer("slow", True, now)

            async def other() -> bool:
                return (await states(store)).get(OTHER, 0) == 1
            await wait_for(other, 20, "the stopped dialer started again")
            task.cancel()
        async with store.db.sessions() as s:
            answer = (await s.execute(select(SpoolRow.provider_answer).where(
                SpoolRow.state == OTHER))).scalar_one()
        counts = await states(store)
    finally:
        await store.close()
        await runner.cleanup()
    gw = [r.form["port"] for r in providers.requests if r.kind == "gateway"]
    assert gw == ["0", "1", "2", "3", "0", "1"]
    assert elapsed >= 5 * 0.030  # five gaps of spacing_ms between six messages
    assert answer.startswith("+33612345678 does not match the number_regexp") and \
        answer.endswith("of provider 'twilio'"), answer
    assert counts[TO_PROCESS] >= 100  # the closed dialer's rows wait for their schedule


async def test_sends_of_a_dead_worker_follow_the_providers_policy(db_url):
    """Without a lookup: `unknown_outcome: fail` (Twilio here) marks them failed, never sent
    twice; `resend` (the gateway) queues them again, never lost; Infobip asks the provider."""
    from ivr_engine.sms.models import FAILED

    providers = LocalProviders()
    runner, url = await start(providers)
    cfg = parse_config(FIXTURE.read_text(), "sms.yaml",
                       {"IVR_DATABASE_URL": db_url, "SMS_PROVIDER_URL": url})
    store = await Store.open(db_url)
    try:
        await store.sms.enqueue(bulk_rows(3, 0, "slow", "reminders")
                                + bulk_rows(3, 10, "ports", "ports") + bulk_rows(3, 20))
        import datetime as dt
        now = dt.datetime.now(dt.timezone.utc)
        for lane, prov in (("slow", "twilio"), ("ports", "gateway"), ("bulk", "infobip")):
            got, _ = await store.sms.claim(lane, "dead", now, 50, True, prov)
            assert len(got) == 3  # claimed, handed to the provider, then the worker "died"
            await store.sms.mark_attempted([r.id for r in got], now)
        await store.sms.enqueue(bulk_rows(2, 30, "slow", "reminders"))
        never, _ = await store.sms.claim("slow", "dead", now, 50, True, "twilio")
        assert len(never) == 2  # claimed, but it died before they were handed over
        async with SmsService(lambda: cfg, store.sms, worker="dead") as svc:
            counts = await svc.recover(worker="dead")
        assert counts == {"failed": 3, "not-sent": 8}
        async with store.db.sessions() as s:
            rows = (await s.execute(select(SpoolRow.lane, SpoolRow.state,
                                           SpoolRow.provider_answer))).all()
    finally:
        await store.close()
        await runner.cleanup()
    by_lane = {lane: {(st, (a or "")[:40]) for ln, st, a in rows if ln == lane}
               for lane in ("slow", "ports", "bulk")}
    assert by_lane["slow"] == {(FAILED, "outcome unknown (the worker stopped mid-"),
                               (TO_PROCESS, "claimed but never sent; queued again")}
    assert {st for st, _ in by_lane["ports"]} == {TO_PROCESS}
    assert {st for st, _ in by_lane["bulk"]} == {TO_PROCESS}  # Infobip: not found there
    assert providers.requests == [] and not providers.accepted  # nothing was sent again
