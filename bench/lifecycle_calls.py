"""``bench/lifecycle_fanout.py --with-calls``: the real engine process runs the fan-out (the
admin API's publication) while scripted callers walk a menu through the sandbox Asterisk;
each key's latency (key sent → next prompt started, as the caller sees it) is compared with
the same calls before the publication. Needs the sandbox Asterisk and the ARI application
``ivr-engine``: run it under the sandbox lock (``flock /tmp/ivr-sandbox.lock``)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from types import SimpleNamespace

import aiohttp

from common import percentiles, sandbox_env  # noqa: E402

DID = "+15550009900"
KEYS = ["1", "*"] * 4  # top → sub → back to top …: a prompt after every key

CONFIG = """
engine:
  ari:
    url: ${{IVR_ARI_URL}}
    username: ${{IVR_ARI_USERNAME}}
    password: ${{IVR_ARI_PASSWORD}}
  api:
    listen: ${{IVR_API_LISTEN}}
    admin_token: bench-admin-00000000000000000000000000
  database_url: ${{IVR_DATABASE_URL}}
lifecycle: {{notice_concurrency: {concurrency}, notice_rate_per_second: {rate}}}
apps:
  field:
    ios_id: {bundle}
    android_id: {bundle}
    push:
      apns: {{key_file: "{s[key_file]}", key_id: {s[key_id]}, team_id: {s[team_id]},
              url: "{s[apns_url]}", ca_file: "{s[ca_file]}"}}
      fcm: {{service_account_file: "{s[service_account]}", url: "{s[fcm_url]}"}}
    fallback: {{number: "+17144505698", threshold: 0.5}}
messages:
  m-top: {{en: digits/1}}
  m-sub: {{en: digits/2}}
menu_defaults: {{timeout: 3}}
menus:
  top:
    prompt: m-top
    options: {{"1": menu:sub}}
  sub:
    prompt: m-sub
    options: {{"1": queue:support}}
access_points:
  - type: phone-number
    numbers: ["{did}"]
    menu: top
  - type: mobile-app
    app: field
    menu: top
  - {type: mobile-app, app: field, menu: top, surface: in-app}   # active: both structures
"""


async def _callers(pool, stop: asyncio.Event, out: list[tuple[float, float]], n: int) -> None:
    """``n`` callers calling again and again until ``stop``; (key sent at, latency ms)."""
    async def one(i: int) -> None:
        while not stop.is_set():
            call = await pool.place(DID, keys=KEYS, caller=f"+1555000{i:04d}", timeout=60)
            sent = None
            for t, _, kind, _ in call.record.timeline:
                if kind == "send":
                    sent = t
                elif kind == "prompt" and sent is not None:
                    out.append((sent, (t - sent) * 1000))
                    sent = None

    async with asyncio.TaskGroup() as tg:
        for i in range(n):
            tg.create_task(one(i))


def _stats(pairs: list[tuple[float, float]], start: float, end: float) -> dict:
    return percentiles([ms for t, ms in pairs if start <= t <= end])


async def run_with_calls(servers: dict, bundle: str, concurrency: int, fill, platform: str,
                         n: int, callers: int, baseline_s: float, tmp: Path,
                         rate: float | None = None) -> dict:
    from ivr_engine.testing.caller import CallerPool
    from tests.integration.engine_proc import start_engine, upgrade_database

    env = sandbox_env()
    sandbox = SimpleNamespace(ari_url=env["IVR_ARI_URL"], ari_username=env["IVR_ARI_USERNAME"],
                              ari_password=env["IVR_ARI_PASSWORD"])
    work = tmp / "engine"
    work.mkdir(exist_ok=True)
    url = f"sqlite:///{work / 'ivr.db'}"
    cfg_path = tmp / "engine.yaml"
    cfg_path.write_text(CONFIG.format(s=servers, bundle=bundle, concurrency=concurrency,
                                      did=DID, rate=rate or "null"))
    await upgrade_database(url)
    from ivr_engine.repositories import Store

    store = await Store.open(url)
    try:
        await fill(store, platform, n)
    finally:
        await store.close()
    eng = await start_engine(sandbox, work, config=cfg_path, extra_env={"IVR_DATABASE_URL": url})
    pairs: list[tuple[float, float]] = []
    try:
        async with CallerPool(sandbox.ari_url, sandbox.ari_username,
                              sandbox.ari_password) as pool, aiohttp.ClientSession() as http:
            stop = asyncio.Event()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(_callers(pool, stop, pairs, callers))
                t0 = time.monotonic()
                await asyncio.sleep(baseline_s)
                t1 = time.monotonic()
                async with http.post(
                        f"{eng.api_url}/v1/admin/apps/field/releases",
                        headers={"Authorization": "Bearer bench-admin-00000000000000000000000000"},
                        json={"platform": platform, "version": "2.17.100",
                              "kind": "recommended", "store_url": "https://apps.example/f"},
                        timeout=aiohttp.ClientTimeout(total=120)) as r:
                    published = await r.json()
                t2 = time.monotonic()
                stop.set()
    finally:
        await eng.stop()
    if "notified" not in published:
        raise SystemExit(f"publication failed: {json.dumps(published)[:500]}")
    return {"platform": platform, "devices": n, "callers": callers, "rate_limit": rate,
            "fanout_seconds": published["fanout_seconds"], "notified": published["notified"],
            "publication_http_s": round(t2 - t1, 3),
            "key_to_prompt_ms_before": _stats(pairs, t0, t1),
            "key_to_prompt_ms_during": _stats(pairs, t1, t2)}
