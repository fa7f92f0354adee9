"""App logs on request, in process (tests/unit/test_api_harness.py, SQLite and PostgreSQL):
an admin asks, the device uploads once (the user's session token only: the app's key proves
no user; size limit, content type), the admin lists and downloads; expired requests refuse
uploads; retention."""

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
    """The user logs in and registers the device; (device id, session token)."""
    session = await api.login("customer", user)
    r = await api.post("/v1/devices", {"platform": platform, "push_token": token},
                       key=session)
    assert r.status == 201, r.body
    return r.json()["id"], session


async def ask(api, body, app="customer"):
    return await api.raw("POST", f"/v1/admin/apps/{app}/log-requests",
                         ADMIN + [("Content-Type", b"application/json")],
                         json.dumps(body).encode())


async def upload(api, rid, data: bytes, key: str, ctype=b"text/plain"):
    return await api.raw("PUT", f"/v1/log-requests/{rid}/upload",
                         [("Authorization", b"Bearer " + key.encode()),
                          ("Content-Type", ctype)], data)


async def test_log_request_round_trip(api):
    device, alice = await register(api)
    bob = await api.login("customer", "bob")
    r = await ask(api, {"user": "alice"})
    assert r.status == 201, r.body
    (req,) = r.json()["requests"]
    assert req["device"] == device and req["state"] == "pending"
    assert req["push"] == "provider_error"  # the fixture's push credentials are missing
    rid = req["id"]
    assert len(rid) >= 20
    # refused: the app's keys (they prove no user), another user's session (as unknown),
    # a wrong type, too big (limit 10 MiB by default)
    assert_problem(await upload(api, rid, b"x", KEYS["staff"]), 401)
    assert_problem(await upload(api, rid, b"x", KEYS["customer"]), 401)
    other = assert_problem(await upload(api, rid, b"x", bob), 404)
    unknown = assert_problem(await upload(api, "no-such-request", b"x", alice), 404)
    assert other["detail"] == unknown["detail"]
    assert_problem(await upload(api, "no-such-request", b"x", "wrong"), 401)
    assert_problem(await upload(api, rid, b"x", alice, ctype=b"application/json"), 415)
    assert_problem(await upload(api, rid, b"x", alice, ctype=b"image/png"), 415)
    big = b"x" * (10 * 1024 * 1024 + 1)
    assert_problem(await upload(api, rid, big, alice), 413)
    log = b"2026-12-01 08:00:00 app started\n" * 3000  # 96 KB: over the JSON body limit
    r = await upload(api, rid, log, alice, ctype=b"text/plain; charset=utf-8")
    assert r.status == 201, r.body
    assert r.json()["size"] == len(log) and r.json()["content_type"] == "text/plain"
    assert_problem(await upload(api, rid, b"again", alice), 409)
    listed = (await api.raw("GET", "/v1/admin/apps/customer/log-requests?user=alice",
                            ADMIN)).json()["requests"]
    assert [(x["id"], x["state"], x["size"]) for x in listed] == [(rid, "uploaded", len(log))]
    r = await api.raw("GET", f"/v1/admin/log-requests/{rid}/log", ADMIN)
    assert r.status == 200 and r.body == log
    assert r.headers["x-log-content-type"] == "text/plain"
    assert_problem(await api.raw("GET", f"/v1/admin/log-requests/{rid}/log"), 401)
    assert_problem(await api.raw("GET", "/v1/admin/log-requests/nope/log", ADMIN), 404)


async def test_session_token_upload_expiry_and_retention(api):
    _, token = await register(api)
    (a,) = (await ask(api, {"user": "alice"})).json()["requests"]
    r = await upload(api, a["id"], b"\x1f\x8b gz", token, ctype=b"application/gzip")
    assert r.status == 201, r.body
    assert_problem(await ask(api, {"user": "nobody"}), 404)
    assert_problem(await ask(api, {"user": "alice", "device": 999}), 404)
    (b,) = (await ask(api, {"user": "alice"})).json()["requests"]
    # a day later the request has expired
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1, seconds=1)
    await api.rebuild(clock=lambda: later)
    life = api.parts.lifecycle
    assert_problem(await upload(api, b["id"], b"late", token), 410)
    listed = (await api.raw("GET", "/v1/admin/apps/customer/log-requests", ADMIN)).json()
    assert {x["id"]: x["state"] for x in listed["requests"]} == {a["id"]: "uploaded",
                                                                 b["id"]: "expired"}
    # 14 days of retention: both go
    gone = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=15, seconds=2)
    life.logs._clock = lambda: gone
    assert await life.logs.purge() == 2
    assert (await api.parts.store.lifecycle.logs.for_app("customer")) == []
