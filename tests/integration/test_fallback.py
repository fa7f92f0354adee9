"""With no engine connected, the dialplan fallback answers: message, then the default queue."""

from __future__ import annotations

import pytest

from ivr_engine.testing.caller import CallerPool

from .engine_proc import app_connected

pytestmark = pytest.mark.sandbox


async def test_engine_not_running_dialplan_fallback_answers(sandbox):
    assert not app_connected(sandbox), "an engine is connected; this test needs none"
    async with CallerPool(sandbox.ari_url, sandbox.ari_username, sandbox.ari_password) as pool:
        r = await pool.call(did="+15551230000", caller="+15550001111", keys=[], timeout=20)
    apps = [app for app, _ in r["dialplan"]]
    # Stasis fails at once, then the fallback context: answer, message, queue
    assert "Stasis" in apps and apps.index("Stasis") < apps.index("Playback"), r["dialplan"]
    assert ["Playback", "pls-hold-while-try"] in r["dialplan"]
    assert apps.index("Playback") < apps.index("Queue")
    assert r["fallback"] is True
    assert r["destination"] == {"type": "queue", "target": "ivr-fallback"}
    assert r["prompts"] == []  # nothing was played by an engine
