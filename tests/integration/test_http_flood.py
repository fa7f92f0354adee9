"""A flood of HTTP clients against a real engine process with few descriptors (issue 16).

On main, with systemd's default 1 024 descriptors, one app key from one address filled every
descriptor with event streams in 110 s: health, call plans and admin routes timed out, call
records went unwritten. Here the engine runs with RLIMIT_NOFILE 512 (128 reserved and 64 per
listener for its accept burst: 240 HTTP connections on ``listen``, 16 on the admin listener)
and the stream caps of production but
smaller; rate limits are lifted so the caps and the budget, not the buckets, do the work:

1. one key from one address tries 300 streams at once: 4 open, the rest 429;
2. one key from 40 addresses, 8 streams each: the total cap (100) holds, the rest 429;
3. idle connections from 24 addresses, 48 each: the public listener's budget fills and its
   new connections get an immediate 503, while the admin listener still answers /readyz,
   an admin route and the call record of a VoIP call placed through the real Asterisk
   during the flood;
4. the flood ends: the public listener answers again.

Through phases 1-2 /readyz, a call plan and an admin route answer from 127.0.0.1 on the
public listener; through all phases the engine never holds more than its limit, never logs
EMFILE, and writes a bounded number of log lines. Needs the sandbox (run under the lock)."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import statistics
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from ivr_engine.testing.caller import CallerPool

from .engine_proc import start_engine
from .test_api_contract import live_sandbox  # noqa: F401 - the fixture

pytestmark = pytest.mark.sandbox

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "livedata.yaml"
KEY = "shop-key-0000000000000000000000000000000"
ADMIN = "flood-admin-token-000000000000000000000000"
NOFILE = 512


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_text(admin_port: int) -> str:
    text = FIXTURE.read_text()
    start = text.index("  api:\n")
    end = text.index("  database_url:")
    api = f"""  api:
    listen: ${{IVR_API_LISTEN:-127.0.0.1:8080}}
    admin_listen: 127.0.0.1:{admin_port}
    admin_token: {ADMIN}
    rate_limit:
      per_address: {{rate: 100000, burst: 100000}}
      per_client: {{rate: 100000, burst: 100000}}
      per_app: {{rate: 100000, burst: 100000}}
    connections: {{reserve_fds: 128, per_address: 48}}
    streams: {{per_client: 4, per_user: 4, per_address: 16, total: 100}}
"""
    return text[:start] + api + text[end:]


def limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def raw_request(port: int, source: str, request: bytes, keep: list,
                      gate: asyncio.Semaphore) -> int:
    """Send ``request`` on a new connection from ``source``: the status (0: no answer); a
    200 stays open in ``keep``. ``gate`` bounds the attempts in flight (under the
    per-address connection cap: this phase is about the stream caps)."""
    async with gate:
        return await _raw_request(port, source, request, keep)


async def _raw_request(port: int, source: str, request: bytes, keep: list) -> int:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                       local_addr=(source, 0))
    except OSError:
        return 0
    try:
        writer.write(request)
        line = await asyncio.wait_for(reader.readline(), 10)
        status = int(line.split()[1]) if line else 0
    except (OSError, asyncio.TimeoutError, ValueError, IndexError):
        status = 0
    if status == 200:
        keep.append(writer)
    else:
        writer.close()
    return status


def stream_request() -> bytes:
    return (f"GET /v1/queues/livedata/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream"
            f"\r\nAuthorization: Bearer {KEY}\r\n\r\n").encode()


async def idle(port: int, source: str, keep: list) -> int:
    """A connection that sends nothing; 1 when the engine kept it, 503 when refused."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                       local_addr=(source, 0))
    except OSError:
        return 0
    try:
        line = await asyncio.wait_for(reader.readline(), 0.5)
    except asyncio.TimeoutError:
        keep.append(writer)  # still open: held by the engine
        return 1
    writer.close()
    return int(line.split()[1]) if line else 0


class Prober:
    """The honest clients: /readyz, a call plan and an admin route, every 0.25 s, each on a
    fresh connection with a 3 s deadline; results per phase."""

    def __init__(self, public: str, admin: str) -> None:
        self.public, self.admin = public, admin
        self.phase = "before"
        self.results: list[tuple[str, str, int, float]] = []  # phase, what, status, seconds

    async def one(self, http: aiohttp.ClientSession, what: str, method: str, url: str,
                  **kw) -> None:
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(3):
                async with http.request(method, url, **kw) as r:
                    await r.read()
                    status = r.status
        except (TimeoutError, aiohttp.ClientError):
            status = 0
        self.results.append((self.phase, what, status, time.monotonic() - t0))

    async def run(self, stop: asyncio.Event) -> None:
        conn = aiohttp.TCPConnector(force_close=True, limit=0)
        auth = {"Authorization": f"Bearer {ADMIN}"}
        async with aiohttp.ClientSession(connector=conn) as http:
            while not stop.is_set():
                await asyncio.gather(
                    self.one(http, "readyz", "GET", f"{self.public}/readyz"),
                    self.one(http, "plan", "POST", f"{self.public}/v1/apps/shop/calls",
                             json={"connectivity": 0.2},
                             headers={"Authorization": f"Bearer {KEY}"}),
                    self.one(http, "admin-readyz", "GET", f"{self.admin}/readyz"),
                    self.one(http, "admin-apps", "GET", f"{self.admin}/v1/admin/apps",
                             headers=auth))
                await asyncio.sleep(0.25)

    def of(self, phase: str, what: str) -> list[tuple[int, float]]:
        return [(s, t) for p, w, s, t in self.results if p == phase and w == what]


async def test_a_flood_of_streams_and_connections_leaves_the_engine_answering(
        live_sandbox, tmp_path):  # noqa: F811
    admin_port = free_port()
    config = tmp_path / "flood.yaml"
    config.write_text(config_text(admin_port))
    eng = await start_engine(live_sandbox, tmp_path, config=config,
                             extra_env={"IVR_AMI_PASSWORD": live_sandbox.ami_password},
                             preexec_fn=limit_descriptors)
    pid = eng.proc.pid
    public, admin = eng.api_url, f"http://127.0.0.1:{admin_port}"
    port = int(public.rsplit(":", 1)[1])
    held: list = []
    report: dict = {"nofile": NOFILE}
    try:
        async with aiohttp.ClientSession() as http:  # AMI synced: streams can open
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                async with http.get(f"{public}/v1/queues/livedata/status",
                                    headers={"Authorization": f"Bearer {KEY}"}) as r:
                    if r.status == 200:
                        break
                await asyncio.sleep(0.2)
            assert r.status == 200, "queues not followed"
            async with http.post(f"{public}/v1/apps/shop/calls", json={
                    "connectivity": 0.9, "target": "shop-orders"},
                    headers={"Authorization": f"Bearer {KEY}"}) as r:
                token = (await r.json())["token"]
        fds_before = open_fds(pid)
        max_fds = fds_before
        prober = Prober(public, admin)
        stop = asyncio.Event()

        async def watch_fds() -> None:
            nonlocal max_fds
            while not stop.is_set():
                max_fds = max(max_fds, open_fds(pid))
                await asyncio.sleep(0.05)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(prober.run(stop))
            tg.create_task(watch_fds())
            await asyncio.sleep(1)
            # 1. one key, one address, 300 streams at once
            prober.phase = "one-client"
            gate = asyncio.Semaphore(40)
            got = await asyncio.gather(*(raw_request(port, "127.0.0.2", stream_request(),
                                                     held, gate) for _ in range(300)))
            report["one_client"] = dict(Counter(got))
            assert Counter(got)[200] == 4 and Counter(got)[429] == 296, Counter(got)
            await asyncio.sleep(3)
            # 2. one key from 40 addresses, 8 each: the total cap
            prober.phase = "many-addresses"
            gate = asyncio.Semaphore(100)
            got = await asyncio.gather(*(raw_request(port, f"127.0.1.{i // 8 + 1}",
                                                     stream_request(), held, gate)
                                         for i in range(320)))
            report["many_addresses"] = dict(Counter(got))
            assert Counter(got)[200] == 96 and Counter(got)[429] == 224, Counter(got)
            await asyncio.sleep(3)
            # 3. idle connections: the public budget fills
            prober.phase = "budget-full"
            got = await asyncio.gather(*(idle(port, f"127.0.2.{i // 48 + 1}", held)
                                         for i in range(24 * 48)))
            report["idle"] = dict(Counter(got))
            assert Counter(got)[503] > 0 and Counter(got)[0] == 0, Counter(got)
            async with CallerPool(live_sandbox.ari_url, live_sandbox.ari_username,
                                  live_sandbox.ari_password) as pool:
                call = await pool.call(did="app-shop", caller="+33600000009", keys=["1"],
                                       timeout=30, context="from-app",
                                       variables={"__IVR_TOKEN": token})
            assert call["destination"] == {"type": "queue", "target": "livedata"}, call
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{admin}/v1/calls/{call['channel']}",
                                    headers={"Authorization": f"Bearer {ADMIN}"}) as r:
                    record = await r.json()
            assert r.status == 200 and record["app"] == "shop", record
            await asyncio.sleep(1)
            # 4. the flood ends
            for w in held:
                w.close()
            held.clear()
            prober.phase = "after"
            await asyncio.sleep(2)
            stop.set()
    finally:
        for w in held:
            w.close()
        code = await eng.stop()
    log = eng.log()
    report["fds"] = {"before": fds_before, "max": max_fds}
    report["log_lines"] = len(log.splitlines())
    report["log_bytes"] = len(log.encode())
    refusals = [line for line in log.splitlines()
                if "refused" in line or "rate limit" in line or "cannot parse" in line]
    report["refusal_log_lines"] = len(refusals)
    report["error_log_lines"] = sum(" ERROR " in line for line in log.splitlines())
    for phase in ("one-client", "many-addresses", "budget-full", "after"):
        for what in ("readyz", "plan", "admin-readyz", "admin-apps"):
            rows = prober.of(phase, what)
            report.setdefault("probes", {}).setdefault(phase, {})[what] = {
                "n": len(rows), "statuses": dict(Counter(s for s, _ in rows)),
                "p50_ms": round(statistics.median(t for _, t in rows) * 1000, 1),
                "max_ms": round(max(t for _, t in rows) * 1000, 1)}
    print("\nflood:", json.dumps(report))
    assert code == 0, log[-3000:]
    assert "Too many open files" not in log and "EMFILE" not in log
    assert max_fds < NOFILE, report
    probes = report["probes"]
    for phase in ("one-client", "many-addresses", "after"):
        for what in ("readyz", "plan", "admin-readyz", "admin-apps"):
            want = 201 if what == "plan" else 200
            assert probes[phase][what]["statuses"] == {want: probes[phase][what]["n"]}, \
                (phase, what, probes[phase][what])
    full = probes["budget-full"]
    for what in ("admin-readyz", "admin-apps"):  # the admin listener keeps its own budget
        assert full[what]["statuses"] == {200: full[what]["n"]}, (what, full[what])
    for what in ("readyz", "plan"):  # the public one refuses at once, never hangs (0: the
        # client saw the connection closed under its request before the 503)
        assert set(full[what]["statuses"]) <= {200, 201, 503, 0} and \
            full[what]["max_ms"] < 1500, (what, full[what])
    assert len(refusals) < 40, refusals[:50]
    assert report["error_log_lines"] == 0, log[-3000:]
