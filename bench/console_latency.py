#!/usr/bin/env python3
"""Console benchmark: page load times, and how soon a new call shows on the calls page while
50 SIPp callers walk the tree.

    flock -o /tmp/ivr-live.lock python bench/console_latency.py [--loads 20] [--background 50]
        [--calls 20]

Prints ONE JSON object on stdout (progress on stderr). Needs the sandbox Asterisk
(``scripts/asterisk-sandbox up``), SIPp, Chromium and chromedriver (``scripts/install
--test``); talks to 127.0.0.1 only.

- **Page loads**: the real engine on the example config (``tests/support/console_engine.py``:
  the console on its admin listener); one headless Chromium, logged in, loads each page
  ``--loads`` times; a load is the Navigation Timing of the document (start to the load
  event: HTML, CSS, scripts, the tree's SVG). The Trees page's first load after start draws
  the graph (Graphviz), later loads come from the cache: both are reported.
- **A new call on the calls page**: ``--background`` SIPp callers on the carrier trunk enter
  the main line and stay in its menu (``#`` every 4 s: the menu repeats, the engine works),
  then ``--calls`` new callers arrive one by one. For each, from the moment its channel
  entered Stasis (the trunk observer's ChannelDialplan event): when its row appears on the
  open calls page (server-sent events, the browser polled every 20 ms), and — the baseline,
  same run, same moment — when ``GET /v1/admin/calls`` (polled every 20 ms) first lists it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import make_log, percentiles, sandbox  # noqa: E402

from ivr_engine.testing.sipp import SippCaller  # noqa: E402
from tests.integration.conftest import Sandbox, _parse_env  # noqa: E402
from tests.integration.engine_proc import start_engine  # noqa: E402
from ivr_engine.testing.browser import chrome  # noqa: E402
from tests.support.console_engine import (  # noqa: E402
    ADMIN_TOKEN,
    console_config,
    console_env,
    free_port,
)

log = make_log("console")
PAGES = ("trees", "calls", "queues", "sms", "apps")
NAV = ("var n = performance.getEntriesByType('navigation')[0];"
       "return n ? n.loadEventEnd - n.startTime : null;")


def the_sandbox() -> Sandbox:
    sandbox("up", timeout=1800)
    v = _parse_env(sandbox("env"))
    return Sandbox(v["IVR_ARI_URL"], v["IVR_ARI_USERNAME"], v["IVR_ARI_PASSWORD"],
                   v.get("IVR_AMI_HOST", "127.0.0.1"), int(v.get("IVR_AMI_PORT", "5038")),
                   v.get("IVR_AMI_USERNAME", "ivr-engine"), v.get("IVR_AMI_PASSWORD", ""),
                   v.get("IVR_SIP_PASSWORD", ""))


def page_loads(driver: Any, base: str, loads: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in PAGES:
        times = []
        for _ in range(loads):
            driver.get(f"{base}/console/{name}")
            times.append(driver.execute_script(NAV))
        out[name] = {"first_ms": round(times[0], 1), **percentiles(times)}
        log(f"{name}: p50 {out[name]['p50']} ms (first {times[0]:.0f} ms)")
    return out


async def until(check, timeout: float, step: float = 0.02) -> float | None:
    """The monotonic time ``check()`` first held, polled every ``step`` (None: never)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return time.monotonic()
        await asyncio.sleep(step)
    return None


async def new_calls(driver: Any, eng: Any, sb: Sandbox, work: Path, background: int,
                    calls: int) -> dict[str, Any]:
    driver.get(f"{eng.admin_url}/console/calls")
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    row = "return !!document.querySelector(\"tr[data-caller='\" + arguments[0] + \"']\");"
    console_ms, api_ms = [], []
    missed = {"no_stasis_event": 0, "not_in_api": 0, "not_on_page": 0}
    async with SippCaller(sb, work) as sipp, aiohttp.ClientSession() as http, \
            asyncio.TaskGroup() as tg:
        crowd, finished = sipp.launch("+15551230000", "#" * 12, calls=background,
                                      concurrency=background, rate=25, start_ms=2000,
                                      gap_ms=4000, timeout=120)
        tg.create_task(finished)

        async def listed() -> int:
            async with http.get(f"{eng.admin_url}/v1/admin/calls", headers=headers) as r:
                return (await r.json())["count"]
        await until(lambda: _at_least(listed, background), 30, 0.2)
        log(f"{background} callers in the tree; {calls} new calls, one at a time")
        for _ in range(calls):
            [call], done = sipp.launch("+15551230000", "", hold_ms=2500)
            tg.create_task(done)

            async def in_api() -> bool:
                async with http.get(f"{eng.admin_url}/v1/admin/calls", headers=headers) as r:
                    doc = await r.json()
                return any(c["caller"] == call.caller for c in doc["calls"])

            async def on_page() -> bool:
                return await asyncio.to_thread(driver.execute_script, row, call.caller)

            api_seen, page_seen = await asyncio.gather(until(in_api, 10), until(on_page, 10))
            entered = call.first("app", "Stasis")
            for why, value in (("no_stasis_event", entered), ("not_in_api", api_seen),
                               ("not_on_page", page_seen)):
                missed[why] += value is None
            if entered is None or api_seen is None or page_seen is None:
                log(f"{call.caller}: missed (stasis {entered}, api {api_seen}, page "
                    f"{page_seen}; timeline {call.timeline[:6]})")
                continue
            api_ms.append((api_seen - entered) * 1000)
            console_ms.append((page_seen - entered) * 1000)
            await asyncio.sleep(0.5)
    return {"background_callers": background, "calls": calls, "missed": missed,
            "console_page_ms": percentiles(console_ms), "admin_api_ms": percentiles(api_ms),
            "console_minus_api_p50_ms": round(statistics.median(console_ms)
                                              - statistics.median(api_ms), 1)
            if console_ms else None}


async def _at_least(count, n: int) -> bool:
    return await count() >= n


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    sb = the_sandbox()
    work = Path(tempfile.mkdtemp(prefix="console-bench-"))
    admin_port = free_port()
    eng = await start_engine(sb, work, console_config(work),
                             extra_env=console_env(sb, admin_port))
    eng.admin_url = f"http://127.0.0.1:{admin_port}"
    driver = await asyncio.to_thread(chrome)
    try:
        def login() -> None:
            driver.get(f"{eng.admin_url}/console/login")
            driver.find_element("id", "token").send_keys(ADMIN_TOKEN)
            driver.find_element("css selector", "form button[type=submit]").click()
        await asyncio.to_thread(login)
        loads = await asyncio.to_thread(page_loads, driver, eng.admin_url, args.loads)
        appear = await new_calls(driver, eng, sb, work, args.background, args.calls)
    finally:
        await asyncio.to_thread(driver.quit)
        await eng.stop()
    return {"benchmark": "console_latency", "page_load_ms": loads, "loads_per_page":
            args.loads, "new_call": appear}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loads", type=int, default=20)
    p.add_argument("--background", type=int, default=50)
    p.add_argument("--calls", type=int, default=20)
    out = asyncio.run(bench(p.parse_args()))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
