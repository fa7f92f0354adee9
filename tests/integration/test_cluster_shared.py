"""API calls for a call another engine holds (issue 18), on the two-node cluster
(scripts/cluster): engine a drives a caller on node a; the transfer asked at engine b's API is
forwarded to engine a (found through ``call_records.engine`` and the ``engines`` table), which
moves the caller over ARI — asserted on what node a's Asterisk did (the caller in the queue).
Engine b's list of live calls includes engine a's. With engine a killed, engine b answers
503 ``reason: owner-down`` at once, and its list names engine a as unreachable.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from ivr_engine.testing.rtp_pcap import keys_at
from ivr_engine.testing.sipp import SippCaller
from tests.support.cluster import APP_NUMBER, app_plan, cluster_with_engines, until

from .conftest import next_event, start_client, stop_client
from .engine_proc import local_call

pytestmark = pytest.mark.sandbox

APPS = Path(__file__).resolve().parents[1] / "fixtures" / "apps.yaml"
TOKEN = "cluster-admin-token-00000000000000000000"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
MAIN_LINE = "+15550001000"
NODE_B_SIP = "127.0.0.3:5060"  # node b itself, not Kamailio: the call must land there


@pytest.fixture(scope="module")
async def shared(cluster_topology, tmp_path_factory, postgres_server):
    """The two-node cluster with one engine per node on apps.yaml (the apps, their tokens)
    and one admin token for both (the cluster's engines come from one file)."""
    async with cluster_with_engines(postgres_server, tmp_path_factory.mktemp("cluster-shared"),
                                    source=APPS, extra_env={"IVR_ADMIN_TOKEN": TOKEN}) as c:
        yield c


async def _one(read) -> bool:
    return await read() == 1


async def _request(method: str, url: str, body: dict | None = None):
    t0 = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http, \
            http.request(method, url, json=body, headers=ADMIN) as r:
        return r.status, json.loads(await r.text()), r.headers, time.monotonic() - t0


async def test_a_token_issued_at_engine_a_is_honoured_once_on_node_b(shared, tmp_path):
    """The call plan comes from engine a's API; the phone's call lands on node b (SIPp sends
    it there), whose engine consumes the token in the shared database: in the app's menu
    once, and the same token again is an outside caller."""
    plan = await app_plan(shared.engines["a"])
    digits = keys_at(plan["token"] + "#", 400, 220, duration_ms=100)
    async with SippCaller(shared.nodes["b"], tmp_path, target=NODE_B_SIP) as sipp:
        first = await sipp.call(APP_NUMBER, digits, hold_ms=4000)
        again = await sipp.call(APP_NUMBER, digits, hold_ms=4000)
    for run in (first, again):
        assert run.returncode == 0, run.output
        assert run.calls[0].channel.startswith("node-b-"), run.calls[0].channel
    assert first.calls[0].variables.get("IVR_APP") == "customer", first.calls[0].variables
    assert first.calls[0].path == ["cust"], first.calls[0].path
    assert again.calls[0].variables.get("IVR_DESTINATION") == \
        "message-then-hangup:outside-blocked", again.calls[0].variables
    b_log, a_log = shared.engines["b"].log(), shared.engines["a"].log()
    assert first.calls[0].channel in b_log and first.calls[0].channel not in a_log


async def test_a_transfer_asked_at_engine_b_moves_engine_as_caller(shared):
    # last in the module: it kills engine a
    a_eng, b_eng = shared.engines["a"], shared.engines["b"]
    ari = await start_client(shared.nodes["a"])
    try:
        caller, chan = await local_call(ari, MAIN_LINE, "xfer-shared")  # on node a
        await next_event(ari.events, "PlaybackStarted", timeout=10,
                         predicate=lambda e: e.channel_id == chan)  # engine a's menu

        async def recorded():  # engine a's record reached the database
            status, doc, headers, _ = await _request("GET", f"{b_eng.api_url}/v1/calls/{chan}")
            return (status, doc, headers) if status == 200 else None
        status, doc, headers = await until(recorded, 5, "the call's record seen at engine b")
        assert (doc["node"], doc["engine"]) == ("node-a", "node-a"), doc
        assert headers["X-IVR-Engine"] == "node-a"  # answered by its engine, forwarded
        status, doc, _, _ = await _request("GET", f"{b_eng.api_url}/v1/admin/calls")
        mine = [c for c in doc["calls"] if c["id"] == chan]  # engine a's, listed at engine b
        assert (status, doc["unreachable"], len(mine)) == (200, [], 1), doc
        assert (mine[0]["engine"], mine[0]["node"], mine[0]["phase"]) == \
            ("node-a", "node-a", "ivr"), mine
        status, doc, headers, took = await _request(
            "POST", f"{b_eng.api_url}/v1/calls/{chan}/transfer", {"to": "queue:operator"})
        print(f"\ntransfer at engine b, forwarded to engine a: {status} in {took * 1000:.0f} ms")
        assert (status, doc.get("via")) == (202, "ivr"), doc
        assert headers["X-IVR-Engine"] == "node-a"
        # node a's Asterisk put the caller in the queue
        ev = await next_event(ari.events, "ChannelDialplan", timeout=10,
                              predicate=lambda e: e.channel_id == chan
                              and e.dialplan_app == "Queue")
        assert ev.dialplan_app_data.startswith("operator"), ev.dialplan_app_data

        async def snapshot():  # engine a follows node a's AMI and shares the queue
            conn = await asyncpg.connect(shared.database_url)
            try:
                return await conn.fetchval(
                    "SELECT callers FROM queue_snapshots WHERE node = 'node-a' "
                    "AND queue = 'operator' AND updated_at > now() - interval '15 seconds'")
            finally:
                await conn.close()
        assert await until(lambda: _one(snapshot), 10, "node a's queue in queue_snapshots")
        assert f"forwarded to engine 'node-a' at {a_eng.api_url}: 202" in b_eng.log()
        assert chan not in b_eng.log().replace(f"/v1/calls/{chan}", "")  # b never drove it

        # engine a dies: engine b cannot move its call, and says so at once
        await a_eng.stop(signal.SIGKILL)
        status, doc, headers, took = await _request(
            "POST", f"{b_eng.api_url}/v1/calls/{chan}/transfer", {"to": "queue:operator"})
        print(f"owner down: {status} in {took * 1000:.0f} ms: {doc.get('detail')}")
        assert (status, doc["reason"]) == (503, "owner-down"), doc
        assert doc["detail"].startswith(f"the engine 'node-a' holding the call did not answer "
                                        f"at {a_eng.api_url}"), doc
        assert headers["Retry-After"] == "5"
        assert took < 3.0, took
        status, doc, _, _ = await _request("GET", f"{b_eng.api_url}/v1/admin/calls")
        assert (status, doc["unreachable"]) == (200, ["node-a"]), doc
        await ari.hangup(caller)
    finally:
        await stop_client(ari)
