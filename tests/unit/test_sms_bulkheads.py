"""SMS lanes as bulkheads, on SQLite and PostgreSQL with a local provider speaking its real
wire format: an answer of an unexpected shape is a failed row, never an exception out of the
lane; a lane whose database writes fail (another process holds the write lock) is restarted
by its supervisor and writes the outcomes it already knew, so nothing is sent twice or lost."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import func, select

from ivr_engine import metrics
from ivr_engine.config import parse_config
from ivr_engine.sms.dialer import SmsService
from ivr_engine.sms.models import FAILED, SENT, SpoolRow
from ivr_engine.sms.spool import spool_row
from ivr_engine.repositories import Store
from ivr_engine.supervisor import RestartPolicy
from tests.support.dblock import write_lock
from tests.support.sms_providers import INFOBIP_KEY, LocalProviders, start

FAST = RestartPolicy(backoff_seconds=0.05, backoff_max_seconds=0.2, jitter=0.0, failures=3,
                     window_seconds=60, stable_seconds=5)


def config(url: str, db_url: str, provider: str):
    return parse_config(f"""
engine:
  ari: {{password: unused}}
  database_url: {db_url}
sms:
  default_region: UY
  providers:
    - {{name: infobip, type: infobip, url: "{url}", password: {INFOBIP_KEY}, default: true,
        timeout_seconds: 2}}
    - {{name: gateway, type: url-post, url: "{url}/gw", unknown_outcome: resend,
        params: {{to: "{{to_digits}}", text: "{{text}}", id: "{{id}}"}}, message_id_field: id}}
  dialers:
    bulk: {{provider: {provider}}}
  campaigns:
    promo: {{dialer: bulk}}
""", "sms-bulkheads.yaml")


def rows(n: int):
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    return [spool_row(destination=f"099{i:06d}", message=f"m{i}", region="UY",
                      encoding="auto", now=now, lane="bulk", campaign="promo", position=i)
            for i in range(n)]


async def until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.02)


async def states(store: Store) -> dict[int, int]:
    async with store.db.sessions() as s:
        return dict((await s.execute(select(SpoolRow.state, func.count())
                                     .group_by(SpoolRow.state))).all())


async def test_an_answer_of_an_unexpected_shape_is_a_failed_row(db_url):
    """Old main: ``AttributeError: 'str' object has no attribute 'get'`` out of the lane."""
    providers = LocalProviders(garbage=True)
    runner, url = await start(providers)
    store = await Store.open(db_url)
    try:
        cfg = config(url, db_url, "infobip")
        async with SmsService(lambda: cfg, store.sms, worker="w") as svc:
            row = await svc.enqueue_single("099635199", "hello")
            assert await svc.single_once() == 1
            got = await store.sms.get(row["id"])
    finally:
        await store.close()
        await runner.cleanup()
    assert got.state == FAILED
    assert got.provider_answer.startswith("unexpected answer from the provider "
                                          "(AttributeError): HTTP 200: {'messages': "
                                          "['PENDING']}"), got.provider_answer
    assert len(providers.requests) == 1  # sent once, not retried


@pytest.mark.parametrize("provider", ["gateway", "infobip"])
async def test_a_lane_whose_writes_fail_is_restarted_and_sends_each_row_once(db_url, provider):
    """The provider answers while the spool is locked: recording fails past the busy/
    statement timeout, the lane fails and is restarted (backoff) until the lock goes, then
    writes the outcomes it knew. The gateway's ``unknown_outcome: resend`` would have sent
    them all again had the restart guessed. Old main: the lane's exception ends
    ``SmsService.run``, nothing is restarted."""
    total = 40
    providers = LocalProviders()
    runner, url = await start(providers)
    store = await Store.open(db_url, busy_timeout=0.2, statement_timeout=0.5)
    before = metrics.REGISTRY.get_sample_value(
        "ivr_task_failures_total", {"task": "sms-dialer-bulk"}) or 0.0
    try:
        cfg = config(url, db_url, provider)
        await store.sms.enqueue(rows(total))
        providers.answering.clear()  # the provider holds its answers ...
        async with SmsService(lambda: cfg, store.sms, worker="w") as svc, \
                asyncio.TaskGroup() as tg:
            run = tg.create_task(svc.run(["bulk"], FAST))

            async def first_batch_sent() -> bool:
                return len(providers.requests) >= 1
            await until(first_batch_sent, 10, "the first batch at the provider")
            async with write_lock(db_url):  # ... while another process takes the write lock
                providers.answering.set()

                async def failed_twice() -> bool:
                    return (metrics.REGISTRY.get_sample_value(
                        "ivr_task_failures_total", {"task": "sms-dialer-bulk"}) or 0) \
                        >= before + 2
                await until(failed_twice, 10, "the lane failing and restarting")
                assert not run.done()

            async def all_sent() -> bool:
                return (await states(store)).get(SENT, 0) == total
            await until(all_sent, 20, "every row sent once the lock is gone")
            run.cancel()
    finally:
        await store.close()
        await runner.cleanup()
    assert providers.summary() == {"accepted": total, "distinct": total, "duplicates": 0}
