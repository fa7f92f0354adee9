"""Callbacks and exits through the real engine and the real sandbox Asterisk (issue 19).

* Every way a call leaves the IVR — queue, voicemail, endpoint, a user's phone answering,
  callback, the engine hanging up, the caller hanging up — reaches the webhooks once, signed,
  in one payload shape; the URL configured as ``context_webhook`` still gets ``call.queued``
  only. The callers are SIPp phones on the carrier trunk; the user's phone is a SIPp phone
  registered as ``bob``.
* The engine calls a customer back: a SIPp caller asks for a callback; the engine places it
  in queue ``callbacks``; an agent (``PJSIP/alice``, registered to a SIPp phone, added with
  AMI ``QueueAdd``) answers, and only then the customer's phone (another SIPp phone) rings —
  busy the first time, answered the second (``attempts: 2``, ``retry_seconds: 1``); the
  request ends ``completed`` and ``callback.completed`` reaches the webhooks.
* Two placers on one database (two engines): each request placed once; the first dies with
  its placements waiting in the queue, the second takes them over and completes them.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from ivr_engine.callbacks.placer import OUTCOME_PREFIX, Placer
from ivr_engine.config import load_config
from ivr_engine.repositories import Store
from ivr_engine.store import Database
from ivr_engine.testing.customer import SippCustomer
from tests.support.hooks import HookReceiver
from tests.support.polling import poll
from tests.support.queue_member import queue_member
from tests.support.sip_register import register

from .engine_proc import start_engine

pytestmark = pytest.mark.sandbox

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "callbacks.yaml"
SECRET = "hook-secret-callbacks-0123456789abcdef012"
ADMIN = {"Authorization": "Bearer admin-secret-000000000000000000000000000"}
QUEUE = "callbacks"
AGENT = "PJSIP/alice"


@pytest.fixture(scope="module")
async def hook():
    async with HookReceiver() as h:
        yield h


@pytest.fixture(scope="module")
async def customer(tmp_path_factory):
    async with SippCustomer(tmp_path_factory.mktemp("customer")) as phone:
        yield phone


@pytest.fixture(scope="module")
async def engine(sandbox, hook, customer, tmp_path_factory):
    eng = await start_engine(sandbox, tmp_path_factory.mktemp("callbacks"), config=FIXTURE,
                             extra_env={"IVR_AMI_PASSWORD": sandbox.ami_password,
                                        "IVR_WEBHOOK_URL": hook.base,
                                        "IVR_WEBHOOK_SECRET": SECRET,
                                        "IVR_CUSTOMER_PORT": str(customer.port)})
    yield eng
    assert await eng.stop() == 0, eng.log()


async def callbacks(http, **query) -> list[dict]:
    async with http.get("/v1/callbacks", params=query, headers=ADMIN) as r:
        assert r.status == 200, await r.text()
        return (await r.json())["callbacks"]


async def until(check, timeout: float, what: str):
    """Poll ``check()`` (async) until it returns something truthy."""
    if not (got := await poll(check, timeout)):
        raise TimeoutError(f"{what}: not within {timeout}s")
    return got


# ---------------------------------------------------------------------------- exits

EXITS = [  # keys, the event, the destination it names, who hung up
    ("2", "call.queued", "queue:support", None),
    ("3", "call.voicemail", "voicemail:1000@default", None),
    ("4", "call.transferred", "endpoint:carol", None),
    ("5", "call.user", "user:ursula", None),
    ("6", "callback.requested", "callback:support", None),
    ("9", "call.hungup", "message-then-hangup:bye", "engine"),
    ("", "call.hungup", None, "caller"),
]


async def test_every_exit_reaches_the_webhooks_once_signed(sandbox, engine, sipp, hook,
                                                           tmp_path):
    async with SippCustomer(tmp_path) as desk:  # bob's desk phone: answers, talks 2 s
        await desk.start(calls=1, mode="answer", hold_ms=2000, timeout=30)
        assert await register("bob", sandbox.sip_password, "", expires=60,
                              contact_at=f"{desk.address}:{desk.port}") == 200
        try:
            launched = [sipp.launch("200", keys, start_ms=700, tail_ms=2500, timeout=30)
                        for keys, *_ in EXITS]
            runs = await asyncio.gather(*(done for _, done in launched))
        finally:
            await register("bob", sandbox.sip_password, "", expires=0)
    callers = [run.calls[0].caller for run in runs]
    for run in runs:
        assert run.returncode == 0, run.output
    everything = await hook.wait(lambda d: d.path == "/all" and d.payload["caller"] in callers,
                                 timeout=15, count=len(EXITS))
    await asyncio.sleep(0.5)  # a second announcement of any call would come now
    for (keys, event, destination, by), caller in zip(EXITS, callers):
        mine = hook.matching(lambda d, c=caller: d.path == "/all" and d.payload["caller"] == c)
        assert [d.payload["event"] for d in mine] == [event], (keys, mine)
        (got,) = mine
        assert got.signed_with(SECRET)
        p = got.payload
        assert (p["destination"], p["hung_up_by"], p["entry"]) == (destination, by,
                                                                    "did:200"), p
        assert p["reason"] == ("caller-hung-up" if by == "caller" else "option")
        assert p["path"] == ["top"] and p["call_id"] and p["verified"] is False
        assert set(p) == set(everything[0].payload)
    callback = next(d.payload for d in everything if d.payload["event"] ==
                    "callback.requested")
    assert callback["queue"] == "support" and callback["callback"]["state"] == "requested"
    # the context_webhook URL: what it got before issue 19, and only that
    legacy = hook.matching(lambda d: d.path == "/legacy" and d.payload["caller"] in callers)
    assert [d.payload["event"] for d in legacy] == ["call.queued"]
    assert legacy[0].signed_with(SECRET) and legacy[0].payload["queue"] == "support"


# ---------------------------------------------------------------------------- callbacks

async def test_the_engine_calls_back_once_an_agent_answers(sandbox, engine, http, sipp, hook,
                                                           ami, customer, tmp_path):
    run = await sipp.call("200", "1", start_ms=700, tail_ms=2500, timeout=30)
    assert run.returncode == 0, run.output
    number = run.calls[0].caller
    (requested,) = await hook.wait(lambda d: d.path == "/all" and d.payload["caller"] ==
                                   number, timeout=10)
    assert requested.payload["event"] == "callback.requested" and requested.signed_with(SECRET)
    cb_id = requested.payload["callback"]["id"]
    # placed in the queue: it waits there like a caller, no agent yet, nobody rung
    placed = await until(lambda: callbacks(http, state="dialing", queue=QUEUE), 10, "placed")
    assert [c["id"] for c in placed] == [cb_id]
    assert placed[0]["claimed_by"].startswith("engine:")
    await customer.start(calls=1, mode="busy", timeout=40)
    await asyncio.sleep(1.0)
    assert customer.invites() == []
    async with SippCustomer(tmp_path) as agent:  # the agent's phone, registered as alice
        await agent.start(calls=2, mode="answer", hold_ms=15_000, timeout=40)
        assert await register("alice", sandbox.sip_password, "", expires=60,
                              contact_at=f"{agent.address}:{agent.port}") == 200
        added = time.time()
        try:
            async with queue_member(ami, QUEUE, AGENT, MemberName="alice"):
                busy = await customer.finished()  # the first try: busy
                assert busy.returncode == 0, busy.output
                await customer.start(calls=1, mode="answer", hold_ms=1000, timeout=30)
                done = await until(lambda: callbacks(http, state="completed", queue=QUEUE),
                                   20, "completed")
                first, second = busy.invites, (await customer.finished()).invites
        finally:
            await register("alice", sandbox.sip_password, "", expires=0)
        agent_invites = agent.invites()
    assert [i.number for i in first + second] == [number] * 2  # the caller's number
    assert len(agent_invites) == 2
    # the customer's phone rang only after the agent's (who answered at once)
    assert added <= agent_invites[0].at < first[0].at
    assert agent_invites[1].at < second[0].at
    (row,) = [c for c in done if c["id"] == cb_id]
    assert (row["attempts"], row["last_outcome"], row["caller"]) == (2, "answered", number)
    (completed,) = await hook.wait(lambda d: d.path == "/all" and d.payload["event"] ==
                                   "callback.completed" and d.payload["caller"] == number)
    assert completed.signed_with(SECRET)
    assert completed.payload["callback"] == {"id": cb_id, "state": "completed",
                                             "attempts": 2, "outcome": "answered"}
    # each attempt's outcome variable was read, then removed
    out = sandbox.cli("dialplan show globals")
    assert OUTCOME_PREFIX not in out, out


async def test_two_engines_place_each_callback_once_and_one_takes_over(sandbox, engine, ami,
                                                                       tmp_path):
    """Two placers on one database (as two engine processes would be): each request is
    placed once; the first dies with its placements waiting in the queue, the second takes
    them over when their lease runs out and records how each ended."""
    db_url = f"sqlite:///{tmp_path / 'shared.db'}"
    db = Database(db_url)
    await db.upgrade()
    await db.close()
    async with SippCustomer(tmp_path) as customer, SippCustomer(tmp_path) as agent:
        cfg = load_config(FIXTURE, {**os.environ, "IVR_ARI_URL": sandbox.ari_url,
                                    "IVR_ARI_USERNAME": sandbox.ari_username,
                                    "IVR_ARI_PASSWORD": sandbox.ari_password,
                                    "IVR_CUSTOMER_PORT": str(customer.port)})
        stores = [await Store.open(db_url), await Store.open(db_url)]
        numbers = [f"+1555444{i:04d}" for i in range(4)]

        async def ask(n: str) -> None:
            await stores[0].callbacks.add(caller=n, queue=QUEUE, language="en", entry="x",
                                          path="top", channel_id=f"chan-{n}")

        first = Placer(lambda: cfg, stores[0].callbacks, None, owner="engine:test-a")
        second = Placer(lambda: cfg, stores[1].callbacks, None, owner="engine:test-b")
        for n in numbers[:2]:
            await ask(n)
        tasks = [asyncio.create_task(first.run())]
        try:
            await until(lambda: _all_in(stores[0], "dialing", 2), 10, "placed by the first")
            tasks.append(asyncio.create_task(second.run()))
            for n in numbers[2:]:  # both engines look for these
                await ask(n)
            rows = await until(lambda: _all_in(stores[0], "dialing", 4), 10, "placed")
            assert [r.placements for r in rows] == [1, 1, 1, 1]  # each placed once
            owners = {r.caller: r.claimed_by for r in rows}
            assert owners[numbers[0]] == owners[numbers[1]] == "engine:test-a"
            tasks[0].cancel()  # the first engine dies; its placements wait in Asterisk
            await asyncio.gather(tasks[0], return_exceptions=True)
            await customer.start(calls=4, mode="answer", hold_ms=300, timeout=40)
            await agent.start(calls=4, mode="answer", hold_ms=15_000, timeout=40)
            assert await register("alice", sandbox.sip_password, "", expires=60,
                                  contact_at=f"{agent.address}:{agent.port}") == 200
            try:
                async with queue_member(ami, QUEUE, AGENT, MemberName="alice"):
                    done = await until(lambda: _all_in(stores[0], "completed", 4), 30,
                                       "completed")
            finally:
                await register("alice", sandbox.sip_password, "", expires=0)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for s in stores:
                await s.close()
        rang = [i.number for i in customer.invites()]
    assert sorted(rang) == numbers  # each customer rang once
    assert all(r.attempts == 1 and r.last_outcome == "answered" for r in done)
    assert {r.claimed_by for r in done} == {"engine:test-b"}  # the first's taken over


async def _all_in(store, state: str, n: int) -> list:
    rows = await store.callbacks.find(state)
    return rows if len(rows) == n else []
