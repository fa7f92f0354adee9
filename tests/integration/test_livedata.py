"""Live-assist data through the real engine and the real sandbox Asterisk (issue 10): the
app's menu over HTTP, a deep-linked PSTN fallback call landing on its target node, and a
real app_queue (queue ``livedata``) with scripted agents (Local channels answering per
``asterisk-conf/extensions.conf`` [livedata-agent]) whose status route follows callers as
they join, abandon and are answered."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from tests.support.queue_member import queue_member

from .engine_proc import start_engine

pytestmark = pytest.mark.sandbox

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "livedata.yaml"
KEY = {"Authorization": "Bearer shop-key-0000000000000000000000000000000"}
ADMIN = {"Authorization": "Bearer admin-secret-000000000000000000000000000"}
AGENT = "Local/a1@livedata-agent"


@pytest.fixture(scope="module")
async def engine(sandbox, tmp_path_factory):
    eng = await start_engine(sandbox, tmp_path_factory.mktemp("livedata"), config=FIXTURE,
                             extra_env={"IVR_AMI_PASSWORD": sandbox.ami_password})
    yield eng
    assert await eng.stop() == 0, eng.log()


async def plan(http, **body):
    body.setdefault("connectivity", 0.2)
    async with http.post("/v1/apps/shop/calls", json=body, headers=KEY) as r:
        return r.status, await r.json()


async def status(http) -> dict:
    async with http.get("/v1/queues/livedata/status", headers=KEY) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def until(http, check, timeout=10.0) -> dict:
    """Poll the status route until ``check(status)`` holds; the last status otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        s = await status(http)
        if check(s) or time.monotonic() > deadline:
            return s
        await asyncio.sleep(0.1)


async def test_menu_of_the_app(http):
    async with http.get("/v1/apps/shop/menu?lang=fr", headers=KEY) as r:
        assert r.status == 200
        tree, etag = await r.json(), r.headers["ETag"]
    root = tree["root"]
    assert (root["id"], root["label"], root["open"]) == ("shop", "Aide boutique", True)
    assert [c["id"] for c in root["children"]] == ["shop-orders", "shop-returns"]
    leaf = root["children"][0]["children"][0]
    assert (leaf["id"], leaf["kind"], leaf["label"], leaf["queue"]) == (
        "shop-orders.1", "queue", "Nous parler", "livedata")
    async with http.get("/v1/apps/shop/menu?lang=fr",
                        headers={**KEY, "If-None-Match": etag}) as r:
        assert r.status == 304
    status_, body = await plan(http, target="main")
    assert status_ == 422 and body["field"] == "target"


async def test_deep_linked_fallback_call_lands_on_its_target(http, caller):
    status_, p = await plan(http, target="shop-returns", language="fr")
    assert status_ == 201 and p["mode"] == "pstn" and p["target"] == "shop-returns"
    r = await caller.call(did=p["number"], caller="+15551230101", keys=["1"], timeout=30,
                          post_dial=p["token"] + "#")
    # no main menu: the returns prompt first, and IVR_PATH shows the jump
    assert r["prompts"] == ["sound:digits/6"]
    assert r["path"] == ["@shop-returns"]
    assert r["destination"] == {"type": "queue", "target": "livedata"}
    async with http.get(f"/v1/calls/{r['channel']}", headers=ADMIN) as resp:
        info = await resp.json()
    assert info["path"] == ["@shop-returns"] and info["app"] == "shop"


async def test_deep_linked_voip_call_starts_at_its_target(http, caller):
    _, p = await plan(http, target="shop-orders", connectivity=0.9)
    token = p["token"]  # shop always plans PSTN (threshold 1); the VoIP path reads the same
    r = await caller.call(did="app-shop", caller="+33600000002", keys=["1"], timeout=30,
                          context="from-app", variables={"__IVR_TOKEN": token})
    assert r["prompts"] == ["sound:digits/4"] and r["path"] == ["@shop-orders"]
    assert r["destination"] == {"type": "queue", "target": "livedata"}


async def test_queue_events_stream_the_position_moving(http, caller):
    # before any agent logs in (test_queue_status_... adds one): the caller waits
    headers = {**KEY, "Accept": "text/event-stream"}
    async with http.get("/v1/queues/livedata/events", headers=headers) as r:
        assert r.status == 200

        async def until_event(check) -> dict:
            async with asyncio.timeout(10):
                while True:
                    line = (await r.content.readline()).decode()
                    if line.startswith("data: "):
                        data = json.loads(line[6:])
                        if check(data):
                            return data

        base = (await until_event(lambda d: True))["callers_waiting"]
        _, p = await plan(http, target="shop-orders.1")
        call = caller.start(p["number"], caller="+15550000300", keys=[], timeout=60,
                            post_dial=p["token"] + "#", hold=60)
        try:
            s = await until_event(lambda d: d["callers_waiting"] == base + 1)
            assert s["positions"][-1]["position"] == base + 1
        finally:
            call.hang_up()
            await call.finished()
        s = await until_event(lambda d: d["callers_waiting"] == base)
        assert s["callers_waiting"] == base


async def test_queue_status_follows_callers_and_agents(http, caller, ami):
    await until(http, lambda s: True)  # tracking (200, not 503)
    s = await until(http, lambda s: s["callers_waiting"] == 0 and s["agents"]["logged_in"] == 0)
    assert s["callers_waiting"] == 0, s
    answered, abandoned = s["answered"], s["abandoned"]  # earlier tests' callers count too
    calls: list = []
    try:
        await _queue_scenario(http, caller, ami, calls, answered, abandoned)
    finally:  # never leave a caller waiting in the queue
        for call in calls:
            call.hang_up()
        await asyncio.gather(*(c.finished() for c in calls), return_exceptions=True)


async def _queue_scenario(http, caller, ami, calls, answered, abandoned):
    for i in range(3):  # deep-linked straight into the queue, one after the other
        _, p = await plan(http, target="shop-orders.1")
        calls.append(caller.start(p["number"], caller=f"+1555000020{i}", keys=[], timeout=60,
                                  post_dial=p["token"] + "#", hold=60,
                                  variables={"__LIVEDATA_TALK": "2"}))
        s = await until(http, lambda s, n=i + 1: s["callers_waiting"] == n)
        assert s["callers_waiting"] == i + 1, s
    assert [p["position"] for p in s["positions"]] == [1, 2, 3]
    assert s["agents"]["logged_in"] == 0
    assert s["estimate_new_caller"]["seconds"] is None  # nobody serves: no made-up number
    waits = [p["waiting_seconds"] for p in s["positions"]]
    assert waits == sorted(waits, reverse=True)
    third = calls[2].record.channel
    async with http.get(f"/v1/calls/{third}", headers=ADMIN) as r:
        assert (await r.json())["queue"]["position"] == 3
    # the second caller hangs up: the third moves up
    calls[1].hang_up()
    s = await until(http, lambda s: s["callers_waiting"] == 2)
    assert (s["callers_waiting"], s["abandoned"]) == (2, abandoned + 1), s
    async with http.get(f"/v1/calls/{third}", headers=ADMIN) as r:
        assert (await r.json())["queue"]["position"] == 2
    # an agent logs in: it answers the first caller (talks 2 s), then the third
    async with queue_member(ami, "livedata", AGENT, MemberName="a1"):
        s = await until(http, lambda s: s["answered"] >= answered + 1)
        assert (s["callers_waiting"], s["answered"]) == (1, answered + 1), s
        assert s["agents"] == {"logged_in": 1, "serving": 1, "available": 0, "busy": 1,
                               "paused": 0}
        assert s["positions"][0]["position"] == 1
        # the estimate for the waiting caller: the agent's rest of call (no talk time known
        # yet: not enough history)
        assert s["positions"][0]["estimate"]["method"] == "none"
        s = await until(http, lambda s: s["answered"] == answered + 2
                        and s["callers_waiting"] == 0)
        assert (s["callers_waiting"], s["answered"], s["abandoned"]) == (
            0, answered + 2, abandoned + 1), s
        s = await until(http, lambda s: s["agents"]["available"] == 1)
        assert s["agents"]["busy"] == 0, s
        await asyncio.gather(calls[0].finished(), calls[2].finished())
        # the agent hung up after 2 s of talk, long before the callers' 60 s hold
        assert calls[0].duration_ms < 20_000 and calls[2].duration_ms < 20_000
        async with http.get(f"/v1/calls/{third}", headers=ADMIN) as r:
            assert (await r.json())["queue"] is None  # no longer waiting

