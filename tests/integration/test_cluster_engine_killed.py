"""Engine a SIGKILLed while node a's Asterisk stays up (scripts/cluster, one engine per node):
Kamailio's OPTIONS probe still sees node a, but node a refuses the new calls Kamailio marks
"another node remains" (``X-IVR-Next-Node: 1``) with a 503 before answering them
(``ivr-engine-next-node``), so they all complete on node b's engine instead of node a's
fallback queue. The callers engine a was driving go to node a's fallback (its watchdog),
engine b's callers finish their walk untouched, and engine a started again takes node a's
calls back.

Asserted on what the Asterisks did (SIPp callers through Kamailio, RFC 4733 keys; the node of
each call's channel, the channels node a refused), on the engines' logs and on the shared
``call_records`` (``node``, ``engine``).
"""

from __future__ import annotations

import asyncio
import re
import signal
import time

import pytest

from ivr_engine.testing.sipp import SippCaller
from tests.support import pgcluster
from tests.support.cluster import (
    KAMAILIO_SIP,
    STATE,
    all_active,
    cluster_with_engines,
    engine_ready,
    until,
)

from .engine_proc import spawn_engine

pytestmark = pytest.mark.sandbox

QUEUE = {"type": "queue", "target": "sales"}  # ivr.yaml: 100, keys 1 1 1
REFUSED = "node sip:127.0.0.2:5060 failed (503)"  # kamailio.cfg's failure route
FALLBACK = "Playback(pls-hold-while-try"  # ivr-engine-fallback's message, then its queue


@pytest.fixture(scope="module")
async def cluster(cluster_topology, tmp_path_factory, postgres_server):
    async with cluster_with_engines(postgres_server,
                                    tmp_path_factory.mktemp("engine-killed")) as c:
        yield c


def node_of(call) -> str:
    m = re.match(r"node-([ab])-", call.channel)
    assert m, f"channel {call.channel!r} of {call.caller} is on no node"
    return m.group(1)


async def records(url: str, ids: list[str]) -> dict[str, tuple[str, str]]:
    rows = await pgcluster.fetch(url, "SELECT id, node, engine FROM call_records "
                                      "WHERE id = ANY($1::text[])", ids)
    return {r["id"]: (r["node"], r["engine"]) for r in rows}


def walked(call) -> bool:
    return call.keys == ["1", "1", "1"] and call.path == ["top", "a", "b"] \
        and call.destination == QUEUE and "IVR_FALLBACK" not in call.variables


async def test_engine_a_killed_new_calls_complete_on_node_b_and_restart_takes_back(
        cluster, tmp_path):
    kamailio_log = STATE / "cluster" / "kamailio.log"
    log_at = kamailio_log.stat().st_size
    a_eng, b_eng = cluster.engines["a"], cluster.engines["b"]
    async with SippCaller(cluster.nodes["a"], tmp_path, target=KAMAILIO_SIP,
                          nodes=list(cluster.nodes.values())) as sipp:
        # 1. four callers in the IVR, two on each node (round robin), waiting for a key in
        # the first menu (engine a's callers: its watchdog runs out 1 + 3 s later)
        first, placing = sipp.launch("100", "1 1 1", calls=4, concurrency=4, rate=20,
                                     hold_ms=7000)
        running = asyncio.ensure_future(placing)
        await until(lambda: _all(lambda: all(c.variables.get("IVR_AWAITING", "").startswith(
            "top") for c in first)), 10, "four callers waiting in the first menu")
        assert sorted(node_of(c) for c in first) == ["a", "a", "b", "b"], \
            [c.channel for c in first]
        await a_eng.stop(signal.SIGKILL)
        killed = time.monotonic()
        # 2. new calls while engine a is away: every one completes on node b's engine
        run2 = await sipp.call("100", "1 1 1", calls=4, concurrency=4, rate=10, tail_ms=800,
                               rtt=True)
        second = run2.calls
        done = await running
        assert done.returncode == 0 and run2.returncode == 0, run2.output
        on_a = [c for c in first if node_of(c) == "a"]
        for c in on_a:  # engine a's callers: node a's watchdog, then its fallback queue
            assert c.variables.get("IVR_FALLBACK") == "1", c.dialplan
            assert c.first("app", "Goto(ivr-engine-resume", after=killed), c.dialplan
            assert c.first("app", FALLBACK, after=killed), c.dialplan
        for c in first:
            if node_of(c) == "b":  # engine b's: untouched, their walk to the queue
                assert walked(c), (c.keys, c.path, c.dialplan)
        assert [node_of(c) for c in second] == ["b"] * 4, [c.channel for c in second]
        for c in second:
            assert walked(c), (c.keys, c.path, c.dialplan)
            assert not c.first("app", FALLBACK) and not c.first("app", "Queue(ivr-fallback")
            for refused in c.refused.values():  # node a said no before answering
                assert refused.channel.startswith("node-a-") and not refused.answered
                assert "PJSIPHangup" in refused.apps and refused.ended, refused.dialplan
        refused = [r for c in second for r in c.refused.values()]
        kamailio = kamailio_log.read_text(errors="replace")[log_at:]
        assert refused and kamailio.count(REFUSED) == len(refused), kamailio[-3000:]
        fallback = [c.first("app", FALLBACK) - killed for c in on_a]
        print(f"\nengine a killed: its {len(on_a)} callers in node a's fallback "
              f"{min(fallback):.2f}-{max(fallback):.2f} s later; {len(second)} new calls all "
              f"walked on node b ({len(refused)} refused 503 by node a first); INVITE->200 "
              f"of the new calls {sorted(round(ms) for ms in run2.response_ms)} ms")

        # 3. engine a again, same config: node a's calls are its again
        again = await spawn_engine(cluster.nodes["a"], tmp_path / "engine-a-again",
                                   a_eng.config_path, extra_env={
                                       "IVR_DATABASE_URL": cluster.database_url,
                                       "IVR_AMI_USERNAME": cluster.nodes["a"].ami_username,
                                       "IVR_AMI_PASSWORD": cluster.nodes["a"].ami_password})
        cluster.engines["a"] = again  # stopped by the fixture
        started = time.monotonic()
        await until(lambda: engine_ready(again), 20, "engine a ready again", step=0.1)
        await until(all_active, 5, "Kamailio sees both nodes active")
        back = time.monotonic() - started
        run3 = await sipp.call("100", "1 1 1", calls=2, concurrency=2, rate=20, tail_ms=800)
        assert run3.returncode == 0, run3.output
        third = run3.calls
    assert sorted(node_of(c) for c in third) == ["a", "b"], [c.channel for c in third]
    assert all(walked(c) and not c.refused for c in third), [c.dialplan for c in third]
    (took_back,) = [c for c in third if node_of(c) == "a"]
    assert took_back.channel in again.log()
    print(f"engine a started again: ready and node a active {back:.2f} s later; "
          f"{took_back.channel} walked by it")

    # who drove what: the engines' logs and the shared call records
    b_log = b_eng.log()
    expect = {c.channel: ("node-a", "node-a") for c in on_a + [took_back]}
    expect |= {c.channel: ("node-b", "node-b") for c in first + second + third
               if node_of(c) == "b"}
    for channel, (_, engine) in expect.items():
        assert (channel in b_log) == (engine == "node-b"), channel
    assert await records(cluster.database_url, list(expect)) == expect


async def _all(predicate) -> bool:
    return predicate()


async def test_every_engine_away_the_last_node_still_takes_the_call_into_its_fallback(
        cluster, tmp_path):
    """Last in the module: both engines killed. The first node Kamailio tries refuses (the
    other node remains), the last one tried takes the caller into its fallback: no caller
    gets a bare 503."""
    for engine in cluster.engines.values():
        await engine.stop(signal.SIGKILL)
    await until(all_active, 5, "Kamailio sees both nodes active")  # no refusal marked yet
    async with SippCaller(cluster.nodes["a"], tmp_path, target=KAMAILIO_SIP,
                          nodes=list(cluster.nodes.values())) as sipp:
        run = await sipp.call("100", calls=2, concurrency=2, rate=20, hold_ms=2500)
    assert run.returncode == 0, run.output  # SIPp got a 200 OK for each, no 503
    for c in run.calls:
        assert c.answered and c.variables.get("IVR_FALLBACK") == "1", c.dialplan
        assert c.first("app", FALLBACK), c.dialplan
    refused = [r for c in run.calls for r in c.refused.values()]
    assert refused and all(not r.answered and "PJSIPHangup" in r.apps for r in refused)
    print(f"\nevery engine away: {len(run.calls)} callers in a fallback "
          f"({[c.channel.rsplit('-', 1)[0] for c in run.calls]}), {len(refused)} refused by "
          f"the first node tried")
