#!/usr/bin/env python3
"""Release notice fan-out benchmark: one publication notifying 10 000 devices.

    python bench/lifecycle_fanout.py [--devices 10000] [--platforms android,ios]
                                     [--concurrency 200] [--database-url URL]

Prints ONE JSON object on stdout (progress goes to stderr). Offline: no Asterisk; loopback
only. The push providers are the local servers the wake-up tests use (tests/support/
push_servers.py: FCM HTTP v1 + its OAuth2 endpoint over HTTP, APNs over HTTP/2 + TLS with
ES256 provider JWTs), run in a **child process** so that their work does not count as the
engine's.

For each platform: a fresh database (SQLite in a temp dir unless --database-url) with
``--devices`` devices of one app whose last reported version is older than the release, plus
5 % at or above it (not notified); then ``Releases.publish`` — the code behind
``POST /v1/admin/apps/<app>/releases`` — runs with the engine's real PushService and Store.
While it runs, a task that sleeps 5 ms at a time records how late it wakes up: the worst
lateness is the longest the event loop could not serve anything else (a call's DTMF, the
HTTP API). Reported: time to the last send, sends per second, the publication's whole time
(candidate query, sends, recording), the worst stall and its percentiles, the results by
delivery outcome and the notices recorded in the database.

Targets (issue 9): 10 000 devices in <= 10 s, no loop stall > 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import platform as platform_mod
import signal
import sys
import tempfile
import time
from pathlib import Path

from common import make_log, percentiles  # noqa: E402

log = make_log("fanout")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BUNDLE = "com.bench.field"
TICK = 0.005


# --------------------------------------------------------------------------- child: servers

async def serve(workdir: Path) -> None:
    """Run the fake providers until SIGTERM; their addresses go to workdir/servers.json."""
    from hypercorn.config import Config as HypercornConfig

    from tests.support import keys
    from tests.support.push_servers import FakeApns, FakeFcm

    # hypercorn closes an HTTP/2 connection after 1 000 requests by default; APNs keeps a
    # provider connection open for as many notifications as it is sent
    HypercornConfig.keep_alive_max_requests = 10_000_000
    pki = keys.make_pki(workdir / "pki")
    auth_key = keys.make_apns_auth_key(workdir)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with FakeApns(pki, bundle_id=BUNDLE, auth_key=auth_key) as apns, FakeFcm() as fcm:
        fcm.make_service_account(workdir)
        info = {"apns_url": apns.url, "ca_file": str(pki.ca_file), "key_file":
                str(auth_key.path), "key_id": auth_key.key_id, "team_id": auth_key.team_id,
                "fcm_url": fcm.url, "service_account": str(fcm.account.path)}
        (workdir / "servers.json.tmp").write_text(json.dumps(info))
        os.replace(workdir / "servers.json.tmp", workdir / "servers.json")
        await stop.wait()
        (workdir / "received.json").write_text(json.dumps(
            {"apns": len(apns.notifications), "fcm": len(fcm.messages),
             "apns_alert": sum(1 for n in apns.notifications if n.push_type == "alert")}))


# --------------------------------------------------------------------------- parent

def config_text(s: dict, url: str, concurrency: int, batch: int = 200,
                rate: float | None = None) -> str:
    return f"""
engine:
  ari: {{password: unused}}
  database_url: "{url}"
lifecycle: {{notice_concurrency: {concurrency}, notice_batch: {batch},
             notice_rate_per_second: {rate}}}
apps:
  field:
    ios_id: {BUNDLE}
    android_id: {BUNDLE}
    push:
      apns: {{key_file: "{s['key_file']}", key_id: {s['key_id']}, team_id: {s['team_id']},
              url: "{s['apns_url']}", ca_file: "{s['ca_file']}"}}
      fcm: {{service_account_file: "{s['service_account']}", url: "{s['fcm_url']}"}}
"""


async def fill_devices(store, platform: str, n: int) -> None:
    from sqlalchemy import insert

    from ivr_engine.store.models import Device

    now = dt.datetime.now(dt.timezone.utc)
    up_to_date = n // 20
    rows = [{"user": f"user{i:05d}", "app": "field", "platform": platform,
             "push_token": (f"{i:064x}" if platform == "ios" else f"fcm-{i:08d}-" + "x" * 40),
             "app_version": "2.17.60" if i < n else "2.17.100", "source": "api",
             "os_version": "", "model": "", "updated_at": now}
            for i in range(n + up_to_date)]
    async with store.db.sessions() as s, s.begin():
        for k in range(0, len(rows), 2000):
            await s.execute(insert(Device), rows[k:k + 2000])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (the providers' child)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_platform(servers: dict, platform: str, n: int, concurrency: int,
                       db_url: str | None, tmp: Path, child_pid: int,
                       rate: float | None = None) -> dict:
    from ivr_engine.config import parse_config
    from ivr_engine.lifecycle.schemas import ReleaseRequest
    from ivr_engine.lifecycle.service import Lifecycle
    from ivr_engine.push import PushService
    from ivr_engine.repositories import Store
    from ivr_engine.store import Database

    url = db_url or f"sqlite:///{tmp / f'fanout-{platform}.db'}"
    db = Database(url)
    await db.upgrade()
    await db.close()
    cfg = parse_config(config_text(servers, url, concurrency, rate=rate or "null"),
                       "bench.yaml", {})
    store = await Store.open(url)
    push = PushService(lambda: cfg, store)
    try:
        await fill_devices(store, platform, n)
        life = Lifecycle(lambda: cfg, store, push)
        # warm the sender (FCM OAuth exchange, APNs TLS + HTTP/2 connection) off the clock
        from ivr_engine.lifecycle.repo import NoticeTarget
        warm = NoticeTarget(0, "warm", "field", platform, "0",
                            "ab" * 32 if platform == "ios" else "fcm-warm")
        await push.notify(warm, "warm", "up", {"type": "warm"}, app="field")

        lateness: list[float] = []
        worst_at = [0.0]
        gc_pauses: list[float] = []
        done = asyncio.Event()

        def on_gc(phase: str, info: dict) -> None:
            if phase == "start":
                on_gc.t = time.perf_counter()  # type: ignore[attr-defined]
            elif (ms := (time.perf_counter() - on_gc.t) * 1000) > 10:  # type: ignore[attr-defined]
                gc_pauses.append(round(ms, 1))

        async def watch() -> None:
            while not done.is_set():
                t = time.perf_counter()
                await asyncio.sleep(TICK)
                late = (time.perf_counter() - t - TICK) * 1000
                if not lateness or late > max(lateness):
                    worst_at[0] = t - started
                lateness.append(late)

        req = ReleaseRequest(platform=platform, version="2.17.100", kind="recommended",
                             store_url="https://apps.example/field",
                             messages={"en": "A new version is available"})
        gc.collect()  # the set-up's garbage (10 000 device rows built here) is not the engine's
        cpu0, child0 = time.process_time(), cpu_seconds(child_pid)
        started = time.perf_counter()
        gc.callbacks.append(on_gc)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(watch())
                out = await life.releases.publish("field", req)
                total = time.perf_counter() - started
                done.set()
            cpu, child_cpu = time.process_time() - cpu0, cpu_seconds(child_pid) - child0
        finally:
            gc.callbacks.remove(on_gc)
        recorded = await store.lifecycle.notice_counts(out.release.id)
        sends = out.notified.sent + out.notified.provider_error + out.notified.token_removed
        return {
            "devices_older": n, "devices_up_to_date": out.skipped_up_to_date,
            "results": out.notified.model_dump(), "recorded": recorded,
            "time_to_last_send_s": out.fanout_seconds,
            "sends_per_second": round(sends / out.fanout_seconds, 1) if out.fanout_seconds else None,
            "publish_total_s": round(total, 3),
            "engine_cpu_s": round(cpu, 2), "engine_cpu_ms_per_send": round(cpu * 1000 / n, 3),
            "providers_cpu_s": round(child_cpu, 2),
            "loop_stall_ms": {**percentiles(lateness), "worst": round(max(lateness), 1),
                              "worst_at_s": round(worst_at[0], 3)},
            "gc_pauses_over_10ms": gc_pauses,
            "target_met": out.fanout_seconds <= 10 and max(lateness) <= 50 and sends == n,
        }
    finally:
        await push.close()
        await store.close()


async def main(args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="ivr-fanout-"))
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", str(tmp), cwd=str(REPO),
        stdout=asyncio.subprocess.DEVNULL, stderr=open(tmp / "servers.log", "wb"))
    try:
        for _ in range(300):
            if (tmp / "servers.json").exists() or child.returncode is not None:
                break
            await asyncio.sleep(0.05)
        if not (tmp / "servers.json").exists():
            raise SystemExit(f"the push servers did not start: {(tmp / 'servers.log').read_text()}")
        servers = json.loads((tmp / "servers.json").read_text())
        results: dict = {}
        if args.with_calls:
            from lifecycle_calls import run_with_calls

            for platform in args.platforms.split(","):
                log(f"{platform}: {args.devices} devices, the engine process, "
                    f"{args.callers} callers")
                results[f"{platform}_with_calls"] = await run_with_calls(
                    servers, BUNDLE, args.concurrency, fill_devices, platform, args.devices,
                    args.callers, args.baseline_seconds, tmp, args.rate)
                log(json.dumps(results[f"{platform}_with_calls"]))
        for platform in ([] if args.with_calls else args.platforms.split(",")):
            log(f"{platform}: {args.devices} devices")
            results[platform] = await run_platform(servers, platform, args.devices,
                                                   args.concurrency, args.database_url, tmp,
                                                   child.pid, args.rate)
            log(f"{platform}: {json.dumps(results[platform])}")
    finally:
        if child.returncode is None:
            child.send_signal(signal.SIGTERM)
            await asyncio.wait_for(child.wait(), 30)
    received = json.loads((tmp / "received.json").read_text()) \
        if (tmp / "received.json").exists() else {}
    return {"benchmark": "lifecycle_fanout", "devices": args.devices,
            "concurrency": args.concurrency, "rate_limit": args.rate,
            "database": "postgresql" if args.database_url else "sqlite",
            "python": platform_mod.python_version(), "cpus": os.cpu_count(),
            "providers_received": received, "platforms": results,
            "targets": {"time_to_last_send_s": 10, "worst_stall_ms": 50}}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, default=10_000)
    p.add_argument("--platforms", default="android,ios")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--database-url", default=None)
    p.add_argument("--with-calls", action="store_true", help="the real engine process (and "
                   "the sandbox Asterisk, under the sandbox lock) publishes while scripted "
                   "callers walk a menu: key-to-prompt latency before and during")
    p.add_argument("--callers", type=int, default=2)
    p.add_argument("--rate", type=float, default=1200.0, help="lifecycle."
                   "notice_rate_per_second (the engine's default, 1200; 0: no limit)")
    p.add_argument("--baseline-seconds", type=float, default=10.0)
    p.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.serve:
        asyncio.run(serve(Path(a.serve)))
    else:
        print(json.dumps(asyncio.run(main(a))))
