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

import asyncio
import base64
import time
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from ivr_engine.testing.sipp import SippCaller, free_udp_ports
from tests.support.cluster import KAMAILIO_APPS, KAMAILIO_SIP, cluster_with_engines, until
from tests.support.identity import open_session
from tests.support.sip_register import register
from tests.support.tcp_cut import TcpCut

pytestmark = [pytest.mark.sandbox, pytest.mark.cluster]

CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "wakeup.yaml"
APP_KEY = "mobileapp-key-00000000000000000000000000"  # fixtures/wakeup.yaml
APP_ADDRESS = "127.0.0.30"  # the phone app
PUSH_TOKEN = "fcm-alice-" + "a" * 30
PN_TOKEN = "rfc8599-alice-" + "k" * 30
PN_PARAMS = f"pn-provider=fcm;pn-prid={PN_TOKEN};pn-param=ivr-test"


@pytest.fixture(scope="module")
async def evapi():
    """Both engines reach Kamailio's evapi through a relay the test can cut."""
    async with TcpCut(("127.0.0.20", 8448)) as cut:
        yield cut


@pytest.fixture(scope="module")
async def cluster(cluster_topology, tmp_path_factory, postgres_server, fcm, evapi):
    async with cluster_with_engines(
            postgres_server, tmp_path_factory.mktemp("clwake"), CONFIG,
            extra_env={"IVR_TEST_FCM_SA": str(fcm.account.path), "IVR_TEST_FCM_URL": fcm.url},
            registrar={"events": evapi.address, "reconnect_max_seconds": 0.5}) as c:
        async with aiohttp.ClientSession() as http:  # alice's app logs in on engine a
            session = await open_session(http, c.engines["a"].api_url, "mobileapp", APP_KEY,
                                         "alice")
            async with http.post(f"{c.engines['a'].api_url}/v1/devices",
                                 json={"platform": "android", "push_token": PUSH_TOKEN},
                                 headers={"Authorization": f"Bearer {session}"}) as r:
                assert r.status == 201, await r.text()
        yield c


@pytest.fixture(scope="module")
async def sipp(cluster, tmp_path_factory):
    async with SippCaller(cluster.nodes["a"], tmp_path_factory.mktemp("sipp"),
                          target=KAMAILIO_SIP, nodes=list(cluster.nodes.values())) as caller:
        yield caller


class App:
    """The phone app: a SIPp UAS on 127.0.0.30 that answers one call (its REGISTERs are
    tests/support/sip_register.py's, with the pn-* parameters baresip cannot send)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_udp_ports(APP_ADDRESS)
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> "App":
        self.proc = await asyncio.create_subprocess_exec(
            "sipp", "-sn", "uas", "-i", APP_ADDRESS, "-p", str(self.port), "-mi", APP_ADDRESS,
            "-mp", str(free_udp_ports(APP_ADDRESS, 4)), "-m", "1", "-nostdin", "-trace_msg",
            "-timeout", "20s", stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, cwd=self.workdir)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
        await register("alice", self.password, "", expires=0, server=KAMAILIO_APPS,
                       local=APP_ADDRESS)

    password = ""

    async def register(self) -> int:
        return await register("alice", self.password, PN_PARAMS, server=KAMAILIO_APPS,
                              local=APP_ADDRESS, contact_at=f"{APP_ADDRESS}:{self.port}")

    def messages(self) -> str:
        return "".join(p.read_text(errors="replace")
                       for p in self.workdir.glob("*_messages.log"))

    async def finished(self, timeout: float) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout)


async def _readyz(engine) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{engine.api_url}/readyz") as r:
        return await r.text()


async def _ari(node, path: str):
    auth = base64.b64encode(f"{node.ari_username}:{node.ari_password}".encode()).decode()
    async with aiohttp.ClientSession() as http, http.get(
            f"{node.ari_url}/ari{path}", headers={"Authorization": f"Basic {auth}"}) as r:
        return await r.json() if r.status == 200 else None


async def _bridged(cluster, channel: str) -> list[dict] | None:
    """The caller's bridge on its node, once it holds the caller and the app's leg."""
    node = cluster.nodes[channel.split("-")[1]]
    bridge = await _ari(node, f"/bridges/{channel}-bridge")
    if not bridge or len(bridge["channels"]) < 2:
        return None
    return [await _ari(node, f"/channels/{c}") for c in bridge["channels"]]


async def _call_with_wake(cluster, sipp, fcm, on_push, tail_ms: int):
    """A caller pressing 1 (user:alice) through Kamailio; ``on_push(call_id)`` runs when the
    wake push arrives. Returns (the caller's CallRecord, the running SIPp, the push's call)."""
    pushed: asyncio.Future = asyncio.get_running_loop().create_future()

    def on_message(msg) -> None:
        if msg.data.get("type") == "incoming_call" and not pushed.done():
            pushed.set_result(msg.data["call_id"])

    fcm.on_message = on_message
    calls, placing = sipp.launch("200", "1", start_ms=400, tail_ms=tail_ms)
    finished = asyncio.ensure_future(placing)
    try:
        call_id = await asyncio.wait_for(pushed, 10)
        await on_push(call_id)
        return calls[0], finished, call_id
    except BaseException:
        finished.cancel()
        await asyncio.gather(finished, return_exceptions=True)
        raise
    finally:
        fcm.on_message = None


async def test_a_caller_on_a_node_rings_the_app_registered_at_kamailio(cluster, sipp, fcm,
                                                                        tmp_path):
    app = App(tmp_path)
    App.password = cluster.nodes["a"].sip_password
    async with app:
        t: dict[str, float] = {}

        async def wake(call_id: str) -> None:  # the woken app registers at Kamailio
            t["push"] = time.monotonic()
            assert await app.register() == 200
            t["registered"] = time.monotonic()

        call, finished, call_id = await _call_with_wake(cluster, sipp, fcm, wake, 2000)
        legs = await until(lambda: _bridged(cluster, call_id), 5, "caller and app bridged")
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
    app = App(tmp_path)
    App.password = cluster.nodes["a"].sip_password
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
        call, finished, call_id = await _call_with_wake(cluster, sipp, fcm, cut_then_wake,
                                                        2500)
        legs = await until(lambda: _bridged(cluster, call_id), 5, "caller and app bridged")
        assert sorted(c["name"].split("-")[0] for c in legs) == ["PJSIP/carrier",
                                                                 "PJSIP/kamailio"]
        engine = cluster.engines[call_id.split("-")[1]]
        assert "resync: alice registered while the events were away: 1 wait(s) rung" \
            in engine.log(), engine.log()[-3000:]

        async def both_back():  # both engines connected again
            if evapi.accepted < accepted + 2:
                return False
            for e in cluster.engines.values():
                if "registrar" in await _readyz(e):
                    return False
            return True
        await until(both_back, 3, "both engines' evapi connections back")
        run = await finished
        assert run.returncode == 0, run.output
        assert await app.finished(10) == 0
