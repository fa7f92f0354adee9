"""A slow CSV upload next to calls and single sends (issue 17, bulkheads), through the real
engine process (SQLite, dialers inside the engine), the sandbox Asterisk and a SIPp caller
walking a menu with RFC 4733 keys, while a client trickles a campaign file to the engine.

Before: the upload's transaction stayed open while its body streamed in; once its first
1 000 rows were written, every other writer waited for the end of the body — SendSMS answered
500 ("database is locked") and the in-engine dialer died with the engine. Now the body is
checked into a temporary file first and imported in one short transaction at the end.

CI trickles a small file (``IVR_TRICKLE_ROWS`` rows, 4 000 by default, at
``IVR_TRICKLE_BYTES_PER_SECOND``, 10 KiB/s: about 16 s); ``bench/upload_memory.py`` sends 100
MiB. Needs the sandbox: run under the sandbox lock.
"""

from __future__ import annotations

import asyncio
import os
import time

import aiohttp
import pytest

from ivr_engine.testing.sipp import SippCaller
from tests.support.sms_providers import INFOBIP_KEY, LocalProviders, start

from .engine_proc import FIXTURE, start_engine

pytestmark = pytest.mark.sandbox

TOKEN = "upload-bulkhead-admin-0000000000000000"
ROWS = int(os.environ.get("IVR_TRICKLE_ROWS", "4000"))
RATE = float(os.environ.get("IVR_TRICKLE_BYTES_PER_SECOND", str(10 * 1024)))


def engine_config(tmp_path, provider_url: str):
    text = FIXTURE.read_text().replace("  api:\n", f"  api:\n    admin_token: {TOKEN}\n", 1)
    text += f"""
sms:
  default_region: UY
  in_engine: true
  providers:
    - {{name: infobip, type: infobip, url: "{provider_url}", password: {INFOBIP_KEY}}}
  dialers:
    bulk: {{}}
  campaigns:
    promo: {{dialer: bulk}}
"""
    path = tmp_path / "engine-upload.yaml"
    path.write_text(text)
    return path


def key_to_prompt(call) -> list[float]:
    """For each key Asterisk decoded: seconds until the next prompt started."""
    out, pending = [], None
    for now, _, kind, _ in call.timeline:
        if kind == "key":
            pending = now
        elif kind == "prompt" and pending is not None:
            out.append(now - pending)
            pending = None
    return out


async def test_a_trickled_upload_blocks_no_call_and_no_send(sandbox, tmp_path):
    providers = LocalProviders()
    runner, url = await start(providers)
    eng = await start_engine(sandbox, tmp_path / "engine",
                             config=engine_config(tmp_path, url))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    lines = [f"promo;0996{i:05d};Campaign message {i};9999\n".encode() for i in range(ROWS)]
    sent = {"rows": 0}

    async def trickle():
        t0, size = time.monotonic(), 0
        for start_at in range(0, ROWS, 20):
            chunk = b"".join(lines[start_at:start_at + 20])
            yield chunk
            size += len(chunk)
            sent["rows"] = min(ROWS, start_at + 20)
            await asyncio.sleep(max(0.0, t0 + size / RATE - time.monotonic()))

    try:
        (tmp_path / "sipp").mkdir()
        async with SippCaller(sandbox, tmp_path / "sipp") as sipp, \
                aiohttp.ClientSession() as http:
            async def upload():
                async with http.post(f"{eng.api_url}/v1/sms/uploads", data=trickle(),
                                     headers={**auth, "Content-Type": "text/csv"}) as r:
                    return r.status, await r.json()

            async def send_sms():
                t0 = time.monotonic()
                async with http.post(f"{eng.api_url}/v1/sms", headers=auth, json={
                        "destination": "099635199", "message": "meanwhile",
                        "wait_seconds": 4}) as r:
                    return r.status, await r.json(), time.monotonic() - t0

            async with asyncio.TaskGroup() as tg:
                up = tg.create_task(upload())
                deadline = time.monotonic() + 30
                while sent["rows"] < min(1100, ROWS // 2):  # past the old first write
                    assert time.monotonic() < deadline and not up.done()
                    await asyncio.sleep(0.05)
                sms = tg.create_task(send_sms())
                run = await sipp.call("100", "1 1 1")
                during = not up.done()
            status, doc, took = sms.result()
            assert status == 200 and doc["status"] == "sent", doc
            assert took < 2.0, took
            assert during, "the upload ended before the call: trickle slower"
            assert run.returncode == 0, run.output
            (call,) = run.calls
            assert call.keys == ["1", "1", "1"] and call.path == ["top", "a", "b"]
            assert call.prompts[:3] == ["sound:digits/1", "sound:digits/2", "sound:digits/3"]
            assert max(key_to_prompt(call)) < 1.0, key_to_prompt(call)
            assert up.result() == (200, {"imported": ROWS})
            async with http.get(f"{eng.api_url}/v1/sms/monitor", headers=auth) as r:
                promo = next(c for c in (await r.json())["campaigns"]
                             if c["campaign"] == "promo")
            assert promo["processed"] + promo["not_processed"] + promo["in_flight"] == ROWS
        assert eng.proc.returncode is None, eng.log()
        assert "database is locked" not in eng.log()
    finally:
        code = await eng.stop()
        await runner.cleanup()
    assert code == 0, eng.log()
