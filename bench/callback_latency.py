#!/usr/bin/env python3
"""Callback latency: from an agent freeing up to the customer's phone ringing.

    flock -o /tmp/ivr-live.lock .venv/bin/python bench/callback_latency.py [--rounds 20]

Prints ONE JSON object on stdout (progress on stderr).

The engine's placer (``ivr_engine/callbacks/placer.py``, the engine's code, in this process
on a temporary SQLite store) places callbacks in the sandbox's queue ``callbacks``. The agent
is ``PJSIP/alice`` registered to a SIPp phone that answers at once, a member of the queue
(AMI ``QueueAdd``) kept paused between rounds; the customer is a SIPp phone on the carrier
trunk's address that answers and hangs up 300 ms later. Each round:

1. a callback request is written (as the IVR writes it); the placer places it; the round
   waits until app_queue has it as a waiting caller (AMI ``QueueStatus``), then a random
   0–``--spread`` s (seeded: an agent frees up at any moment of app_queue's retry cycle);
2. the agent frees up: AMI ``QueuePause`` ``Paused: false``; **t0** = Asterisk's answer;
3. the agent's phone gets the INVITE (**agent**, SIPp's receive time) and answers; the
   dialplan dials the customer, whose phone gets the INVITE (**customer**);
4. the agent is paused again; the request ends ``completed`` before the next round.

Figures (ms, p50/p90/p99 over the rounds): ``customer_ring`` = customer − t0, what the issue
asks for; the baseline of the same run, ``agent_ring`` = agent − t0: what app_queue itself
takes to ring a freed agent for any waiting caller (its ``retry`` loop, 1 s in
``asterisk-conf/queues.conf``), which callbacks do not change; and ``added_by_callback`` =
customer − agent: what the callback adds (the agent's answer, the Local channel, Dial).
The engine is not on this path: the placement waits in Asterisk before the agent frees up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import make_log, percentiles, sandbox, sandbox_env  # noqa: E402
from ivr_engine.ami import AmiClient  # noqa: E402
from ivr_engine.callbacks.placer import Placer  # noqa: E402
from ivr_engine.config import parse_config  # noqa: E402
from ivr_engine.repositories import Store  # noqa: E402
from ivr_engine.store import Database  # noqa: E402
from ivr_engine.testing.customer import SippCustomer  # noqa: E402
from tests.support.polling import poll  # noqa: E402
from tests.support.sip_register import register  # noqa: E402

QUEUE, AGENT = "callbacks", "PJSIP/alice"
log = make_log("callback")

CONFIG = """
engine:
  ari: {{url: "{url}", username: "{user}", password: "{password}", app: ivr-bench-callbacks}}
  database_url: "{db}"
callbacks:
  dial: "PJSIP/carrier/sip:{{number}}@{address}:{port}"
  poll_seconds: 0.1
  queues:
    callbacks: {{attempts: 1, ring_seconds: 10, wait_seconds: 120}}
"""


async def until(check: Any, timeout: float, what: str, step: float = 0.005) -> Any:
    if not (got := await poll(check, timeout, step)):
        raise SystemExit(f"callback_latency: {what} did not happen within {timeout}s")
    return got


async def waiting_callers(ami: AmiClient) -> int:
    events = await ami.event_list({"Action": "QueueStatus", "Queue": QUEUE})
    return sum(1 for e in events if e.get("Event") == "QueueEntry")


async def bench(rounds: int, spread: float, seed: int, work: Path) -> dict[str, Any]:
    rng = random.Random(seed)
    env = sandbox_env(("IVR_ARI_URL", "IVR_ARI_USERNAME", "IVR_ARI_PASSWORD",
                       "IVR_AMI_PASSWORD", "IVR_SIP_PASSWORD"))
    db_url = f"sqlite:///{work / 'bench.db'}"
    db = Database(db_url)
    await db.upgrade()
    await db.close()
    ami = AmiClient("127.0.0.1", int(env.get("IVR_AMI_PORT", "5038")),
                    env.get("IVR_AMI_USERNAME", "ivr-engine"), env["IVR_AMI_PASSWORD"])
    store = await Store.open(db_url)
    out: dict[str, list[float]] = {"customer_ring": [], "agent_ring": [],
                                   "added_by_callback": []}
    async with SippCustomer(work) as agent, SippCustomer(work) as customer, \
            asyncio.TaskGroup() as tg:
        cfg = parse_config(CONFIG.format(
            url=env["IVR_ARI_URL"], user=env["IVR_ARI_USERNAME"],
            password=env["IVR_ARI_PASSWORD"], db=db_url, address=customer.address,
            port=customer.port), "bench", {})
        placer = Placer(lambda: cfg, store.callbacks, None, owner="engine:bench")
        ami_task = tg.create_task(ami.run())
        await agent.start(calls=rounds, mode="answer", hold_ms=60_000, timeout=600)
        await customer.start(calls=rounds, mode="answer", hold_ms=300, timeout=600)
        if await register("alice", env["IVR_SIP_PASSWORD"], "", expires=600,
                          contact_at=f"{agent.address}:{agent.port}") != 200:
            raise SystemExit("callback_latency: REGISTER alice refused")
        await ami.action({"Action": "QueueAdd", "Queue": QUEUE, "Interface": AGENT,
                          "MemberName": "alice", "Paused": "true"})
        placing = tg.create_task(placer.run())
        try:
            for i in range(rounds):
                row = await store.callbacks.add(
                    caller=f"+1555777{i:04d}", queue=QUEUE, language="en",
                    entry="bench", path="bench", channel_id=f"bench-{i}")
                await until(lambda: waiting_callers(ami), 10, "the placement", step=0.02)
                await asyncio.sleep(rng.uniform(0, spread))
                await ami.action({"Action": "QueuePause", "Queue": QUEUE, "Interface": AGENT,
                                  "Paused": "false"})
                t0 = time.time()

                async def rang(n: int = i + 1) -> bool:
                    return len(customer.invites()) >= n

                await until(rang, 15, f"round {i}: the customer's phone ringing")
                await ami.action({"Action": "QueuePause", "Queue": QUEUE, "Interface": AGENT,
                                  "Paused": "true"})
                c_at, a_at = customer.invites()[i].at, agent.invites()[i].at
                out["customer_ring"].append((c_at - t0) * 1000)
                out["agent_ring"].append((a_at - t0) * 1000)
                out["added_by_callback"].append((c_at - a_at) * 1000)

                async def done(rid: int = row.id) -> bool:
                    got = await store.callbacks.get(rid)
                    return got is not None and got.state == "completed"

                await until(done, 15, f"round {i}: the callback completed", step=0.05)
                log(f"round {i + 1}/{rounds}: customer rang {out['customer_ring'][-1]:.0f} ms "
                    f"after the agent freed up (agent {out['agent_ring'][-1]:.0f} ms)")
        finally:
            placing.cancel()
            try:
                await ami.action({"Action": "QueueRemove", "Queue": QUEUE, "Interface": AGENT})
            finally:
                await register("alice", env["IVR_SIP_PASSWORD"], "", expires=0)
                ami_task.cancel()
    await store.close()
    states = {r.state for r in await _rows(db_url)}
    return {"benchmark": "callback_latency", "rounds": rounds, "spread_seconds": spread,
            "seed": seed,
            "customer_ring_ms": percentiles(out["customer_ring"]),
            "baseline_agent_ring_ms": percentiles(out["agent_ring"]),
            "added_by_callback_ms": percentiles(out["added_by_callback"]),
            "requests_completed": states == {"completed"}}


async def _rows(url: str) -> list:
    store = await Store.open(url)
    try:
        return await store.callbacks.find(limit=10_000)
    finally:
        await store.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--spread", type=float, default=1.5, help="the agent frees up 0 to this "
                   "many seconds after the placement joined the queue (default 1.5)")
    p.add_argument("--seed", type=int, default=19)
    args = p.parse_args()
    sandbox("up")
    with tempfile.TemporaryDirectory(prefix="cb-bench-") as tmp:
        result = asyncio.run(bench(args.rounds, args.spread, args.seed, Path(tmp)))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
