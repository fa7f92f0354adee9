#!/usr/bin/env python3
"""Users in the database at scale (issue 19): --users users (10 000) imported through the
real engine's API, on SQLite and PostgreSQL, and the call path's lookup of a user against
the config's ``users:`` (the baseline, same run). JSON on stdout, progress on stderr.

    python bench/users_scale.py [--users 10000] [--lookups 2000] [--backends sqlite,postgresql]

Per backend, an engine process (``ivr-engine run``; its ARI URL leads nowhere: it serves its
API while it retries Asterisk, so no sandbox is needed) on a fresh database:

* ``import``: ``POST /v1/admin/users/import`` of a CSV of --users users, wall time seen by
  the client (checking, spooling, one transaction), then the same file again (every user
  replaced);
* ``lookup``: what ``calls/ring.py`` does before ringing — ``users.directory.for_call``
  (the database read under ``caller_wait``), the user's problems against the config and its
  compilation — --lookups times for random users, from this process on the same database,
  one at a time; then 50 a second while the engine imports the file once more (a writer at
  work); and, for comparison, the read the call path already made before (a user's devices,
  ``devices_read``);
* ``rss_kib``: the engine's VmRSS before the import, after it, after the second import
  (and VmHWM, its peak).

Baseline, same run: the same lookups with the users under the config's ``users:`` (no
database), and the RSS of an engine started with those 10 000 users in its config file.
PostgreSQL: IVR_TEST_POSTGRES_URL, else a throw-away cluster (tests/support/pgcluster.py:
fsync off, so its import times are optimistic).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, make_log, percentiles  # noqa: E402

sys.path.insert(0, str(REPO))
from ivr_engine.config import Config, parse_config  # noqa: E402
from ivr_engine.repositories import Store  # noqa: E402
from ivr_engine.store import Database  # noqa: E402
from ivr_engine.users import directory  # noqa: E402

log = make_log("users")
TOKEN = "bench-users-admin-token-00000000000000000"
PACE_PER_SECOND = 50  # lookups while an import runs: 50 callers a second reaching a user
BASE = (REPO / "tests" / "fixtures" / "users.yaml").read_text().replace(
    "users-admin-token-0000000000000000000000", TOKEN)


def name(i: int) -> str:
    return f"u{i:06d}"


def users_csv(n: int) -> bytes:
    rows = ["name,ringing_device,mobile_endpoint,uc_endpoint,app,mobile_loops"]
    rows += [f"{name(i)},uc+mobile,m{i:06d},d{i:06d},mobileapp,{2 + i % 3}" for i in range(n)]
    return ("\n".join(rows) + "\n").encode()


def yaml_users(n: int) -> str:
    return "users:\n" + "".join(
        f"  {name(i)}: {{ringing_device: uc+mobile, mobile_endpoint: m{i:06d}, "
        f"uc_endpoint: d{i:06d}, app: mobileapp, wakeup: {{mobile_loops: {2 + i % 3}}}}}\n"
        for i in range(n))


def rss_kib(pid: int) -> dict[str, int]:
    got = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                got[line.split(":")[0]] = int(line.split()[1])
    return {"rss": got.get("VmRSS", 0), "hwm": got.get("VmHWM", 0)}


class Engine:
    def __init__(self, config: Path, url: str, work: Path):
        self.config, self.url, self.work = config, url, work
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.api = f"http://127.0.0.1:{s.getsockname()[1]}"
        self.log = work / f"engine-{uuid.uuid4().hex[:6]}.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> "Engine":
        env = {**os.environ, "IVR_DATABASE_URL": self.url, "IVR_ARI_URL": "http://127.0.0.1:9",
               "IVR_API_LISTEN": self.api.removeprefix("http://")}
        with open(self.log, "wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ivr_engine.cli", "run", "-c", str(self.config),
                env=env, stdout=out, stderr=asyncio.subprocess.STDOUT, cwd=str(REPO))
        deadline = time.monotonic() + 90
        while "HTTP API listening" not in self.log.read_text(errors="replace"):
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise SystemExit(f"the engine did not start:\n{self.log.read_text()[-3000:]}")
            await asyncio.sleep(0.1)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    def imports(self) -> list[dict[str, float]]:
        """Each import as the engine logged it: the file received and checked (seconds),
        then its one transaction."""
        return [{"checked": float(c), "transaction": float(t)} for c, t in re.findall(
            r"users import: \d+ users checked in ([0-9.]+) s, .* in one transaction of "
            r"([0-9.]+) s", self.log.read_text())]

    def rss(self) -> dict[str, int]:
        assert self.proc is not None
        return rss_kib(self.proc.pid)


async def post_import(http: aiohttp.ClientSession, api: str, body: bytes) -> float:
    t0 = time.perf_counter()
    async with http.post(f"{api}/v1/admin/users/import", data=body, headers={
            "Authorization": f"Bearer {TOKEN}", "Content-Type": "text/csv"}) as r:
        got = await r.json()
        if r.status != 200:
            raise SystemExit(f"import refused: {r.status} {json.dumps(got)[:2000]}")
    return round(time.perf_counter() - t0, 3)


async def lookups(cfg: Config, repo: Any, names: list[str], source: str) -> list[float]:
    """What calls/ring.py does before ringing, one user at a time; ms each."""
    out = []
    async with asyncio.TaskGroup() as tg:
        for who in names:
            t0 = time.perf_counter()
            found = await directory.for_call(cfg, repo, who, channel="bench", spawn=tg.create_task)
            assert found is not None and found.source == source, (who, found)
            assert not found.problems(cfg)
            found.compile(cfg)
            out.append((time.perf_counter() - t0) * 1000)
    return out


async def device_reads(store: Store, names: list[str]) -> list[float]:
    """The read the call path already made before this feature (a user's devices, to push
    them awake), for comparison; ms each."""
    out = []
    for who in names:
        t0 = time.perf_counter()
        await store.devices.for_user(who, "mobileapp")
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def run_backend(backend: str, url: str, n: int, m: int, work: Path) -> dict[str, Any]:
    db = Database(url)
    try:
        await db.upgrade()
    finally:
        await db.close()
    config = work / f"{backend}.yaml"
    config.write_text(BASE)
    cfg = parse_config(BASE, str(config), {"IVR_DATABASE_URL": url})
    body = users_csv(n)
    rnd = random.Random(19)
    out: dict[str, Any] = {"csv_bytes": len(body)}
    async with Engine(config, url, work) as eng, aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=600)) as http:
        rss = {"before": eng.rss()}
        log(f"{backend}: importing {n} users")
        first = await post_import(http, eng.api, body)
        rss["after_import"] = eng.rss()
        again = await post_import(http, eng.api, body)
        rss["after_reimport"] = eng.rss()
        out["import_seconds"] = {"new": first, "replace_all": again}
        store = await Store.open(url)
        try:
            await lookups(cfg, store.users, [name(rnd.randrange(n)) for _ in range(50)],
                          "database")  # warm-up
            quiet = await lookups(cfg, store.users, [name(rnd.randrange(n)) for _ in range(m)],
                                  "database")
            devices = await device_reads(store, [name(rnd.randrange(n)) for _ in range(m)])
            log(f"{backend}: lookups while the engine imports again")
            importing = asyncio.create_task(post_import(http, eng.api, body))
            busy: list[float] = []
            next_at = time.monotonic()
            while not importing.done():  # PACE_PER_SECOND callers reaching a user
                busy += await lookups(cfg, store.users, [name(rnd.randrange(n))], "database")
                next_at += 1 / PACE_PER_SECOND
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            out["import_seconds"]["during_lookups"] = await importing
        finally:
            await store.close()
        rss["end"] = eng.rss()
        out["engine_import_seconds"] = eng.imports()  # the three imports
    out["lookup_ms"] = {"quiet": percentiles(quiet), "during_import": percentiles(busy),
                        "devices_read": percentiles(devices)}
    out["engine_kib"] = rss
    return out


async def yaml_baseline(n: int, m: int, work: Path) -> tuple[dict[str, Any], Config]:
    text = BASE + yaml_users(n)
    config = work / "yaml-users.yaml"
    config.write_text(text)
    t0 = time.perf_counter()
    cfg = parse_config(text, str(config), {})
    parse = time.perf_counter() - t0
    rnd = random.Random(19)
    await lookups(cfg, None, [name(rnd.randrange(n)) for _ in range(50)], "config")
    times = await lookups(cfg, None, [name(rnd.randrange(n)) for _ in range(m)], "config")
    url = f"sqlite:///{work / 'yaml.db'}"
    db = Database(url)
    try:
        await db.upgrade()
    finally:
        await db.close()
    async with Engine(config, url, work) as eng:
        rss = eng.rss()
    return {"lookup_ms": percentiles(times), "config_parse_seconds": round(parse, 2),
            "engine_kib": rss}, cfg


async def postgres_url(work: Path) -> tuple[str, Any]:
    """A database of IVR_TEST_POSTGRES_URL's server, else of a throw-away cluster."""
    import asyncpg
    from sqlalchemy.engine import make_url

    server = os.environ.get("IVR_TEST_POSTGRES_URL")
    stop = None
    if not server:
        from tests.support import pgcluster

        root = Path(tempfile.mkdtemp(prefix="ivr-pg-"))  # its owner changes: not under work
        server = pgcluster.start(root)
        stop = lambda: pgcluster.stop(root)  # noqa: E731
    db = f"ivr_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(server.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'CREATE DATABASE "{db}"')
    finally:
        await conn.close()
    return make_url(server).set(database=db).render_as_string(hide_password=False), stop


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--lookups", type=int, default=2000)
    p.add_argument("--backends", default="sqlite,postgresql")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ivr-users-bench-"))
    result: dict[str, Any] = {"users": args.users, "lookups": args.lookups,
                              "machine": {"cpus": os.cpu_count(),
                                          "python": platform.python_version(),
                                          "loadavg_start": os.getloadavg()[0]}}
    log("baseline: the same users under users: in the config file")
    result["yaml"], _ = await yaml_baseline(args.users, args.lookups, work)
    stops = []
    try:
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            if backend == "sqlite":
                url = f"sqlite:///{work / 'users.db'}"
            else:
                url, stop = await postgres_url(work)
                stops.append(stop)
            r = await run_backend(backend, url, args.users, args.lookups, work)
            base = result["yaml"]["lookup_ms"]
            r["lookup_vs_yaml"] = {q: round(r["lookup_ms"]["quiet"][q] / max(base[q], 0.1), 1)
                                   for q in ("p50", "p99")}  # YAML's 0.0 ms counted as 0.1
            dev = r["lookup_ms"]["devices_read"]
            r["lookup_vs_devices_read"] = {
                q: round(r["lookup_ms"]["quiet"][q] / max(dev[q], 0.1), 2) for q in ("p50", "p99")}
            result[backend] = r
    finally:
        for stop in stops:
            if stop is not None:
                stop()
        shutil.rmtree(work, ignore_errors=True)
    result["machine"]["loadavg_end"] = os.getloadavg()[0]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
