"""The live-assist routes in process (tests/unit/test_api_harness.py: a real config, store and
aiohttp server): the app's menu with its ETag, deep-link targets in call plans, and queue
status limited to the app's own tree."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from types import SimpleNamespace

from ivr_engine.livedata.monitor import QueueMonitor

from .test_api_harness import KEYS, api_fixture, assert_problem  # noqa: F401 - api fixture


def bearer(key: str) -> list[tuple[str, bytes]]:
    return [("Authorization", b"Bearer " + key.encode())]


async def test_menu_of_the_app_with_etag(api):
    r = await api.raw("GET", "/v1/apps/customer/menu?lang=fr", bearer(KEYS["customer"]))
    assert r.status == 200, r.body
    tree = r.json()
    assert (tree["app"], tree["surface"], tree["language"]) == ("customer", "ivr", "fr")
    root = tree["root"]
    assert root["id"] == "cust" and [c["id"] for c in root["children"]] == ["cust.1", "cust-sub"]
    assert root["children"][1]["children"][0]["id"] == "cust-sub.1"
    assert "top" not in r.body.decode() and "staff" not in r.body.decode()
    etag = r.headers["etag"]
    again = await api.raw("GET", "/v1/apps/customer/menu?lang=fr",
                          bearer(KEYS["customer"]) + [("If-None-Match", etag.encode())])
    assert again.status == 304 and again.body == b"" and again.headers["etag"] == etag
    other = await api.raw("GET", "/v1/apps/customer/menu?lang=en",
                          bearer(KEYS["customer"]) + [("If-None-Match", etag.encode())])
    assert other.status == 200  # another language: another document (same text here, but
    assert other.json()["language"] == "en" and other.headers["etag"] != etag  # not the same)


async def test_menu_refusals(api):
    r = await api.raw("GET", "/v1/apps/customer/menu", bearer(KEYS["staff"]))
    assert_problem(r, 401)
    r = await api.raw("GET", "/v1/apps/legacy/menu?surface=in-app",
                      bearer("legacy-key-00000000000000000000000000000"))
    assert_problem(r, 409)  # inactive (tests/unit/test_app_activation.py)
    r = await api.raw("GET", "/v1/apps/customer/menu?surface=web", bearer(KEYS["customer"]))
    assert_problem(r, 422)
    assert r.json()["field"] == "surface"
    r = await api.raw("GET", "/v1/apps/customer/menu?lang=e%0An", bearer(KEYS["customer"]))
    assert_problem(r, 422)


async def test_call_plan_with_a_target_of_the_apps_tree(api):
    r = await api.post("/v1/apps/customer/calls", {"connectivity": 0.1, "target": "cust-sub"},
                       key=KEYS["customer"])
    assert r.status == 201, r.body
    plan = r.json()
    assert plan["mode"] == "pstn" and plan["target"] == "cust-sub"
    intent = await api.parts.store.intents.consume_token("customer", plan["token"],
                                                       dt.datetime.now(dt.timezone.utc), "ch")
    assert intent.target == "cust-sub"
    r = await api.post("/v1/apps/customer/calls", {"connectivity": 0.9}, key=KEYS["customer"])
    assert r.status == 201 and r.json()["target"] is None


async def test_targets_outside_the_apps_tree_are_refused(api):
    for target in ("top", "staff", "staff.1", "cust.9", "nope"):
        r = await api.post("/v1/apps/customer/calls", {"connectivity": 0.1, "target": target},
                           key=KEYS["customer"])
        assert_problem(r, 422)
        assert r.json()["field"] == "target" and r.json()["title"] == "Invalid target"
    assert await api.parts.store.intents.active_count(
        "customer", dt.datetime.now(dt.timezone.utc)) == 0  # nothing stored


def connected_ami():
    """AMI as the monitor sees it: logged in (the monitor's events are fed by the test)."""
    return SimpleNamespace(connected=True, listen=lambda *a: None)


async def test_queue_status_of_the_apps_own_queues(api):
    r = await api.raw("GET", "/v1/queues/sales/status", bearer(KEYS["customer"]))
    assert_problem(r, 503)  # no AMI: not "an empty queue"
    now = [100.0]
    monitor = QueueMonitor(connected_ami(), clock=lambda: now[0])  # type: ignore[arg-type]
    monitor.synced.set()
    await api.rebuild(queues=monitor)
    ev = lambda e, **f: monitor.board.apply({"Event": e, "Queue": "sales", **f}, now[0])  # noqa: E731
    ev("QueueMemberAdded", Interface="Local/a1@x", Status="1", Paused="0")
    ev("QueueMemberAdded", Interface="Local/a2@x", Status="1", Paused="1")
    for talk in ("30", "30", "30"):
        ev("AgentComplete", Interface="Local/a1@x", TalkTime=talk)
    ev("QueueCallerJoin", Uniqueid="u1", Channel="c1", Position="1")
    now[0] = 104.0
    ev("QueueCallerJoin", Uniqueid="u2", Channel="c2", Position="2")
    now[0] = 110.0
    r = await api.raw("GET", "/v1/queues/sales/status", bearer(KEYS["customer"]))
    assert r.status == 200, r.body
    s = r.json()
    assert (s["callers_waiting"], s["longest_wait_seconds"]) == (2, 10.0)
    assert s["agents"] == {"logged_in": 2, "serving": 1, "available": 1, "busy": 0,
                           "paused": 1}
    assert [(p["position"], p["waiting_seconds"], p["estimate"]["seconds"])
            for p in s["positions"]] == [(1, 10.0, 0.0), (2, 6.0, 30.0)]
    assert s["estimate_new_caller"]["seconds"] == 60.0
    assert s["estimate_new_caller"]["method"] == "talk-time"
    assert "u1" not in r.body.decode() and "c1" not in r.body.decode()  # no identities
    # the call's own view (admin route)
    from .test_api_admin import ADMIN
    from ivr_engine.calls.registry import CallInfo
    api.parts.registry.add(CallInfo(id="u2", channel_name="c2", caller="+1", entry="app:customer",
                                  via="app", app="customer", root_menu="cust", language="en",
                                  state="handed-off"))
    call = (await api.raw("GET", "/v1/calls/u2", ADMIN)).json()
    assert call["queue"] == {"queue": "sales", "position": 2, "waiting_seconds": 6.0,
                             "estimate": s["positions"][1]["estimate"]}
    # another app's queue, or a queue of no app: the same 404
    for key, queue in ((KEYS["customer"], "support"), (KEYS["customer"], "operator"),
                       (KEYS["staff"], "sales"), (KEYS["customer"], "nope")):
        assert_problem(await api.raw("GET", f"/v1/queues/{queue}/status", bearer(key)), 404)
    assert_problem(await api.raw("GET", "/v1/queues/sales/status", bearer("wrong")), 401)
    # staff's own queues (its tree and its dial-0 queue)
    r = await api.raw("GET", "/v1/queues/operator/status", bearer(KEYS["staff"]))
    assert r.status == 200 and r.json()["callers_waiting"] == 0
    assert r.json()["estimate_new_caller"]["method"] == "none"
    await asyncio.sleep(0)


async def test_queue_events_stream_changes_at_once(api):
    import time

    import aiohttp

    monitor = QueueMonitor(connected_ami())  # type: ignore[arg-type]
    monitor.synced.set()
    await api.rebuild(queues=monitor)
    runner = asyncio.create_task(monitor.run())  # the engine's task; cancelled when it stops
    url = f"http://127.0.0.1:{api.server.port}/v1/queues/sales/events"
    headers = {"Authorization": f"Bearer {KEYS['customer']}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=headers) as r:  # no Accept: text/event-stream
            assert r.status == 406
        async with http.get(url.replace("sales", "support"),
                            headers={**headers, "Accept": "text/event-stream"}) as r:
            assert r.status == 404  # staff's queue
        async with http.get(url, headers={**headers, "Accept": "text/event-stream"}) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "text/event-stream"

            async def next_event() -> tuple[str, dict]:
                kind = data = None
                while True:
                    line = (await asyncio.wait_for(r.content.readline(), 3)).decode().strip()
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        data = json.loads(line[6:])
                    elif not line and kind:
                        return kind, data

            kind, first = await next_event()
            assert kind == "status" and first["callers_waiting"] == 0
            t0 = time.monotonic()
            monitor._on_event(None, {"Event": "QueueCallerJoin", "Queue": "sales",
                                     "Uniqueid": "u1", "Position": "1"})
            kind, second = await next_event()
            assert second["callers_waiting"] == 1 and second["positions"][0]["position"] == 1
            assert time.monotonic() - t0 < 1.0  # pushed at the change, not at the refresh
            runner.cancel()  # the engine stops: the stream says so and ends
            await asyncio.gather(runner, return_exceptions=True)
            assert (await next_event())[0] == "unavailable"
            assert await asyncio.wait_for(r.content.read(), 3) == b""
