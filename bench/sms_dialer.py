"""SMS dialer benchmark: `ivr-engine sms dialer` (a real process) against the local Infobip
server (another process, tests/support/sms_providers.py), on SQLite and on PostgreSQL.

For each backend: N rows (10 000 by default) queued in one campaign at 0 ms spacing, then the
dialer started; measured: messages/s (first claim → last outcome, from the spool's own
timestamps), the dialer's peak memory (VmHWM) with N and with 10 × N rows (flat: the dialer
holds one batch per pipeline, never the spool), and the latency of single sends issued while
the bulk backlog drains (spooled → the provider's answer recorded). Every message is checked
at the provider: none missing, none twice. Prints one JSON object.

    python bench/sms_dialer.py                 # 10 000 and 100 000 rows, both backends
    python bench/sms_dialer.py --rows 2000 --big 0 --backends sqlite   # quick check
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import func, select  # noqa: E402

from bench.common import make_log, percentiles  # noqa: E402
from ivr_engine.sms.models import SENT, SINGLE_LANE, SpoolRow  # noqa: E402
from ivr_engine.sms.spool import spool_row  # noqa: E402
from ivr_engine.repositories import Store  # noqa: E402
from ivr_engine.store import Database  # noqa: E402

log = make_log("sms-bench")
CONFIG = REPO / "tests" / "fixtures" / "sms.yaml"
SINGLES = 10


def rows(n: int, start: int, now: dt.datetime) -> list[dict]:
    return [spool_row(destination=f"+5989{i:07d}", message=f"Bulk message number {i}",
                      region="UY", encoding="auto", now=now, lane="bulk", campaign="promo",
                      position=i) for i in range(start, start + n)]


def hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


async def stats(url: str) -> dict:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.get(f"{url}/_stats") as r:
        return await r.json()


async def one_run(db_url: str, provider_url: str, n: int, singles: bool) -> dict:
    db = Database(db_url)
    await db.upgrade()
    await db.close()
    store = await Store.open(db_url)
    before = (await stats(provider_url))["accepted"]
    now = dt.datetime.now(dt.timezone.utc)
    for start in range(0, n, 5000):
        await store.sms.enqueue(rows(min(5000, n - start), start, now))
    env = {**os.environ, "IVR_DATABASE_URL": db_url, "SMS_PROVIDER_URL": provider_url,
           "SMS_SPACING_MS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "ivr_engine.cli", "sms", "dialer", "-c",
                             str(CONFIG), "--dialer", "bulk", "--worker", "bench"],
                            env=env, cwd=REPO, stderr=subprocess.DEVNULL)
    latencies: list[float] = []
    peak = 0
    try:
        single_ids: list[int] = []
        while True:
            peak = max(peak, hwm_kib(proc.pid))
            async with store.db.sessions() as s:
                sent = (await s.execute(select(func.count()).where(
                    SpoolRow.state == SENT, SpoolRow.lane == "bulk"))).scalar_one()
            if singles and len(single_ids) < SINGLES and sent >= n * (0.1 + 0.06 * len(single_ids)):
                row = spool_row(destination="+59899635199", message="urgent", region="UY",
                                encoding="auto", now=dt.datetime.now(dt.timezone.utc),
                                lane=SINGLE_LANE, provider="infobip")
                single_ids.append(await store.sms.enqueue_one(row))
            if sent >= n:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"the dialer exited with {proc.returncode}")
            await asyncio.sleep(0.5)  # the figures come from the spool's timestamps
        await asyncio.sleep(1.0)  # the last single sends
        peak = max(peak, hwm_kib(proc.pid))
        async with store.db.sessions() as s:
            first, last = (await s.execute(select(func.min(SpoolRow.claimed_at),
                                                  func.max(SpoolRow.done_at))
                                           .where(SpoolRow.lane == "bulk"))).one()
            for rid in single_ids:
                r = await s.get(SpoolRow, rid)
                if r.done_at is not None:
                    latencies.append((r.done_at - r.created_at).total_seconds() * 1000)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        await store.close()
    after = await stats(provider_url)
    elapsed = (last - first).total_seconds()
    return {"rows": n, "seconds": round(elapsed, 2), "messages_per_second": round(n / elapsed),
            "dialer_peak_rss_mib": round(peak / 1024, 1),
            "accepted_at_provider": after["accepted"] - before,
            "single_sends": len(single_ids) if singles else 0,
            "single_latency_ms": percentiles(latencies) if singles else None,
            "duplicates_at_provider": after["duplicates"]}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--big", type=int, default=100_000, help="the memory run (0: skip)")
    ap.add_argument("--backends", default="sqlite,postgresql")
    a = ap.parse_args()
    prov = subprocess.Popen([sys.executable, "-m", "tests.support.sms_providers", "--port", "0"],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
    provider_url = json.loads(prov.stdout.readline())["url"]
    work = Path(tempfile.mkdtemp(prefix="sms-bench-"))
    work.chmod(0o755)  # the throw-away PostgreSQL cluster runs as its own user
    out: dict = {"benchmark": "sms_dialer", "spacing_ms": 0, "batch": 50, "pipelines": 4,
                 "provider": "local Infobip (aiohttp, separate process)", "cpus": os.cpu_count(),
                 "load_avg_at_start": os.getloadavg()[0]}
    pg_root = None
    try:
        for backend in a.backends.split(","):
            if backend == "sqlite":
                def url(tag: str) -> str:
                    return f"sqlite:///{work}/{tag}.db"
            else:
                from tests.conftest import _admin, _with_database
                from tests.support import pgcluster

                server = os.environ.get("IVR_TEST_POSTGRES_URL")
                if not server:
                    pg_root = work / "pg"
                    server = pgcluster.start(pg_root)

                def url(tag: str, server=server) -> str:
                    return _with_database(server, f"sms_bench_{tag}")
                for tag in ("small", "big"):
                    await _admin(server, f'DROP DATABASE IF EXISTS "sms_bench_{tag}" WITH (FORCE)',
                                 f'CREATE DATABASE "sms_bench_{tag}"')
            log(f"{backend}: {a.rows} rows")
            res = {"small": await one_run(url("small"), provider_url, a.rows, singles=True)}
            if a.big:
                log(f"{backend}: {a.big} rows (memory)")
                res["big"] = await one_run(url("big"), provider_url, a.big, singles=False)
            out[backend] = res
    finally:
        prov.terminate()
        prov.wait(10)
        if pg_root is not None:
            from tests.support import pgcluster
            pgcluster.stop(pg_root)
    target = 1000
    out["target_messages_per_second"] = target
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    asyncio.run(main())
