"""The real engine on each database backend (SQLite, PostgreSQL): an app call plan, a PSTN
fallback call whose token is consumed, and the call's context — ``GET /v1/calls/<id>`` —
still there, whole, from a second engine started after the first one stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from ivr_engine.testing.caller import CallerPool

from .engine_proc import start_engine

pytestmark = pytest.mark.sandbox

APPS = Path(__file__).resolve().parents[1] / "fixtures" / "apps.yaml"
ADMIN = {"Authorization": "Bearer admin-secret-000000000000000000000000000"}
CUSTOMER = {"Authorization": "Bearer customer-key-000000000000000000000000000"}


async def get_call(api_url: str, call_id: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{api_url}/v1/calls/{call_id}", headers=ADMIN) as r:
            return r.status, await r.json()


async def test_a_call_context_survives_an_engine_restart(sandbox, tmp_path, empty_db_url):
    env = {"IVR_DATABASE_URL": empty_db_url}  # start_engine runs the upgrade
    first = await start_engine(sandbox, tmp_path / "first", config=APPS, extra_env=env)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{first.api_url}/v1/apps/customer/calls", headers=CUSTOMER,
                                 json={"connectivity": 0.1, "language": "fr",
                                       "caller": "+33611000001",
                                       "custom_data": {"order": "B-7"}}) as r:
                assert r.status == 201
                plan = await r.json()
        async with CallerPool(sandbox.ari_url, sandbox.ari_username,
                              sandbox.ari_password) as pool:
            # hold: the caller stays a second in the queue, then hangs up (the session is
            # long over by then: this test is about the record, not that race)
            call = await pool.call(did=plan["number"], caller="+33611000001", keys=["1"],
                                   timeout=30, post_dial=plan["token"] + "#", hold=1)
        assert call["destination"] == {"type": "queue", "target": "sales"}
        for _ in range(100):  # the caller hung up in the queue
            status, before = await get_call(first.api_url, call["channel"])
            if before.get("state") == "ended":
                break
            await asyncio.sleep(0.05)
        assert status == 200 and before["state"] == "ended", before
    finally:
        assert await first.stop() == 0, first.log()

    second = await start_engine(sandbox, tmp_path / "second", config=APPS, extra_env=env)
    try:
        status, after = await get_call(second.api_url, call["channel"])
        assert status == 200, after
        assert after == before
        assert after["app"] == "customer" and after["language"] == "fr"
        assert after["custom_data"] == {"order": "B-7"} and after["path"] == ["cust"]
        assert after["destination"] == "queue:sales" and after["via"] == "app"
        status, _ = await get_call(second.api_url, "1234567890.999")
        assert status == 404
    finally:
        assert await second.stop() == 0, second.log()
