"""App logs on request, in process (tests/unit/test_api_harness.py, SQLite and PostgreSQL):
an admin asks, the device uploads once (api key or the user's session token; size limit,
content type), the admin lists and downloads; expired requests refuse uploads; retention."""

from __future__ import annotations

import datetime as dt
import json

from .test_api_harness import (  # noqa: F401 - api_fixture: the api fixture
    ADMIN_TOKEN,
    KEYS,
    api_fixture,
    assert_problem,
)

ADMIN = [("Authorization", b"Bearer " + ADMIN_TOKEN.encode())]


async def register(api, user="alice", platform="android", token="t" * 40):
    r = await api.post("/v1/devices", {"app": "customer", "user": user, "platform": platform,
                                       "push_token": token}, key=KEYS["customer"])
    assert r.status == 201, r.body
    return r.json()["id"]


async def ask(api, body, app="customer"):
    return await api.raw("POST", f"/v1/admin/apps/{app}/log-requests",
                         ADMIN + [("Content-Type", b"application/json")],
                         json.dumps(body).encode())


async def upload(api, rid, data: bytes, ctype=b"text/plain", key=KEYS["customer"]):
    return await api.raw("PUT", f"/v1/log-requests/{rid}/upload",
                         [("Authorization", b"Bearer " + key.encode()),
                          ("Content-Type", ctype)], data)


async def test_log_request_round_trip(api):
    device = await register(api)
    r = await ask(api, {"user": "alice"})
    assert r.status == 201, r.body
    (req,) = r.json()["requests"]
    assert req["device"] == device and req["state"] == "pending"
    assert req["push"] == "provider_error"  # the fixture's push credentials are missing
    rid = req["id"]
    assert len(rid) >= 20
    # refused: no key, another app's key, a wrong type, too big (limit 10 MiB by default)
    assert_problem(await upload(api, rid, b"x", key=KEYS["staff"]), 401)
    assert_problem(await upload(api, "no-such-request", b"x"), 404)
    assert_problem(await upload(api, "no-such-request", b"x", key="wrong"), 401)
    assert_problem(await upload(api, rid, b"x", ctype=b"application/json"), 415)
    assert_problem(await upload(api, rid, b"x", ctype=b"image/png"), 415)
    big = b"x" * (10 * 1024 * 1024 + 1)
    assert_problem(await upload(api, rid, big), 413)
    log = b"2026-12-01 08:00:00 app started\n" * 3000  # 96 KB: over the JSON body limit
    r = await upload(api, rid, log, ctype=b"text/plain; charset=utf-8")
    assert r.status == 201, r.body
    assert r.json()["size"] == len(log) and r.json()["content_type"] == "text/plain"
    assert_problem(await upload(api, rid, b"again"), 409)
    listed = (await api.raw("GET", "/v1/admin/apps/customer/log-requests?user=alice",
                            ADMIN)).json()["requests"]
    assert [(x["id"], x["state"], x["size"]) for x in listed] == [(rid, "uploaded", len(log))]
    r = await api.raw("GET", f"/v1/admin/log-requests/{rid}/log", ADMIN)
    assert r.status == 200 and r.body == log
    assert r.headers["x-log-content-type"] == "text/plain"
    assert_problem(await api.raw("GET", f"/v1/admin/log-requests/{rid}/log"), 401)
    assert_problem(await api.raw("GET", "/v1/admin/log-requests/nope/log", ADMIN), 404)


async def test_session_token_upload_expiry_and_retention(api):
    await register(api)
    session = await api.post("/v1/apps/customer/sessions", {
        "user": "alice", "device_id": "p1", "platform": "mobile", "app_type": "Mobile",
        "app_version": "1.0", "os": "android", "os_version": "14"}, key=KEYS["customer"])
    token = session.json()["token"]
    (a,) = (await ask(api, {"user": "alice"})).json()["requests"]
    r = await upload(api, a["id"], b"\x1f\x8b gz", ctype=b"application/gzip", key=token)
    assert r.status == 201, r.body
    assert_problem(await ask(api, {"user": "nobody"}), 404)
    assert_problem(await ask(api, {"user": "alice", "device": 999}), 404)
    (b,) = (await ask(api, {"user": "alice"})).json()["requests"]
    # a day later the request has expired
    life = api.ctx.lifecycle
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1, seconds=1)
    api.ctx.clock = life.logs._clock = lambda: later
    assert_problem(await upload(api, b["id"], b"late"), 410)
    listed = (await api.raw("GET", "/v1/admin/apps/customer/log-requests", ADMIN)).json()
    assert {x["id"]: x["state"] for x in listed["requests"]} == {a["id"]: "uploaded",
                                                                 b["id"]: "expired"}
    # 14 days of retention: both go
    gone = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=15, seconds=2)
    life.logs._clock = lambda: gone
    assert await life.logs.purge() == 2
    assert (await api.ctx.store.lifecycle.logs.for_app("customer")) == []
