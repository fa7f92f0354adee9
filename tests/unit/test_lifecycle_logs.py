"""App logs on request, in process (tests/unit/test_api_harness.py, SQLite and PostgreSQL):
an admin asks, the device uploads once (the user's session token only: the app's key proves
no user; size limit, content type), the admin lists and downloads; expired requests refuse
uploads; retention. Logs the app sends unasked: the same storage, listing and retention,
within a per-user budget that holds when uploads race."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import tracemalloc

from ivr_engine.config import parse_config

from .test_api_harness import (  # noqa: F401 - api_fixture: the api fixture
    ADMIN_TOKEN,
    ENV,
    FIXTURE,
    KEYS,
    USERS,
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


PATTERN = b"2026-12-01 08:00:00.000 I/app: a line of the app's log\n" * 5000


def pattern(size: int, piece: int = 256 * 1024):
    """``size`` bytes of log text, ``piece`` at a time (never whole in this process)."""
    sent = 0
    while sent < size:
        n = min(piece, size - sent)
        start = sent % 4096
        yield PATTERN[start:start + n]
        sent += n


async def streamed(api, method, target, headers, size):
    """A request whose ``size``-byte body is written a piece at a time, and whose answer is
    read a piece at a time: (status, headers, body length, SHA-256 of the body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", api.server.port)
    try:
        head = [f"{method} {target} HTTP/1.1".encode(), b"Host: 127.0.0.1",
                b"Connection: close", b"Content-Length: %d" % size]
        head += [name.encode() + b": " + value for name, value in headers]
        writer.write(b"\r\n".join(head) + b"\r\n\r\n")
        for piece in pattern(size):
            writer.write(piece)
            await writer.drain()
        status, *lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        got = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)}
        digest, n = hashlib.sha256(), 0
        while data := await reader.read(256 * 1024):
            digest.update(data)
            n += len(data)
        return int(status.split()[1]), got, n, digest.hexdigest()
    finally:
        writer.close()


async def test_a_large_upload_is_never_whole_in_memory(api):
    """The upload was read whole into memory (then joined: twice its size), and the download
    read it whole from the database."""
    _, session = await register(api)
    (req,) = (await ask(api, {"user": "alice"})).json()["requests"]
    size = 9 * 1024 * 1024 + 17  # under the default 10 MiB
    expected = hashlib.sha256()
    for piece in pattern(size):
        expected.update(piece)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        status, _, _, _ = await streamed(api, "PUT", f"/v1/log-requests/{req['id']}/upload", [
            ("Authorization", b"Bearer " + session.encode()),
            ("Content-Type", b"text/plain")], size)
        upload_peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        got = await streamed(api, "GET", f"/v1/admin/log-requests/{req['id']}/log", ADMIN, 0)
        download_peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert status == 201
    assert got[0] == 200 and got[1]["x-log-content-type"] == "text/plain"
    assert (got[2], got[3]) == (size, expected.hexdigest())
    mib = 1024 * 1024
    assert upload_peak < 6 * mib, f"upload: {upload_peak / mib:.1f} MiB allocated at the peak"
    assert download_peak < 6 * mib, f"download: {download_peak / mib:.1f} MiB at the peak"


async def test_racing_uploads_orphans_and_retention_leave_no_chunk_behind(api):
    from sqlalchemy import func, insert, select

    from ivr_engine.lifecycle.models import LogChunk

    logs = api.parts.store.lifecycle.logs

    async def chunks() -> dict[str, int]:
        async with api.parts.store.db.sessions() as s:
            return dict((await s.execute(select(LogChunk.blob, func.count())
                                         .group_by(LogChunk.blob))).all())

    async def pieces(*parts):
        for p in parts:
            await asyncio.sleep(0)
            yield p

    await register(api)
    (req,) = (await ask(api, {"user": "alice"})).json()["requests"]
    now = dt.datetime.now(dt.timezone.utc)
    won = await asyncio.gather(*(logs.store_upload(req["id"], pieces(b"x" * 10, b"y" * i),
                                                   size=10 + i, content_type="text/plain",
                                                   now=now) for i in (1, 2, 3)))
    assert sorted(won) == [False, False, True]
    row = await logs.get(req["id"])
    assert await chunks() == {row.blob: 2}  # the losers' chunks are gone
    async with api.parts.store.db.sessions() as s, s.begin():  # an engine stopped mid-upload
        await s.execute(insert(LogChunk), [
            {"blob": "old-orphan", "seq": 0, "data": b"x",
             "created_at": now - dt.timedelta(hours=2)},
            {"blob": "new-orphan", "seq": 0, "data": b"x", "created_at": now}])
    assert await logs.purge(now - dt.timedelta(days=14), now) == 0
    assert await chunks() == {row.blob: 2, "new-orphan": 1}
    assert await logs.purge(now + dt.timedelta(seconds=1), now) == 1  # past its retention
    assert await chunks() == {"new-orphan": 1}


async def send_logs(api, data: bytes, key: str, ctype=b"text/plain"):
    return await api.raw("POST", "/v1/apps/customer/logs",
                         [("Authorization", b"Bearer " + key.encode()),
                          ("Content-Type", ctype)], data)


async def test_the_app_sends_its_logs_unasked_within_a_budget(api):
    device, alice = await register(api)
    bob = await api.login("customer", "bob")
    log = b"2026-12-01 08:00:00 the call dropped\n" * 3000  # over the JSON body limit
    r = await send_logs(api, log, alice, ctype=b"text/plain; charset=utf-8")
    assert r.status == 201, r.body
    sent = r.json()
    assert (sent["size"], sent["content_type"]) == (len(log), "text/plain")
    # the app's key proves no user; wrong type, too big: refused, nothing kept
    assert_problem(await send_logs(api, b"x", KEYS["customer"]), 401)
    assert_problem(await send_logs(api, b"x", alice, ctype=b"application/json"), 415)
    assert_problem(await send_logs(api, b"x" * (10 * 1024 * 1024 + 1), alice), 413)
    listed = (await api.raw("GET", "/v1/admin/apps/customer/log-requests?origin=user",
                            ADMIN)).json()["requests"]
    (row,) = listed
    assert (row["id"], row["user"], row["origin"], row["state"], row["device"],
            row["push"], row["size"]) == (sent["id"], "alice", "user", "uploaded", device,
                                          "unasked", len(log))
    assert row["session_id"] is not None
    r = await api.raw("GET", f"/v1/admin/log-requests/{sent['id']}/log", ADMIN)
    assert r.status == 200 and r.body == log
    # five a day per user (the default): the sixth is refused until the first is a day old
    for n in range(4):
        assert (await send_logs(api, b"line %d\n" % n, alice)).status == 201
    over = assert_problem(await send_logs(api, b"one more\n", alice), 429)
    assert "24 hours" in over["detail"]
    r = await send_logs(api, b"one more\n", alice)
    assert 86_000 < int(r.headers["retry-after"]) <= 86_400
    assert (await send_logs(api, b"bob's\n", bob)).status == 201  # per user
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1, seconds=1)
    await api.rebuild(clock=lambda: later)
    assert (await send_logs(api, b"next day\n", alice)).status == 201
    # the same retention as requested logs
    gone = later + dt.timedelta(days=15)
    api.parts.lifecycle.logs._clock = lambda: gone
    assert await api.parts.lifecycle.logs.purge() == 7
    assert await api.parts.store.lifecycle.logs.for_app("customer") == []
    # an engine that takes logs only when asked
    cfg = parse_config(FIXTURE.read_text() + USERS +
                       "lifecycle:\n  logs: {user_uploads_per_day: 0}\n", str(FIXTURE), ENV)
    await api.rebuild(config=lambda: cfg, clock=lambda: dt.datetime.now(dt.timezone.utc))
    assert_problem(await send_logs(api, b"x", await api.login("customer", "carol")), 409)


async def test_racing_unasked_uploads_keep_to_the_budget(api):
    from ivr_engine.lifecycle.models import LogChunk, LogRequest
    from sqlalchemy import func, select

    logs = api.parts.store.lifecycle.logs
    now = dt.datetime.now(dt.timezone.utc)

    async def pieces():
        await asyncio.sleep(0)
        yield b"x" * 10

    def row(n):
        return LogRequest(id=f"own-{n}", app="customer", user="alice", device_id=None,
                          platform="ios", created_at=now, expires_at=now, push_result="unasked",
                          uploaded_at=now, content_type="text/plain", size=10, origin="user")

    won = await asyncio.gather(*(logs.store_own(row(n), pieces(), since=now -
                                                dt.timedelta(days=1), most=2)
                                 for n in range(5)))
    assert sorted(won) == [False, False, False, True, True]
    async with api.parts.store.db.sessions() as s:  # the losers' chunks are gone
        assert (await s.execute(select(func.count()).select_from(LogChunk))).scalar() == 2
