"""One engine holding both nodes (``engine.nodes: [node-a, node-b]``) behind Kamailio: the
calls Kamailio spreads over the two nodes are all driven by that engine, each on its own
node. Not the reference set-up (one engine per node is, docs/cluster.md), but it runs on the
same code and must hold (issue 18)."""

from __future__ import annotations

import re

import pytest

from ivr_engine.testing.sipp import SippCaller
from tests.support.cluster import KAMAILIO_SIP, cluster_with_engines

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
async def cluster(cluster_topology, tmp_path_factory, postgres_server):
    async with cluster_with_engines(postgres_server, tmp_path_factory.mktemp("one-engine"),
                                    one_engine=True) as c:
        yield c


async def test_one_engine_drives_the_calls_of_both_nodes(cluster, tmp_path):
    engine = cluster.engines["ab"]
    async with SippCaller(cluster.nodes["a"], tmp_path, target=KAMAILIO_SIP,
                          nodes=list(cluster.nodes.values())) as sipp:
        run = await sipp.call("100", "1 1 1", calls=2, concurrency=2, rate=20)
    assert run.returncode == 0, run.output
    nodes = sorted(re.match(r"node-([ab])-", c.channel).group(1) for c in run.calls)
    assert nodes == ["a", "b"], [c.channel for c in run.calls]
    for call in run.calls:
        assert call.keys == ["1", "1", "1"], call.keys
        assert call.path == ["top", "a", "b"]
        assert call.destination == {"type": "queue", "target": "sales"}, call.dialplan
        assert call.channel in engine.log()
