"""Operations, against the real engine process and the sandbox Asterisk: /metrics counts what
really happened, /healthz and /readyz tell liveness and readiness (with reasons), JSON log
lines carry each call's channel id, and no configured secret ever reaches the log."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import aiohttp
import pytest

from ivr_engine.testing import CallerPool

from .engine_proc import start_engine

pytestmark = pytest.mark.sandbox

APPS = Path(__file__).resolve().parents[1] / "fixtures" / "apps.yaml"
SECRETS = {"IVR_CUSTOMER_API_KEY": "customer-key-3f9a1c-00000000000000000000", "IVR_STAFF_API_KEY": "staff-key-77b2e0-00000000000000000000000",
           "IVR_ADMIN_TOKEN": "admin-token-5d41aa-000000000000000000000", "IVR_WEBHOOK_SECRET": "hook-secret-9e0c2f-000000000000000000000"}


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        series, _, rest = head.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if series == name and got == want:
            return float(value)
    return 0.0


@pytest.fixture(scope="module")
async def engine(sandbox, tmp_path_factory):
    eng = await start_engine(sandbox, tmp_path_factory.mktemp("ops"), config=APPS, extra_env={
        **SECRETS, "IVR_AMI_PASSWORD": sandbox.ami_password, "IVR_LOG_FORMAT": "json"})
    yield eng
    assert await eng.stop() == 0, eng.log()


async def poll(cond, timeout: float, what: str, every: float = 0.1):
    """Call ``cond()`` (async) until it returns something true; that value. A deadline, not
    a count of sleeps: the machine may be loaded."""
    deadline = time.monotonic() + timeout
    while True:
        got = await cond()
        if got:
            return got
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(every)


async def get(engine, path: str, **kw) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http:
        async with http.get(engine.api_url + path, **kw) as r:
            return r.status, await r.text()


async def test_health_and_readiness(engine):
    assert (await get(engine, "/healthz"))[0] == 200

    async def ready():  # AMI logs in shortly after ARI
        status, body = await get(engine, "/readyz")
        return body if status == 200 else None
    body = await poll(ready, 20, "/readyz 200")
    assert json.loads(body)["status"] == "ready", body


async def test_metrics_count_calls_keys_and_requests(engine, sandbox):
    before = (await get(engine, "/metrics"))[1]
    async with CallerPool(sandbox.ari_url, sandbox.ari_username, sandbox.ari_password) as pool:
        r = await pool.call(did="+15550001000", caller="+15551231234", keys=["1"], timeout=30)
    assert r["destination"] == {"type": "queue", "target": "operator"}
    await get(engine, "/v1/calls/nope", headers={"Authorization": "Bearer wrong"})

    async def counted():  # the call is counted when its channel leaves the engine
        status, text = await get(engine, "/metrics")
        assert status == 200
        return text if metric(text, "ivr_calls_total", entry="number", outcome="handed-off") \
            > metric(before, "ivr_calls_total", entry="number", outcome="handed-off") else None
    after = await poll(counted, 20, "the call counted")
    assert metric(after, "ivr_calls_total", entry="number", outcome="handed-off") == \
        metric(before, "ivr_calls_total", entry="number", outcome="handed-off") + 1
    assert metric(after, "ivr_calls_in_progress") == 0
    assert metric(after, "ivr_http_requests_total", route="/v1/calls/{call_id}", method="GET",
                  status="401") >= 1
    assert "ivr_dtmf_to_prompt_seconds_bucket" in after
    assert re.search(r'^ivr_reconnects_total', after, re.M) or "ivr_reconnects" in after


async def test_readiness_says_why_when_asterisk_is_unreachable(sandbox, tmp_path):
    """An engine pointed at a wrong ARI password stays alive but not ready, and says why."""
    from .engine_proc import spawn_engine

    eng = await spawn_engine(sandbox, tmp_path, extra_env={"IVR_ARI_PASSWORD": "wrong"})
    try:
        async def answered():
            try:
                return await get(eng, "/readyz")
            except aiohttp.ClientConnectionError:  # not listening yet
                return None
        status, body = await poll(answered, 30, "the API answering")
        assert status == 503
        assert "ARI calls application 'ivr-engine' not connected" in body, body
        assert (await get(eng, "/healthz"))[0] == 200
    finally:
        await eng.stop()


async def test_json_logs_carry_the_channel_and_never_a_secret(engine, sandbox):
    async with CallerPool(sandbox.ari_url, sandbox.ari_username, sandbox.ari_password) as pool:
        r = await pool.call(did="+15550001000", caller="+15551231235", keys=["1"], timeout=30)
    channel = r["channel"]
    async with aiohttp.ClientSession() as http:  # wrong and right credentials, logged or not
        for key in ("wrong", SECRETS["IVR_CUSTOMER_API_KEY"]):
            async with http.post(f"{engine.api_url}/v1/apps/customer/calls",
                                 json={"connectivity": 0.1},
                                 headers={"Authorization": f"Bearer {key}"}) as resp:
                await resp.read()

    async def logged():  # the call's last line (it left the engine) is written
        return f"call {channel} left the engine" in engine.log()
    await poll(logged, 20, "the call's lines in the log")
    lines = [json.loads(line) for line in engine.log().splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "message"} <= set(x) for x in lines)
    mine = [x for x in lines if channel in x["message"]]
    assert mine and all(x.get("channel") == channel for x in mine
                        if x["logger"] == "ivr_engine.calls")
    text = engine.log()
    for name, secret in {**SECRETS, "ARI": sandbox.ari_password,
                         "AMI": sandbox.ami_password}.items():
        assert secret not in text, f"{name} appears in the log"
