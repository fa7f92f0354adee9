"""The listener's budget of connections (issue 16): derived from the descriptor limit with a
reserve for calls, the database and the providers; past it, or past the per-address cap, a
new connection gets a 503 problem at once and is closed — its descriptor is back before any
request of it is read. In process, idle connections held on raw sockets."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time

import pytest

from ivr_engine import metrics
from ivr_engine.api.listener import http_budget
from ivr_engine.config import parse_config
from ivr_engine.config.model import ConnectionLimits

from .test_api_harness import (  # noqa: F401 - api_fixture: the api fixture
    ENV,
    FIXTURE,
    USERS,
    api_fixture,
)


def test_the_budget_leaves_the_reserve_to_the_engine():
    limits = ConnectionLimits()  # reserve_fds 256; each listener leaves its accept burst (64)
    assert http_budget(limits, admin_listener=False, fds=1024) == (704, None)
    assert http_budget(limits, admin_listener=False, fds=65536) == (65216, None)
    assert http_budget(limits, admin_listener=True, fds=1024) == (600, 40)
    assert http_budget(ConnectionLimits(max=100), admin_listener=False, fds=65536) == (100,
                                                                                       None)
    # a limit too low for the reserve: half of it, and a warning naming LimitNOFILE
    assert http_budget(limits, admin_listener=False, fds=256) == (128, None)


async def hold(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return await asyncio.wait_for(reader.read(), 5)


@pytest.fixture
async def small(api):
    """The API with a 40-connection budget (a 120-descriptor process, 16 reserved, 64 for the
    accept burst), 6 per address."""
    text = FIXTURE.read_text().replace(
        "  api:\n", "  api:\n    connections: {reserve_fds: 16, per_address: 6}\n", 1)
    cfg = parse_config(text + USERS, str(FIXTURE), ENV)
    await api.rebuild(config=lambda: cfg, fds=120)
    held: list[asyncio.StreamWriter] = []
    api.held = held
    try:
        yield api
    finally:
        for w in held:
            w.close()


async def wait_open(api, n: int) -> None:
    budget = api.server.runner.server.budget
    deadline = time.monotonic() + 5
    while budget.open != n and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert budget.open == n, budget.open


async def test_connections_past_the_per_address_cap_get_503_at_once(small, caplog):
    port = small.server.port
    for _ in range(6):
        small.held.append((await hold(port, "127.0.0.9"))[1])
    await wait_open(small, 6)
    before = metrics.HTTP_CONNECTIONS_REFUSED.labels("api", "per_address")._value.get()
    reply = await answer(*await hold(port, "127.0.0.9"))
    assert reply.startswith(b"HTTP/1.1 503 ") and b"application/problem+json" in reply
    assert json.loads(reply.partition(b"\r\n\r\n")[2])["status"] == 503
    assert metrics.HTTP_CONNECTIONS_REFUSED.labels("api", "per_address")._value.get() == \
        before + 1
    assert b"200 OK" in await answer(*await hold(port, "127.0.0.10"))  # another address
    for _ in range(20):  # refusals: one log line, no task left behind with an error
        await answer(*await hold(port, "127.0.0.9"))
    await asyncio.sleep(0.1)
    gc.collect()  # a task that ended in an error would be reported now
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) <= 1 and not any(r.exc_info for r in lines), caplog.text


async def test_connections_past_the_budget_get_503_and_come_back_when_freed(small):
    port = small.server.port
    for i in range(40):
        small.held.append((await hold(port, f"127.0.1.{i // 6 + 1}"))[1])
    await wait_open(small, 40)
    reply = await answer(*await hold(port, "127.0.2.1"))
    assert reply.startswith(b"HTTP/1.1 503 ")
    await wait_open(small, 40)  # the refused one never counted, and is gone
    small.held.pop().close()
    await wait_open(small, 39)
    assert b"200 OK" in await answer(*await hold(port, "127.0.2.1"))
