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

import aiohttp
import pytest
import yaml


from .conftest import next_event, start_client, stop_client
from .engine_proc import local_call, spawn_engine
from tests.support.cluster import CLUSTER, NODES, Cluster, node_sandbox, run, until


async def _ready(engine) -> bool:
    try:
        async with aiohttp.ClientSession() as http, \
                http.get(f"{engine.api_url}/readyz") as r:
            return r.status == 200
    except aiohttp.ClientError:
        return False

pytestmark = pytest.mark.sandbox

TOKEN = "cluster-admin-token-00000000000000000000"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
async def shared(tmp_path_factory, postgres_server):
    import os
    import subprocess

    from ..conftest import _admin, _with_database
    from .conftest import SANDBOX_SCRIPT
    from .engine_proc import upgrade_database

    t0 = time.monotonic()
    was_up = subprocess.run([str(CLUSTER), "status"], capture_output=True).returncode == 0
    run(CLUSTER, "up", timeout=120)
    nodes = {n: node_sandbox(n) for n in NODES}
    name = f"ivr_cluster_shared_{os.getpid()}"
    await _admin(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                 f'CREATE DATABASE "{name}"')
    url = _with_database(postgres_server, name)
    work = tmp_path_factory.mktemp("cluster-shared")
    c = Cluster(nodes, {}, url, work)
    try:
        await upgrade_database(url)
        for n in NODES:
            path = c.engine_config(n)
            doc = yaml.safe_load(path.read_text())
            doc["engine"]["api"]["admin_token"] = TOKEN
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            c.engines[n] = await spawn_engine(nodes[n], work / f"engine-{n}", path,
                                              extra_env={"IVR_DATABASE_URL": url})
        for n, e in c.engines.items():
            await until(lambda: _ready(e), 30, f"engine {n} ready", step=0.1)
        print(f"\ncluster with two engines ready in {time.monotonic() - t0:.1f} s")
        yield c
    finally:
        for e in c.engines.values():
            await e.stop()
        if was_up:
            run(SANDBOX_SCRIPT, "--node", "a", "up")
        else:
            run(CLUSTER, "down", timeout=120)
        await _admin(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _request(method: str, url: str, body: dict | None = None):
    t0 = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http, \
            http.request(method, url, json=body, headers=ADMIN) as r:
        return r.status, json.loads(await r.text()), r.headers, time.monotonic() - t0


async def test_a_transfer_asked_at_engine_b_moves_engine_as_caller(shared):
    a_eng, b_eng = shared.engines["a"], shared.engines["b"]
    ari = await start_client(shared.nodes["a"])
    try:
        caller, chan = await local_call(ari, "100", "xfer-shared")  # on node a
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
            "POST", f"{b_eng.api_url}/v1/calls/{chan}/transfer", {"to": "queue:support"})
        print(f"\ntransfer at engine b, forwarded to engine a: {status} in {took * 1000:.0f} ms")
        assert (status, doc.get("via")) == (202, "ivr"), doc
        assert headers["X-IVR-Engine"] == "node-a"
        # node a's Asterisk put the caller in the queue
        ev = await next_event(ari.events, "ChannelDialplan", timeout=10,
                              predicate=lambda e: e.channel_id == chan
                              and e.dialplan_app == "Queue")
        assert ev.dialplan_app_data.startswith("support"), ev.dialplan_app_data
        assert f"forwarded to engine 'node-a' at {a_eng.api_url}: 202" in b_eng.log()
        assert chan not in b_eng.log().replace(f"/v1/calls/{chan}", "")  # b never drove it

        # engine a dies: engine b cannot move its call, and says so at once
        await a_eng.stop(signal.SIGKILL)
        status, doc, headers, took = await _request(
            "POST", f"{b_eng.api_url}/v1/calls/{chan}/transfer", {"to": "queue:sales"})
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
