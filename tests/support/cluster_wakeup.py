"""Wake-up through Kamailio, the parts the cluster tests share (test_cluster_wakeup.py,
test_cluster_restarts.py): the cluster's engines on ``tests/fixtures/wakeup.yaml`` with
alice's app logged in and its push device registered (:func:`wake_cluster`), the phone app
that REGISTERs at Kamailio's app side and answers one call (:class:`App`), a caller whose
wake push runs a step of the test (:func:`call_with_wake`), and the caller's bridge on its
node (:func:`bridged`)."""

from __future__ import annotations

import asyncio
import base64
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp

from ivr_engine.testing.sipp import free_udp_ports
from tests.support.cluster import KAMAILIO_APPS, KAMAILIO_RPC, Cluster, cluster_with_engines
from tests.support.identity import open_session
from tests.support.sip_register import register

CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "wakeup.yaml"
APP_KEY = "mobileapp-key-00000000000000000000000000"  # fixtures/wakeup.yaml
APP_ADDRESS = "127.0.0.30"  # the phone app
PUSH_TOKEN = "fcm-alice-" + "a" * 30
PN_TOKEN = "rfc8599-alice-" + "k" * 30
PN_PARAMS = f"pn-provider=fcm;pn-prid={PN_TOKEN};pn-param=ivr-test"


@asynccontextmanager
async def wake_cluster(postgres_server: str, workdir: Path, fcm: Any, source: Path = CONFIG,
                       registrar: dict | None = None) -> AsyncIterator[Cluster]:
    """The cluster's engines on ``source`` (wakeup.yaml or a config made from it), pushing to
    the local FCM server ``fcm``; alice's app logged in on engine a with its push token."""
    async with cluster_with_engines(
            postgres_server, workdir, source,
            extra_env={"IVR_TEST_FCM_SA": str(fcm.account.path), "IVR_TEST_FCM_URL": fcm.url},
            registrar=registrar) as c:
        async with aiohttp.ClientSession() as http:
            session = await open_session(http, c.engines["a"].api_url, "mobileapp", APP_KEY,
                                         "alice")
            async with http.post(f"{c.engines['a'].api_url}/v1/devices",
                                 json={"platform": "android", "push_token": PUSH_TOKEN},
                                 headers={"Authorization": f"Bearer {session}"}) as r:
                assert r.status == 201, await r.text()
        yield c


class App:
    """The phone app: a SIPp UAS on 127.0.0.30 that answers one call (its REGISTERs are
    tests/support/sip_register.py's, with the pn-* parameters baresip cannot send), digest
    password ``password`` (the sandbox's SIP password)."""

    def __init__(self, workdir: Path, password: str):
        self.workdir = workdir
        self.password = password
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

    async def register(self) -> int:
        return await register("alice", self.password, PN_PARAMS, server=KAMAILIO_APPS,
                              local=APP_ADDRESS, contact_at=f"{APP_ADDRESS}:{self.port}")

    def on_push(self, times: dict[str, float]) -> Callable[[str], Awaitable[None]]:
        """The woken app: registers at Kamailio when the wake push arrives (200 asserted),
        ``times["push"]`` and ``times["registered"]`` noted (:func:`call_with_wake`)."""
        async def wake(call_id: str) -> None:
            times["push"] = time.monotonic()
            assert await self.register() == 200
            times["registered"] = time.monotonic()
        return wake

    def messages(self) -> str:
        return "".join(p.read_text(errors="replace")
                       for p in self.workdir.glob("*_messages.log"))

    async def finished(self, timeout: float) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout)


async def readyz(engine) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(f"{engine.api_url}/readyz") as r:
        return r.status, await r.text()


async def ul_lookup(aor: str) -> dict:
    """Kamailio's ``ul.lookup location <aor>`` answer (``error`` when it has none)."""
    body = {"jsonrpc": "2.0", "method": "ul.lookup", "params": ["location", aor], "id": 1}
    async with aiohttp.ClientSession() as http, http.post(KAMAILIO_RPC, json=body) as r:
        return await r.json(content_type=None)


async def ari_get(node, path: str):
    auth = base64.b64encode(f"{node.ari_username}:{node.ari_password}".encode()).decode()
    async with aiohttp.ClientSession() as http, http.get(
            f"{node.ari_url}/ari{path}", headers={"Authorization": f"Basic {auth}"}) as r:
        return await r.json() if r.status == 200 else None


async def bridged(cluster: Cluster, channel: str) -> list[dict] | None:
    """The caller's bridge on its node, once it holds the caller and the app's leg."""
    node = cluster.nodes[channel.split("-")[1]]
    bridge = await ari_get(node, f"/bridges/{channel}-bridge")
    if not bridge or len(bridge["channels"]) < 2:
        return None
    return [await ari_get(node, f"/channels/{c}") for c in bridge["channels"]]


async def call_with_wake(sipp, fcm, on_push: Callable[[str], Awaitable[None]], tail_ms: int):
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
