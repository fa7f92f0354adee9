"""The in-process API the ``test_api_*`` modules talk to; this module holds no tests.

A real Config (tests/fixtures/apps.yaml, keys from env overrides, two users added), a real
Store on a fresh database of each backend (SQLite, PostgreSQL), a real CallRegistry (one ended
call, in its call record), a ConfigHolder (admin reloads re-read the fixture) and a real
PushService (the fixture's push credential files are missing: test pushes answer without
sending), one Asterisk node as the API sees it (connected and ready, no AMI; no calls), served
by aiohttp's TestServer. Requests are written as raw bytes on a socket: aiohttp's
client refuses to send non-UTF-8 header bytes, and a hostile client is not that polite.
Rate-limit buckets run on a fake clock the tests move.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, replace
from types import SimpleNamespace
from pathlib import Path
from typing import Sequence

import pytest
from aiohttp import test_utils

from ivr_engine.api.ratelimit import TokenBuckets
from ivr_engine.calls.registry import CallInfo, CallRegistry
from ivr_engine.config import parse_config
from ivr_engine.config.reloader import ConfigHolder
from ivr_engine.push import PushService
from ivr_engine.repositories import Store
from ivr_engine.server import ApiParts, build_app
from tests.support.api_server import ApiTestServer
from tests.support.identity import assertion

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "apps.yaml"
ADMIN_TOKEN = "admin-token-4f1c-00000000000000000000000"
KEYS = {"customer": "customer-key-93ab-0000000000000000000000", "staff": "staff-key-7d20-0000000000000000000000000"}
ENV = {"IVR_ADMIN_TOKEN": ADMIN_TOKEN, "IVR_CUSTOMER_API_KEY": KEYS["customer"],
       "IVR_STAFF_API_KEY": KEYS["staff"]}
USERS = """
users:
  alice: {mobile_endpoint: alice, app: customer}
  sam: {mobile_endpoint: sam, app: staff}
"""
ENDED_CALL = "call-ended-1"


def load_test_config():
    return parse_config(FIXTURE.read_text() + USERS, str(FIXTURE), ENV)


def ready_node() -> SimpleNamespace:
    """An Asterisk node as the API reads it (/v1/health, /readyz): ARI connected, calls taken
    back, registrations subscribed, no AMI."""
    calls_ready, contacts_ready = asyncio.Event(), asyncio.Event()
    calls_ready.set()
    contacts_ready.set()
    return SimpleNamespace(name="test", ari=SimpleNamespace(connected=True, app="ivr-engine"),
                           calls_ready=calls_ready,
                           contacts=SimpleNamespace(ready=contacts_ready), ami=None)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Api:
    server: test_utils.TestServer
    parts: ApiParts
    clock: FakeClock

    async def rebuild(self, **changes: object) -> None:
        """Serve the API again, built from the same parts with ``changes`` (the features take
        their services when the app is built: a test that swaps one rebuilds)."""
        await self.server.close()
        if "lifecycle" not in changes and {"config", "clock", "store", "push"} & set(changes):
            changes["lifecycle"] = None  # made again from the new parts
        if "streams" not in changes and {"config", "fds"} & set(changes):
            changes["streams"] = None  # the event streams' caps, from the new config
        self.parts = replace(self.parts, **changes)
        self.server = ApiTestServer(build_app(self.parts))
        await self.server.start_server()

    async def raw(self, method: str, target: str, headers: Sequence[tuple[str, bytes]] = (),
                  body: bytes | None = None, tail: bytes = b"",
                  source: str = "127.0.0.1") -> Reply:
        """One request, sent byte for byte (``target`` already %-encoded). ``body`` goes with
        a Content-Length; ``tail`` is sent as is after the head (chunked bodies). ``source``:
        the client's address (any of 127.0.0.0/8)."""
        lines = [f"{method} {target} HTTP/1.1".encode(), b"Host: 127.0.0.1",
                 b"Connection: close"]
        lines += [name.encode() + b": " + value for name, value in headers]
        if body is not None:
            lines.append(b"Content-Length: %d" % len(body))
        reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port,
                                                       local_addr=(source, 0))
        try:
            writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"") + tail)
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), 10)
        finally:
            writer.close()
        head, _, payload = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        reply = Reply(int(status_line.split()[1]), {}, payload)
        for line in header_lines:
            name, _, value = line.partition(":")
            reply.headers[name.strip().lower()] = value.strip()
        return reply

    async def login(self, app: str, user: str, **fields: object) -> str:
        """Log ``user`` in to ``app`` as its SDK does (an assertion from the app's backend);
        the session token."""
        body = {"assertion": assertion(app, user), "device_id": f"dev-{user}",
                "platform": "mobile", "app_type": "Mobile", "app_version": "2.0.0",
                "os": "android", "os_version": "14", **fields}
        r = await self.post(f"/v1/apps/{app}/sessions", body, key=KEYS[app])
        assert r.status == 201, (r.status, r.body[:300])
        return r.json()["token"]

    async def post(self, target: str, body: object | bytes, *, key: str | None = None,
                   content_type: bytes = b"application/json", source: str = "127.0.0.1",
                   method: str = "POST") -> Reply:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = [("Content-Type", content_type)]
        if key is not None:
            headers.append(("Authorization", b"Bearer " + key.encode()))
        return await self.raw(method, target, headers, raw, source=source)

    async def get(self, target: str, *, key: str | None = None,
                  source: str = "127.0.0.1") -> Reply:
        headers = [("Authorization", b"Bearer " + key.encode())] if key is not None else []
        return await self.raw("GET", target, headers, source=source)

    def refill(self) -> None:
        """An hour passes: every rate-limit bucket is full again."""
        self.clock.now += 3600


@pytest.fixture(name="api")
async def api_fixture(db_url):
    """On each database backend (``db_url``: tests/conftest.py). The ended call is read back
    from its call record, as after an engine restart."""
    store = await Store.open(db_url)
    registry = CallRegistry(store.calls)
    registry.add(CallInfo(id=ENDED_CALL, channel_name="PJSIP/trunk-00000001",
                          caller="+15550001111", entry="app:customer", via="app",
                          app="customer", root_menu="cust", language="en", state="ended"))
    await registry.flush()
    assert registry.get(ENDED_CALL) is None  # only live calls stay in memory
    cfg = load_test_config()
    clock = FakeClock()
    push = PushService(lambda: cfg, store)
    parts = ApiParts(config=lambda: cfg, store=store, registry=registry,
                     holder=ConfigHolder(cfg), push=push, nodes=[ready_node()],
                     buckets=TokenBuckets(clock))
    server = ApiTestServer(build_app(parts))
    await server.start_server()
    try:
        yield Api(server, parts, clock)
    finally:
        await server.close()
        await push.close()
        await store.close()


def assert_problem(reply: Reply, status: int | None = None) -> dict:
    """A 4xx/5xx answer is a complete problem document."""
    if status is not None:
        assert reply.status == status, (reply.status, reply.body[:300])
    assert reply.headers["content-type"].split(";")[0] == "application/problem+json", reply
    doc = reply.json()
    assert doc["status"] == reply.status
    assert isinstance(doc["title"], str) and doc["title"]
    assert isinstance(doc["detail"], str) and doc["detail"]
    return doc
