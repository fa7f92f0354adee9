"""Wake-up across nodes (issue 18): the phone app registers at Kamailio's app side
(127.0.0.21), not on a node. A PSTN caller (SIPp) enters Kamailio and lands on a node; that
node's engine pushes the sleeping app (a local FCM server), the woken app REGISTERs at
Kamailio with RFC 8599 pn-* parameters, Kamailio relays the registration to every engine over
evapi, and the engine of the caller's node rings the app as PJSIP/alice@kamailio: Kamailio
finds the contact (usrloc) and relays the INVITE to the app (a SIPp UAS), which answers.

Asserted: what the caller's Asterisk did (the caller and the app's leg on the node's
``kamailio`` endpoint in one bridge), what the app received (the INVITE from Kamailio's app
side, its Request-URI the registered contact verbatim), the device row the pn-* parameters
made, and — with the engines' evapi connection cut while the app registers — that the
engine rings it anyway once the connection is back (``ul.lookup`` resync)."""

from __future__ import annotations

import time

import aiohttp
import asyncpg
import pytest

from ivr_engine.testing.sipp import SippCaller
from tests.support.cluster import KAMAILIO_SIP, until
from tests.support.cluster_wakeup import (
    APP_ADDRESS,
    PN_PARAMS,
    PN_TOKEN,
    App,
    bridged,
    call_with_wake,
    readyz,
    wake_cluster,
)
from tests.support.tcp_cut import TcpCut

pytestmark = [pytest.mark.sandbox, pytest.mark.cluster]


@pytest.fixture(scope="module")
async def evapi():
    """Both engines reach Kamailio's evapi through a relay the test can cut."""
    async with TcpCut(("127.0.0.20", 8448)) as cut:
        yield cut


@pytest.fixture(scope="module")
async def cluster(cluster_topology, tmp_path_factory, postgres_server, fcm, evapi):
    async with wake_cluster(postgres_server, tmp_path_factory.mktemp("clwake"), fcm,
                            registrar={"events": evapi.address,
                                       "reconnect_max_seconds": 0.5}) as c:
        yield c


@pytest.fixture(scope="module")
async def sipp(cluster, tmp_path_factory):
    async with SippCaller(cluster.nodes["a"], tmp_path_factory.mktemp("sipp"),
                          target=KAMAILIO_SIP, nodes=list(cluster.nodes.values())) as caller:
        yield caller


async def test_a_caller_on_a_node_rings_the_app_registered_at_kamailio(cluster, sipp, fcm,
                                                                        tmp_path):
    app = App(tmp_path, cluster.nodes["a"].sip_password)
    async with app:
        t: dict[str, float] = {}
        call, finished, call_id = await call_with_wake(sipp, fcm, app.on_push(t), 2000)
        legs = await until(lambda: bridged(cluster, call_id), 5, "caller and app bridged")
        t["bridged"] = time.monotonic()
        node = call_id.split("-")[1]
        names = sorted(c["name"] for c in legs)
        assert names[0].startswith("PJSIP/carrier-") and names[1].startswith(
            "PJSIP/kamailio-"), names  # the app's leg went out through Kamailio
        assert all(c["state"] == "Up" for c in legs)
        run = await finished
        assert run.returncode == 0, run.output
        assert call.channel == call_id and call.keys == ["1"]
        assert await app.finished(10) == 0  # the app answered, the caller's BYE reached it
        wire = app.messages()
        # the INVITE came from Kamailio's app side to the contact registered, verbatim
        assert f"INVITE sip:alice@{APP_ADDRESS}:{app.port};{PN_PARAMS} SIP/2.0" in wire, wire
        assert "Record-Route: <sip:127.0.0.21;lr" in wire, wire
        engine = cluster.engines[node]
        assert call_id in engine.log() and "registered, dialled in" in engine.log()
        other = cluster.engines["b" if node == "a" else "a"]
        assert call_id not in other.log()
        print(f"\ncall on node {node}: push -> REGISTER 200 "
              f"{(t['registered'] - t['push']) * 1000:.0f} ms, -> bridged "
              f"{(t['bridged'] - t['registered']) * 1000:.0f} ms (polled)")

    async def device():  # both engines got the event; the pn-* params made alice's device
        conn = await asyncpg.connect(cluster.database_url)
        try:
            return await conn.fetch("SELECT platform, push_token, source FROM devices "
                                    "WHERE \"user\" = 'alice'")
        finally:
            await conn.close()
    rows = await until(lambda: _rows_with(device, PN_TOKEN), 5, "alice's rfc8599 device")
    assert [tuple(r) for r in rows] == [("android", PN_TOKEN, "rfc8599")]


async def _rows_with(fetch, token):
    rows = await fetch()
    return rows if rows and rows[0]["push_token"] == token else None


async def test_app_registered_while_the_events_were_cut_is_still_rung(cluster, sipp, fcm,
                                                                      evapi, tmp_path):
    app = App(tmp_path, cluster.nodes["a"].sip_password)
    async with app:
        async def cut_then_wake(call_id: str) -> None:
            engine = cluster.engines[call_id.split("-")[1]]
            evapi.cut()  # Kamailio stays up; the engines lose its events
            assert await app.register() == 200  # ... while the app registers

            async def says_why():
                async with aiohttp.ClientSession() as http, http.get(
                        f"{engine.api_url}/readyz") as r:
                    return r.status == 503 and "registrar: Kamailio events" in await r.text()
            await until(says_why, 2, "/readyz names the lost registrar connection")
            evapi.restore()

        accepted = evapi.accepted
        call, finished, call_id = await call_with_wake(sipp, fcm, cut_then_wake,
                                                        2500)
        legs = await until(lambda: bridged(cluster, call_id), 5, "caller and app bridged")
        assert sorted(c["name"].split("-")[0] for c in legs) == ["PJSIP/carrier",
                                                                 "PJSIP/kamailio"]
        engine = cluster.engines[call_id.split("-")[1]]
        assert "resync: alice registered while the events were away: 1 wait(s) rung" \
            in engine.log(), engine.log()[-3000:]

        async def both_back():  # both engines connected again
            if evapi.accepted < accepted + 2:
                return False
            for e in cluster.engines.values():
                if "registrar" in (await readyz(e))[1]:
                    return False
            return True
        await until(both_back, 3, "both engines' evapi connections back")
        run = await finished
        assert run.returncode == 0, run.output
        assert await app.finished(10) == 0
