"""The spool on SQLite and PostgreSQL: claims by priority then position, do-not-contact
blocking, outcomes written only on rows still in flight, concurrent claimers never sharing a
row, all-or-nothing uploads with every bad line, campaign deletion and the monitor."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from ivr_engine.config import parse_config
from ivr_engine.repositories import Store
from ivr_engine.sms.models import BLOCKED, SENDING, SENT, TO_PROCESS
from ivr_engine.sms.overview import campaign_report
from ivr_engine.sms.spool import spool_row
from ivr_engine.sms.uploads import receive
from tests.support.planner import nested_loops

NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.timezone.utc)
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sms.yaml"


def sms_config():
    return parse_config(FIXTURE.read_text(), "sms.yaml", {}).model.sms


def row(n: int, *, lane="bulk", campaign="promo", priority=9999, position=None):
    return spool_row(destination=f"0996{n:05d}", message=f"m{n}", region="UY",
                     encoding="auto", now=NOW, lane=lane, campaign=campaign,
                     priority=priority, position=n if position is None else position)


async def lines(*texts: str):
    for t in texts:
        yield t.encode()


async def test_claim_order_limit_and_dnc(store):
    repo = store.sms
    await repo.enqueue([row(1, priority=5), row(2, priority=1, position=9), row(3, priority=1),
                        row(4, campaign="reminders"), row(5), row(6, lane="other")])
    await repo.dnc_add([("+59899600004", "reminders"), ("+59899600005", ""),
                        ("+59899600001", "elsewhere")])
    got, blocked = await repo.claim("bulk", "w1", NOW, 3, True, "infobip")
    assert [r.destination[-1] for r in got] == ["3", "2", "1"] and blocked == 0
    assert {r.provider for r in got} == {"infobip"}
    got, blocked = await repo.claim("bulk", "w1", NOW, 50, True, "infobip")
    assert got == [] and blocked == 2  # 4: listed for its campaign; 5: listed for all
    assert (await repo.get(5)).state == BLOCKED
    assert (await repo.get(6)).state == TO_PROCESS  # another lane
    # outcomes land only on rows still in flight
    await repo.record([{"rid": 1, "state": SENT, "message_id": "x", "answer": "ok",
                            "done_at": NOW}, {"rid": 5, "state": SENT}])
    assert (await repo.get(1)).state == SENT and (await repo.get(5)).state == BLOCKED
    left = await repo.in_flight(worker="w1")
    assert sorted(r.id for r in left) == [2, 3]
    assert await repo.in_flight(worker="w2") == []
    later = NOW + dt.timedelta(seconds=1)
    assert len(await repo.in_flight(claimed_before=later)) == 2
    assert await repo.in_flight(not_worker="w1", claimed_before=later) == []  # not its own
    await repo.touch([2], NOW + dt.timedelta(seconds=5))  # a spaced batch renews its lease
    assert [r.id for r in await repo.in_flight(claimed_before=later)] == [3]
    await repo.mark_attempted([3], NOW)
    assert [(r.id, r.attempted) for r in await repo.in_flight(worker="w1")] == \
        [(2, False), (3, True)]
    report = campaign_report("promo", (await repo.counts(NOW + dt.timedelta(seconds=1)))["promo"])
    assert report | {"messages_per_second": 0} == {
        "campaign": "promo", "processed": 1, "not_processed": 3, "in_flight": 2, "other": 0,
        "blocked": 1, "failed": 0, "messages_per_second": 0, "segments_per_second": 0.017}
    assert await repo.delete_unprocessed("promo") == 2  # blocked + waiting; sent, in flight stay
    assert await repo.delete_unprocessed("reminders") == 1


async def test_concurrent_claimers_never_share_a_row(store):
    repo = store.sms
    await repo.enqueue([row(i) for i in range(600)])

    async def worker(name: str) -> list[int]:
        mine: list[int] = []
        while True:
            got, _ = await repo.claim("bulk", name, NOW, 50, True, "p")
            if not got:
                return mine
            mine += [r.id for r in got]

    results = await asyncio.gather(*(worker(f"w{i}") for i in range(6)))
    ids = [i for r in results for i in r]
    assert len(ids) == len(set(ids)) == 600
    assert sum(1 for r in results if r) >= 2  # they did run side by side


async def test_engines_claiming_at_once_take_each_row_once_and_never_more_than_asked(
        store, db_url):
    """Several engines (a Store each, as separate processes have) claim small batches side by
    side: no row twice, no claim above its limit — also when PostgreSQL plans the claim with
    nested loops (the old ``id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)`` then took every
    waiting row in one claim)."""
    await store.sms.enqueue([row(i) for i in range(120)])
    others = [await Store.open(db_url, **nested_loops(db_url)) for _ in range(3)]
    try:
        async def worker(repo, name: str, limit: int) -> list[int]:
            mine: list[int] = []
            while True:
                got, _ = await repo.claim("bulk", name, NOW, limit, False, "p")
                assert len(got) <= limit, f"{name} asked for {limit}, got {len(got)}"
                if not got:
                    return mine
                mine += [r.id for r in got]

        repos = [store.sms] + [o.sms for o in others]
        results = await asyncio.gather(*(worker(repos[i % 4], f"w{i}", 1 + i % 3)
                                         for i in range(8)))
    finally:
        for o in others:
            await o.close()
    ids = [i for r in results for i in r]
    assert len(ids) == len(set(ids)) == 120, "a row claimed twice or left behind"
    assert sum(1 for r in results if r) >= 2  # they did run side by side


async def test_a_bad_upload_imports_nothing_and_lists_every_bad_line(store):
    sms = sms_config()
    good = [f"promo;0996{i:05d};Hello {i};9999;\n" for i in range(2500)]
    bad = good[:1200] + ["nope;099600001;x;1\n"] + good[1200:2400] + ["promo;1;x;1\n", "\n"]
    result = await receive("spool", store.sms, sms,
                           lines("campaign;destiny;message;priority\n", *bad), NOW)
    assert not result.ok and result.imported == 0
    assert [(e.line, e.reason.split(" (")[0].split(":")[0]) for e in result.errors] == [
        (1202, "campaign 'nope' does not exist"), (2403, "'1' is not a phone number"),
        (2404, "blank line")]
    assert (await store.sms.counts(NOW)) == {}
    result = await receive("spool", store.sms, sms, lines(*good), NOW)
    assert result.ok and result.imported == 2500
    counts = await store.sms.counts(NOW)
    assert counts["promo"]["states"] == {TO_PROCESS: 2500}
    got, _ = await store.sms.claim("bulk", "w", NOW, 2, False, "infobip")
    assert [r.destination for r in got] == ["+59899600000", "+59899600001"]  # file order


async def test_dnc_upload(store):
    sms = sms_config()
    r = await receive("dnc", store.sms, sms, lines("23578408;promo;\n", "23578408;promo;\n",
                                                   "23113758;\n", "x;promo;\n", "1;nope;\n"), NOW)
    assert not r.ok and [e.line for e in r.errors] == [4, 5] and await store.sms.dnc_count() == 0
    r = await receive("dnc", store.sms, sms, lines("number;campaign\n", "23578408;promo;\n",
                                                   "23578408;promo;\n", "23113758;\n"), NOW)
    assert r.ok and r.imported == 2 and await store.sms.dnc_count() == 2


async def test_dialers_start_and_stop(store):
    assert await store.sms.dialer_running("bulk")  # running unless stopped
    await store.sms.set_dialer("bulk", False, NOW)
    assert not await store.sms.dialer_running("bulk")
    await store.sms.set_dialer("bulk", True, NOW)
    assert await store.sms.dialer_running("bulk")
    assert SENDING == 2
