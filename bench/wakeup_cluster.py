"""``bench/wakeup_latency.py --cluster``: the app's REGISTER -> the INVITE that rings it, on
the wire, through Kamailio (the cluster) vs one node (the single sandbox), alternated call by
call in one run. Prints ONE JSON object.

* **cluster**: the app (a UDP socket on 127.0.0.30) REGISTERs at Kamailio's app side
  (127.0.0.21:5060); the engine's own ``KamailioRegistrations`` (connected to Kamailio's
  evapi) posts ``ContactAvailable`` to the waiting "call", which originates
  ``PJSIP/alice@kamailio`` on node a over ARI (HTTP); node a sends the INVITE to Kamailio,
  whose ``lookup("location")`` relays it to the app.
* **single**: the app (a UDP socket on 127.0.0.1) REGISTERs at the sandbox Asterisk
  (127.0.0.1:5060); the engine's own ``ContactWatcher`` (ARI ``ContactStatusChange``) posts
  ``ContactAvailable``; the waiter originates ``PJSIP/alice`` there.

The waiter is the same in both modes (an ARI originate, as the engine's leg creation is);
the engine's push, hold and call state are not in it: this is the registration path only.
On the wire (raw AF_PACKET capture on lo, kernel timestamps, UDP 5060): t_register = the
authenticated REGISTER, t_invite = the first INVITE to the app's port after it. The app
answers 486 (nothing is bridged) and un-REGISTERs before the next call.
"""

from __future__ import annotations

import asyncio
import json
import platform
import socket
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import make_log, percentiles, sandbox, sandbox_env  # noqa: E402

from ivr_engine.ari import AriClient  # noqa: E402
from ivr_engine.config.model_registrar import RegistrarSettings  # noqa: E402
from ivr_engine.wakeup.kamailio import KamailioRegistrations  # noqa: E402
from ivr_engine.wakeup.watcher import ContactWatcher  # noqa: E402
from tests.support.sip_register import register  # noqa: E402

log = make_log("wbench-cluster")
USER = "alice"
CLUSTER = REPO / "scripts" / "cluster"
MODES = {"cluster": ("127.0.0.30", ("127.0.0.21", 5060), "PJSIP/alice@kamailio"),
         "single": ("127.0.0.1", ("127.0.0.1", 5060), "PJSIP/alice")}


class AppSocket(asyncio.DatagramProtocol):
    """The woken app's SIP socket: answers each INVITE 486 (and 200 to anything else)."""

    def connection_made(self, transport) -> None:  # noqa: ANN001
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:  # noqa: ANN001
        text = data.decode("latin-1")
        first = text.split("\r\n", 1)[0]
        if first.startswith("SIP/2.0") or first.startswith("ACK "):
            return
        keep = [line for line in text.split("\r\n")
                if line.lower().startswith(("via:", "from:", "to:", "call-id:", "cseq:"))]
        code = "486 Busy Here" if first.startswith("INVITE ") else "200 OK"
        keep = [f"{line};tag=app1" if line.lower().startswith("to:") and "tag=" not in line
                else line for line in keep]
        reply = "\r\n".join([f"SIP/2.0 {code}", *keep, "Content-Length: 0", "", ""])
        self.transport.sendto(reply.encode(), addr)


async def bench(calls: int, warmup: int, samples: bool) -> dict[str, Any]:
    import subprocess

    import wakeup_latency as wl

    subprocess.run([str(CLUSTER), "up"], check=True, capture_output=True, timeout=120)
    env = sandbox_env(("IVR_ARI_URL", "IVR_ARI_USERNAME", "IVR_ARI_PASSWORD",
                       "IVR_SIP_PASSWORD"))
    node_env = dict(line.split("=", 1) for line in (
        p.split(" ", 1)[1] for p in subprocess.run(
            ["scripts/asterisk-sandbox", "--node", "a", "env"], capture_output=True,
            text=True, cwd=REPO, check=True).stdout.splitlines() if p.startswith("export ")))
    node_env = {k: v.strip("'\"") for k, v in node_env.items()}
    single = AriClient(env["IVR_ARI_URL"], env["IVR_ARI_USERNAME"], env["IVR_ARI_PASSWORD"],
                       "ivr-wbench-cl-reg")
    node_a = AriClient(node_env["IVR_ARI_URL"], node_env["IVR_ARI_USERNAME"],
                       node_env["IVR_ARI_PASSWORD"], "ivr-wbench-cl")
    kam = KamailioRegistrations(RegistrarSettings(
        kind="kamailio", events="127.0.0.20:8448", rpc="http://127.0.0.20:5081/RPC"),
        None, lambda: None)
    watcher = ContactWatcher(single, None, lambda: None)
    sources = {"cluster": (kam, node_a), "single": (watcher, single)}
    cap = wl.WireCapture()
    cap.start()
    loop = asyncio.get_running_loop()
    results: dict[str, list[float]] = {"cluster": [], "single": []}
    after_200: dict[str, list[float]] = {"cluster": [], "single": []}
    failures: dict[str, int] = {"cluster": 0, "single": 0}
    await single.open()
    await node_a.open()
    async with kam, asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(kam.run()), tg.create_task(watcher.run())]
        try:
            await asyncio.wait_for(kam.ready.wait(), 10)
            await asyncio.wait_for(watcher.ready.wait(), 10)
            order = [m for i in range(calls + warmup)
                     for m in (("cluster", "single") if i % 2 == 0 else ("single", "cluster"))]
            for n, mode in enumerate(order):
                host, server, dial = MODES[mode]
                source, ari = sources[mode]
                transport, _ = await loop.create_datagram_endpoint(
                    AppSocket, local_addr=(host, 0), family=socket.AF_INET)
                port = transport.get_extra_info("sockname")[1]
                rung = asyncio.Event()
                originate: list[asyncio.Task] = []

                def post(ev, ari=ari, dial=dial) -> None:  # noqa: ANN001 - ContactAvailable
                    if not rung.is_set():
                        rung.set()
                        originate.append(tg.create_task(ari.request(
                            "POST", "/channels", params={"endpoint": dial, "extension": "s",
                                                         "context": "kamailio-none",
                                                         "timeout": "5"})))
                source.watch(USER, post)
                since = time.time_ns()
                try:
                    assert await register(USER, env["IVR_SIP_PASSWORD"], "", server=server,
                                          local=host, contact_at=f"{host}:{port}") == 200
                    await asyncio.wait_for(rung.wait(), 5)
                    await asyncio.gather(*originate, return_exceptions=True)
                    deadline = time.monotonic() + 3
                    t_reg = t_200 = t_inv = None
                    while time.monotonic() < deadline and t_inv is None:
                        await asyncio.sleep(0.02)
                        pk = [p for p in list(cap.packets) if p.ts_ns >= since]
                        regs = [p for p in pk if p.method == "REGISTER" and p.auth
                                and p.to_user == USER and p.expires != 0]
                        if regs:
                            t_reg = regs[0].ts_ns
                            oks = [p for p in pk if p.status == 200 and p.cseq_method ==
                                   "REGISTER" and p.call_id == regs[0].call_id]
                            t_200 = oks[0].ts_ns if oks else None
                            invs = [p for p in pk if p.method == "INVITE" and p.dport == port
                                    and p.ts_ns > t_reg]
                            t_inv = invs[0].ts_ns if invs else None
                    if t_inv is None or t_reg is None:
                        raise TimeoutError("no INVITE to the app on the wire")
                    if n >= 2 * warmup:
                        results[mode].append((t_inv - t_reg) / 1e6)
                        if t_200 is not None:
                            after_200[mode].append((t_inv - t_200) / 1e6)
                except (TimeoutError, AssertionError) as exc:
                    failures[mode] += 1
                    log(f"{mode} call {n}: {exc!r}")
                finally:
                    source.unwatch(USER, post)
                    await register(USER, env["IVR_SIP_PASSWORD"], "", expires=0,
                                   server=server, local=host)
                    await asyncio.sleep(0.1)  # the 486 and its ACK
                    transport.close()
        finally:
            for t in tasks:
                t.cancel()
    await single.close()
    await node_a.close()
    cap.stop()
    out: dict[str, Any] = {
        "benchmark": "wakeup_latency --cluster",
        "what": "authenticated REGISTER -> INVITE to the app, on the wire (ms)",
        "host": platform.node(), "calls_per_mode": calls, "warmup_pairs": warmup,
        "target": {"p50_ms": 20, "p99_ms": 100},
        "modes": {m: {"register_to_invite_ms": percentiles(results[m]),
                      "register_200_to_invite_ms": percentiles(after_200[m]),
                      "failures": failures[m]} for m in results},
    }
    if results["cluster"] and results["single"]:
        out["ratio_p50_cluster_vs_single"] = round(
            percentiles(results["cluster"])["p50"] / percentiles(results["single"])["p50"], 2)
    if samples:
        out["samples"] = results
    return out


def run(calls: int, warmup: int, samples: bool) -> int:
    log("scripts/asterisk-sandbox up")
    sandbox("up")
    result = asyncio.run(bench(calls, warmup, samples))
    print(json.dumps(result, indent=2))
    return 0 if not any(m["failures"] for m in result["modes"].values()) else 1
