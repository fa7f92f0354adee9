"""A database user rung on the call path (issue 19), end to end: the real engine and sandbox
Asterisk, a real baresip. "dana" is in no config file: the admin API creates her (her phone
app registers as the sandbox's SIP user alice), a caller presses 1 (user:dana) and baresip
answers; then dana switches her ringing device from her app's session and the next call
rings her UC endpoint too."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.integration.conftest import start_client, stop_client
from tests.integration.engine_proc import start_engine
from tests.support.identity import open_session

from .baresip_ua import Baresip
from .test_wakeup import APP_KEY, _bridge_channels, _press_in_menu, _wait_offline, _wait_online

pytestmark = [pytest.mark.sandbox, pytest.mark.e2e]

CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "users.yaml"
ADMIN = {"Authorization": "Bearer users-admin-token-0000000000000000000000"}


async def test_a_database_user_is_rung_and_switches_her_ringing_device(sandbox, tmp_path):
    engine = await start_engine(sandbox, tmp_path / "engine", config=CONFIG)
    ari = await start_client(sandbox)
    phone = Baresip("alice", sandbox.sip_password, tmp_path)  # dana's phone app, awake
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{engine.api_url}/v1/admin/users", headers=ADMIN, json={
                    "name": "dana", "ringing_device": "mobile", "mobile_endpoint": "alice",
                    "uc_endpoint": "bob", "app": "mobileapp"}) as r:
                assert r.status == 201, await r.text()
            phone.start()
            await _wait_online(ari, "alice")
            a, b = await _press_in_menu(ari, "200", "1", "dbuser")
            channels = await _bridge_channels(ari, f"{b}-bridge", 2, timeout=10)
            assert any(c.startswith(f"{b}-mobile") for c in channels)  # baresip answered
            assert f"call {b}: ringing user dana (database, mobile)" in engine.log()
            await ari.hangup(a)
            # from her app: UC + mobile, from the next call on
            session = await open_session(http, engine.api_url, "mobileapp", APP_KEY, "dana")
            async with http.put(f"{engine.api_url}/v1/users/me/ringing",
                                json={"ringing_device": "uc+mobile"},
                                headers={"Authorization": f"Bearer {session}"}) as r:
                assert (r.status, (await r.json())["ringing_device"]) == (200, "uc+mobile")
            a, b = await _press_in_menu(ari, "200", "1", "dbswitch")
            channels = await _bridge_channels(ari, f"{b}-bridge", 2, timeout=10)
            assert any(c.startswith(f"{b}-mobile") for c in channels)
            log = engine.log()
            assert f"call {b}: ringing user dana (database, uc+mobile)" in log
            assert f"call {b} → user dana (uc+mobile): ring uc=True mobile=True" in log
            await ari.hangup(a)
        await phone.stop()
        await _wait_offline(ari, "alice")  # as the other tests expect the sandbox
    finally:
        await phone.stop()
        await stop_client(ari)
        assert await engine.stop() == 0, engine.log()
    assert "Traceback" not in engine.log()
