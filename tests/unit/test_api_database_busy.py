"""A database that does not answer in time is a 503 the client may retry, never a 500.

Measured before (bench/login_latency.py, SQLite at 100 logins/s): 5 of 2 000 logins answered
500 ("database is locked" while recording the assertion's jti). Here another process's
connection holds SQLite's write lock (BEGIN EXCLUSIVE) past the store's busy timeout: the
login answers 503 with Retry-After, the log line names the driver's error without the SQL or
its parameters (an assertion's jti, a session token hash), and the same login succeeds once
the lock is gone.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid

import pytest
from sqlalchemy.engine import make_url

from ivr_engine.api.ratelimit import TokenBuckets
from ivr_engine.config.reloader import ConfigHolder
from ivr_engine.push import PushService
from ivr_engine.repositories import Store
from ivr_engine.server import ApiParts, build_app
from tests.support.api_server import ApiTestServer
from tests.support.identity import assertion

from .test_api_harness import KEYS, Api, FakeClock, assert_problem, load_test_config, ready_node


@pytest.fixture
async def api(tmp_path, db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite's write lock; PostgreSQL's statement timeout is the same path")
    store = await Store.open(db_url, busy_timeout=0.2)
    cfg = load_test_config()
    clock = FakeClock()
    push = PushService(lambda: cfg, store)
    parts = ApiParts(config=lambda: cfg, store=store, registry=None, holder=ConfigHolder(cfg),
                     push=push, nodes=[ready_node()], buckets=TokenBuckets(clock))
    server = ApiTestServer(build_app(parts))
    await server.start_server()
    try:
        yield Api(server, parts, clock), make_url(db_url).database
    finally:
        await server.close()
        await push.close()
        await store.close()


def login_body(jti: str) -> dict:
    return {"assertion": assertion("customer", "alice", jti=jti), "device_id": "dev-alice",
            "platform": "mobile", "app_type": "Mobile", "app_version": "2.0.0",
            "os": "android", "os_version": "14"}


async def test_a_locked_database_answers_503_then_the_login_succeeds(api, caplog):
    client, path = api
    jti = uuid.uuid4().hex
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        with caplog.at_level(logging.INFO, logger="ivr_engine.api"):
            r = await client.post("/v1/apps/customer/sessions", login_body(jti),
                                  key=KEYS["customer"])
        doc = assert_problem(r, 503)
        assert r.headers["retry-after"] == "1"
        assert "retry" in doc["detail"]
        assert "database is locked" in caplog.text
        assert jti not in caplog.text and "INSERT" not in caplog.text
        assert "Traceback" not in caplog.text
    finally:
        other.execute("ROLLBACK")
        other.close()
    r = await client.post("/v1/apps/customer/sessions", login_body(uuid.uuid4().hex),
                          key=KEYS["customer"])
    assert r.status == 201, (r.status, r.body[:300])
