"""PostgreSQL gone from under a running engine is a 503 the client may retry, never a 500.

Opening a connection, asyncpg raises the socket's own error (ConnectionRefusedError,
FileNotFoundError for a unix socket) through SQLAlchemy's pool without wrapping it: before,
every request that needed the database answered 500 "the engine failed" and logged a
traceback while the server was down. Here a cluster of the test's own is stopped, its
clients cut (``pg_ctl -m fast``), under a running API: a login answers 503 with Retry-After
and one warning line; the same login succeeds once the server is back, without restarting
anything.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from ivr_engine.api.ratelimit import TokenBuckets
from ivr_engine.config.reloader import ConfigHolder
from ivr_engine.push import PushService
from ivr_engine.repositories import Store
from ivr_engine.server import ApiParts, build_app
from ivr_engine.store import Database
from tests.support import pgcluster
from tests.support.api_server import ApiTestServer
from tests.support.identity import assertion
from tests.unit.test_api_harness import KEYS, Api, FakeClock, assert_problem, load_test_config
from tests.unit.test_api_harness import ready_node


@pytest.fixture
async def cluster():
    async with pgcluster.own("ivr-pg-gone-") as pg:
        yield pg


def login_body() -> dict:
    return {"assertion": assertion("customer", "alice", jti=uuid.uuid4().hex),
            "device_id": "dev-alice", "platform": "mobile", "app_type": "Mobile",
            "app_version": "2.0.0", "os": "android", "os_version": "14"}


async def test_postgresql_stopped_answers_503_then_serves_again(cluster, caplog):
    root, url = cluster
    db = Database(url)
    try:
        await db.upgrade()
    finally:
        await db.close()
    store = await Store.open(url)
    cfg = load_test_config()
    clock = FakeClock()
    push = PushService(lambda: cfg, store)
    parts = ApiParts(config=lambda: cfg, store=store, registry=None, holder=ConfigHolder(cfg),
                     push=push, nodes=[ready_node()], buckets=TokenBuckets(clock))
    server = ApiTestServer(build_app(parts))
    await server.start_server()
    api = Api(server, parts, clock)
    try:
        r = await api.post("/v1/apps/customer/sessions", login_body(), key=KEYS["customer"])
        assert r.status == 201, (r.status, r.body[:300])

        await asyncio.to_thread(pgcluster.halt, root)
        with caplog.at_level(logging.INFO, logger="ivr_engine.api"):
            r = await api.post("/v1/apps/customer/sessions", login_body(),
                               key=KEYS["customer"])
        doc = assert_problem(r, 503)
        assert r.headers["retry-after"] == "1"
        assert "retry" in doc["detail"]
        assert "database unavailable" in caplog.text
        assert "unexpected error" not in caplog.text and "Traceback" not in caplog.text

        await asyncio.to_thread(pgcluster.restart, root)
        r = await api.post("/v1/apps/customer/sessions", login_body(), key=KEYS["customer"])
        assert r.status == 201, (r.status, r.body[:300])
    finally:
        await server.close()
        await push.close()
        await store.close()


def test_a_handlers_own_connection_error_stays_a_500():
    """Only the database's connection errors are 503: an OSError from a handler's own I/O
    (a refused outgoing request) is the engine's failure and answers 500."""
    from ivr_engine.api.problems import database_unavailable

    try:
        raise ConnectionRefusedError(111, "Connect call failed")
    except ConnectionRefusedError as exc:
        assert not database_unavailable(exc)
