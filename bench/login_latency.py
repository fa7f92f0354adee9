"""Login-with-assertion latency at a steady rate, against a real engine process.

    python bench/login_latency.py                    # 100/s, 20 s per kind, both backends
    python bench/login_latency.py --rate 50 --seconds 10 --backends sqlite

For each backend (SQLite, PostgreSQL: a throw-away cluster unless IVR_TEST_POSTGRES_URL is
set) the engine (``ivr-engine run``, against the sandbox Asterisk, its own ARI application
``ivr-lbench``) serves two kinds of request, paced open-loop at ``--rate`` per second from one
client on loopback:

* **login**: ``POST /v1/apps/shop/sessions`` with the app key and a fresh HS256 assertion
  signed by the app's backend secret (each for another user, so no login ends another's
  session): the engine verifies the JWT (algorithm pinned, issuer, audience, lifetime),
  records its ``jti`` (single use), ends the user's open session, opens the new one and
  answers its token;
* **plan** (the baseline): ``POST /v1/apps/shop/calls`` with the app key only — an
  anonymous call plan: a token drawn and stored.

Rounds alternate plan and login (``--rounds`` of ``--seconds / rounds`` each), so both see the
same machine. Latency is measured from the moment a request was due (open loop: a late
client does not hide a slow server), in ms. The door's rate limits are lifted in the
engine's config: one client at 100/s is the load here, not abuse. Assertions are signed
before the run. Prints one JSON object; needs root (the sandbox Asterisk) and the live lock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402

from bench.common import make_log, percentiles, proc_cpu, sandbox, sandbox_env, stop_engine, \
    tail_file  # noqa: E402
from tests.support.identity import LOGIN_DEVICE, assertion  # noqa: E402

log = make_log("login-bench")
FIXTURE = REPO / "tests" / "fixtures" / "livedata.yaml"
KEY = "shop-key-0000000000000000000000000000000"
ARI_APP = "ivr-lbench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_text() -> str:
    text = FIXTURE.read_text()
    text = text.replace("  ari:\n", f"  ari:\n    app: {ARI_APP}\n", 1)
    start, end = text.index("  api:\n"), text.index("  database_url:")
    api = """  api:
    listen: ${IVR_API_LISTEN}
    rate_limit:
      per_address: {rate: 100000, burst: 100000}
      per_client: {rate: 100000, burst: 100000}
      per_app: {rate: 100000, burst: 100000}
"""
    return text[:start] + api + text[end:]


async def start_engine(work: Path, db_url: str, env0: dict[str, str], tag: str
                       ) -> tuple[subprocess.Popen, str]:
    config = work / "login-bench.yaml"
    config.write_text(config_text())
    port = free_port()
    env = {**os.environ, **env0, "IVR_DATABASE_URL": db_url,
           "IVR_API_LISTEN": f"127.0.0.1:{port}"}
    cli = [sys.executable, "-m", "ivr_engine.cli"]
    subprocess.run([*cli, "db", "upgrade", "-c", str(config)], env=env, cwd=REPO, check=True,
                   capture_output=True, timeout=120)
    logf = open(work / f"engine-{tag}.log", "wb")
    proc = subprocess.Popen([*cli, "run", "-c", str(config)], env=env, cwd=REPO,
                            stdout=logf, stderr=subprocess.STDOUT)
    logf.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"engine exited: {tail_file(work / f'engine-{tag}.log')}")
            try:
                async with http.get(f"{url}/readyz") as r:
                    if r.status == 200:
                        return proc, url
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    stop_engine(proc)
    raise SystemExit(f"engine not ready in 30 s: {tail_file(work / f'engine-{tag}.log')}")


async def paced(http: aiohttp.ClientSession, url: str, rate: float, seconds: float,
                bodies: list[dict]) -> tuple[list[float], dict[str, int]]:
    """POST each body at its due time (open loop); latencies in ms from the due time."""
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    n = int(rate * seconds)

    async def one(due: float, body: dict) -> None:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        try:
            async with http.post(url, json=body, headers={"Authorization": f"Bearer {KEY}"}
                                 ) as r:
                await r.read()
                status = str(r.status)
        except aiohttp.ClientError as exc:
            status = type(exc).__name__
        if status == "201":
            latencies.append((time.monotonic() - due) * 1000)
        statuses[status] = statuses.get(status, 0) + 1

    t0 = time.monotonic() + 0.2
    async with asyncio.TaskGroup() as tg:
        for i in range(n):
            tg.create_task(one(t0 + i / rate, bodies[i]))
    return latencies, statuses


async def one_backend(db_url: str, env0: dict[str, str], work: Path, a: argparse.Namespace,
                      tag: str) -> dict:
    proc, url = await start_engine(work, db_url, env0, tag)
    per_round = a.seconds / a.rounds
    n = int(a.rate * per_round)
    out: dict = {"login": {"latencies": [], "statuses": {}, "cpu": 0.0},
                 "plan": {"latencies": [], "statuses": {}, "cpu": 0.0}}
    try:
        conn = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(connector=conn) as http:
            for _ in range(20):  # warm-up: both kinds
                await paced(http, f"{url}/v1/apps/shop/calls", 50, 0.1,
                            [{"connectivity": 0.2}] * 5)
            for r in range(a.rounds):
                for kind in (("plan", "login") if r % 2 == 0 else ("login", "plan")):
                    if kind == "plan":
                        bodies = [{"connectivity": 0.2}] * n
                        target = f"{url}/v1/apps/shop/calls"
                    else:  # signed beforehand: the client's signing is not timed
                        bodies = [{**LOGIN_DEVICE, "device_id": f"d-{tag}-{r}-{i}",
                                   "assertion": assertion("shop", f"u-{tag}-{r}-{i}",
                                                          lifetime=300)} for i in range(n)]
                        target = f"{url}/v1/apps/shop/sessions"
                    cpu0 = proc_cpu(proc.pid) or 0.0
                    lat, st = await paced(http, target, a.rate, per_round, bodies)
                    out[kind]["cpu"] += (proc_cpu(proc.pid) or 0.0) - cpu0
                    out[kind]["latencies"] += lat
                    for k, v in st.items():
                        out[kind]["statuses"][k] = out[kind]["statuses"].get(k, 0) + v
    finally:
        code = stop_engine(proc, log)
    res: dict = {}
    for kind in ("login", "plan"):
        res[kind] = {"latency_ms": percentiles(out[kind]["latencies"]),
                     "statuses": out[kind]["statuses"],
                     "engine_cpu_ms_per_request": round(out[kind]["cpu"] * 1000
                                                        / (n * a.rounds), 2)}
    errors = [line for line in (work / f"engine-{tag}.log").read_text(
        errors="replace").splitlines() if " ERROR " in line]
    res["engine_errors"] = {"lines": len(errors), "first": errors[:3]}
    res["engine_exit"] = code
    return res


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=100.0, help="requests per second")
    ap.add_argument("--seconds", type=float, default=20.0, help="per kind")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--backends", default="sqlite,postgresql")
    a = ap.parse_args()
    sandbox("up", timeout=900)
    env0 = sandbox_env()
    work = Path(tempfile.mkdtemp(prefix="login-bench-"))
    work.chmod(0o755)  # the throw-away PostgreSQL cluster runs as its own user
    out: dict = {"benchmark": "login_latency", "rate_per_second": a.rate,
                 "seconds_per_kind": a.seconds, "rounds": a.rounds, "cpus": os.cpu_count(),
                 "load_avg_at_start": os.getloadavg()[0]}
    pg_root = None
    try:
        for backend in a.backends.split(","):
            if backend == "sqlite":
                url = f"sqlite:///{work}/login.db"
            else:
                from tests.conftest import _admin, _with_database
                from tests.support import pgcluster

                server = os.environ.get("IVR_TEST_POSTGRES_URL")
                if not server:
                    pg_root = work / "pg"
                    server = pgcluster.start(pg_root)
                await _admin(server, 'DROP DATABASE IF EXISTS "login_bench" WITH (FORCE)',
                             'CREATE DATABASE "login_bench"')
                url = _with_database(server, "login_bench")
            log(f"{backend}: {a.rate:g}/s, {a.seconds:g} s per kind")
            out[backend] = await one_backend(url, env0, work, a, backend)
    finally:
        if pg_root is not None:
            from tests.support import pgcluster
            pgcluster.stop(pg_root)
    out["work_dir"] = str(work)  # the engines' logs
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
