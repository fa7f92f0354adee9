"""End to end: baresip registers as PJSIP endpoint `alice`; the IVR sends a caller to
`endpoint:alice`; Asterisk dials it and baresip auto-answers."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from ivr_engine.ari import AriClient
from ivr_engine.testing.caller import CallerPool

from ..integration.engine_proc import start_engine

pytestmark = [pytest.mark.sandbox, pytest.mark.e2e]

TEMPLATES = Path(__file__).parent / "baresip"


async def _endpoint_state(sandbox, name: str) -> str | None:
    async with AriClient(sandbox.ari_url, sandbox.ari_username, sandbox.ari_password,
                         "ivr-e2e-probe") as ari:
        ep = await ari.get_endpoint("PJSIP", name)
        return ep.get("state") if ep else None


@pytest.fixture
async def baresip_alice(sandbox, tmp_path):
    if shutil.which("baresip") is None:
        pytest.fail("baresip is not installed (scripts/install --test installs baresip-core)")
    sub = {"@SIP_USER@": "alice", "@SIP_PASSWORD@": sandbox.sip_password,
           "@SIP_PORT@": "5072", "@CTRL_PORT@": "4452"}
    for name in ("config", "accounts"):
        text = (TEMPLATES / f"{name}.template").read_text()
        for k, v in sub.items():
            text = text.replace(k, v)
        (tmp_path / name).write_text(text)
    (tmp_path / "accounts").chmod(0o600)
    log = open(tmp_path / "baresip.log", "wb")
    proc = subprocess.Popen(["baresip", "-f", str(tmp_path)], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            if await _endpoint_state(sandbox, "alice") == "online":
                break
            assert proc.poll() is None, (tmp_path / "baresip.log").read_text()
            await asyncio.sleep(0.1)
        else:
            pytest.fail("alice never registered:\n" + (tmp_path / "baresip.log").read_text())
        yield proc, tmp_path / "baresip.log"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def test_ivr_rings_registered_softphone_which_answers(sandbox, baresip_alice, tmp_path):
    proc, log_path = baresip_alice
    engine = await start_engine(sandbox, tmp_path)
    try:
        async with CallerPool(sandbox.ari_url, sandbox.ari_username,
                              sandbox.ari_password) as pool:
            r = await pool.call(did="100", caller="+15550002222", keys=["6"], timeout=30, hold=4)
    finally:
        assert await engine.stop() == 0, engine.log()
    assert r["path"] == ["top"]
    assert r["destination"] == {"type": "endpoint", "target": "alice"}, r
    assert ["Dial", "PJSIP/alice,30"] in r["dialplan"]
    # Asterisk reported the dial's outcome: baresip answered
    assert "ANSWER" in r["dial_status"], (r, log_path.read_text()[-3000:])
    assert proc.poll() is None
