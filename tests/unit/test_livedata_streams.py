"""The queue event streams are bounded (issue 16): caps per app key and address, per user,
per address and in all (429 with Retry-After, one log line per cap and interval); a stream
ends after its lifetime with an SSE ``retry:`` hint; a stream is woken by its own queue's
changes only. In process (tests/unit/test_api_harness.py), streams held open on raw
sockets from several loopback addresses."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from types import SimpleNamespace

import pytest

from ivr_engine import metrics
from ivr_engine.config import parse_config
from ivr_engine.livedata.monitor import QueueMonitor
from ivr_engine.livedata.streams import StreamGate

from .test_api_harness import (  # noqa: F401 - api_fixture: the api fixture
    ENV,
    FIXTURE,
    KEYS,
    USERS,
    api_fixture,
    assert_problem,
)


class Stream:
    """An event stream read off a raw socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 status: int, headers: dict[str, str]) -> None:
        self.reader, self.writer, self.status, self.headers = reader, writer, status, headers
        self.retry: int | None = None

    async def event(self, timeout: float = 3.0) -> tuple[str, dict]:
        kind = data = None
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), timeout)
            if not raw:
                raise EOFError
            line = raw.decode().strip()
            if line.startswith("retry: "):
                self.retry = int(line[7:])
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif not line and kind:
                return kind, data

    def close(self) -> None:
        self.writer.close()


async def open_stream(api, queue: str, token: str, source: str = "127.0.0.1") -> Stream:
    reader, writer = await asyncio.open_connection("127.0.0.1", api.server.port,
                                                   local_addr=(source, 0))
    writer.write(f"GET /v1/queues/{queue}/events HTTP/1.1\r\nHost: x\r\nAccept: "
                 f"text/event-stream\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status_line, *lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(":") for line in lines if line)}
    return Stream(reader, writer, int(status_line.split()[1]), headers)


def fed_ami():
    """AMI as the monitor sees it: logged in; the test feeds the events."""
    return SimpleNamespace(connected=True, listen=lambda *a: None)


def who(address: str) -> SimpleNamespace:
    return SimpleNamespace(scheme=None, address=address, app="x", user=None,
                           describe=lambda: "app key of x")


def limits_yaml(**caps: int) -> str:
    inner = ", ".join(f"{k}: {v}" for k, v in caps.items())
    return FIXTURE.read_text().replace("  api:\n", f"  api:\n    streams: {{{inner}}}\n", 1)


@pytest.fixture
async def live(api):
    """The API with queues followed (a monitor fed by the test) and small stream caps."""
    cfg = parse_config(limits_yaml(per_client=2, per_user=2, per_address=3, total=5) + USERS,
                       str(FIXTURE), ENV)
    monitor = QueueMonitor(fed_ami())
    monitor.synced.set()
    await api.rebuild(config=lambda: cfg, queues=monitor)
    api.monitor = monitor
    streams: list[Stream] = []
    api.streams_opened = streams
    try:
        yield api
    finally:
        for s in streams:
            s.close()


async def opened(api, queue: str, token: str, source: str = "127.0.0.1") -> Stream:
    api.refill()  # these tests are about the stream caps, not the request rate
    s = await open_stream(api, queue, token, source)
    api.streams_opened.append(s)
    if s.status == 200:
        assert (await s.event())[0] == "status"
    return s


async def refused(api, queue: str, token: str, source: str, cap: str) -> None:
    before = metrics.EVENT_STREAMS_REFUSED.labels(cap)._value.get()
    s = await opened(api, queue, token, source)
    assert s.status == 429, s.status
    assert int(s.headers["retry-after"]) >= 1 and s.headers["connection"] == "close"
    body = await asyncio.wait_for(s.reader.read(), 3)  # the problem, then the server closes
    assert f"({cap} cap" in json.loads(body)["detail"]
    assert metrics.EVENT_STREAMS_REFUSED.labels(cap)._value.get() == before + 1


# ---------------------------------------------------------------- caps

async def test_streams_past_each_cap_are_429(live):
    key = KEYS["customer"]
    session = await live.login("customer", "alice")
    # per app key and address: 2 from .1; .2 still has its own two
    for _ in range(2):
        assert (await opened(live, "sales", key, "127.0.0.1")).status == 200
    await refused(live, "sales", key, "127.0.0.1", "per_client")
    # per user, whatever the address: alice's 2 sessions' streams
    assert (await opened(live, "sales", session, "127.0.0.2")).status == 200
    assert (await opened(live, "sales", session, "127.0.0.3")).status == 200
    await refused(live, "sales", session, "127.0.0.4", "per_user")
    assert (await opened(live, "sales", key, "127.0.0.2")).status == 200
    # in all: 5 open now
    assert live.parts.streams.total == 5
    await refused(live, "operator", KEYS["staff"], "127.0.0.5", "total")
    # a stream that ends frees its place at once
    live.streams_opened[0].close()
    deadline = time.monotonic() + 5
    while live.parts.streams.total == 5 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert (await opened(live, "operator", KEYS["staff"], "127.0.0.5")).status == 200


async def test_per_address_cap(api):
    cfg = parse_config(limits_yaml(per_client=5, per_user=5, per_address=3, total=100)
                       + USERS, str(FIXTURE), ENV)
    monitor = QueueMonitor(fed_ami())
    monitor.synced.set()
    await api.rebuild(config=lambda: cfg, queues=monitor)
    api.streams_opened = []
    try:
        session = await api.login("customer", "alice")
        for token in (KEYS["customer"], KEYS["customer"], session):
            assert (await opened(api, "sales", token, "127.0.0.7")).status == 200
        await refused(api, "operator", KEYS["staff"], "127.0.0.7", "per_address")
        assert (await opened(api, "operator", KEYS["staff"], "127.0.0.8")).status == 200
    finally:
        for s in api.streams_opened:
            s.close()


async def test_refused_streams_are_logged_once_per_interval(live, caplog):
    key = KEYS["customer"]
    for _ in range(2):
        await opened(live, "sales", key)
    with caplog.at_level(logging.INFO, "ivr_engine"):
        for _ in range(25):
            s = await opened(live, "sales", key)
            assert s.status == 429
    lines = [r for r in caplog.records if "event stream of" in r.getMessage()]
    assert len(lines) <= 1, [r.getMessage() for r in lines]


def test_retry_after_is_when_the_oldest_stream_of_the_cap_ends():
    now = [100.0]
    limits = SimpleNamespace(per_client=1, per_user=1, per_address=9, total=9,
                             max_lifetime_seconds=60.0)
    gate = StreamGate(lambda: limits, clock=lambda: now[0], jitter=lambda: 0.0)
    client = who("a")
    ticket = gate.open(client)  # type: ignore[arg-type]
    now[0] += 45
    with pytest.raises(Exception) as exc:
        gate.open(client)  # type: ignore[arg-type]
    assert exc.value.status == 429 and exc.value.headers["Retry-After"] == "15"
    ticket.__exit__()
    gate.open(client)  # type: ignore[arg-type]


def test_the_total_cap_is_held_under_the_connection_ceiling():
    limits = SimpleNamespace(per_client=99, per_user=99, per_address=99, total=1000,
                             max_lifetime_seconds=60.0)
    gate = StreamGate(lambda: limits, ceiling=3, jitter=lambda: 0.0)
    for i in range(3):
        gate.open(who(f"a{i}"))  # type: ignore[arg-type]
    with pytest.raises(Exception) as exc:
        gate.open(who("z"))  # type: ignore[arg-type]
    assert "total cap: 3" in exc.value.detail


# ---------------------------------------------------------------- lifetime, wake-ups

async def test_a_stream_ends_after_its_lifetime_with_a_retry_hint(live):
    short = live.parts.config().engine.api.streams.model_copy(
        update={"max_lifetime_seconds": 0.6, "retry_seconds": 7})
    await live.rebuild(streams=StreamGate(lambda: short, jitter=lambda: 0.0))
    t0 = time.monotonic()
    s = await opened(live, "sales", KEYS["customer"])
    assert s.status == 200 and s.retry == 7000  # the hint comes first
    kinds = []
    while True:
        kind, data = await s.event(timeout=5)
        kinds.append(kind)
        if kind == "end":
            break
    took = time.monotonic() - t0
    assert data == {"reason": "lifetime"} and s.retry == 7000
    assert 0.55 <= took < 3, took
    # the response ends (the last chunk) and the stream's place is free
    assert (await asyncio.wait_for(s.reader.readuntil(b"0\r\n\r\n"), 3)).endswith(
        b"0\r\n\r\n")
    assert live.parts.streams.total == 0


async def test_a_change_of_one_queue_wakes_only_that_queues_streams(live):
    sales = await opened(live, "sales", KEYS["customer"], "127.0.0.1")
    billing = await opened(live, "billing", KEYS["customer"], "127.0.0.2")
    t0 = time.monotonic()
    live.monitor._on_event(None, {"Event": "QueueCallerJoin", "Queue": "sales",
                                  "Uniqueid": "u1", "Position": "1"})
    kind, status = await sales.event(timeout=2)
    assert (kind, status["queue"], status["callers_waiting"]) == ("status", "sales", 1)
    assert time.monotonic() - t0 < 1.0
    with pytest.raises(TimeoutError):  # the refresh is every 5 s; nothing before it
        await billing.event(timeout=2.0)
    live.monitor._on_event(None, {"Event": "QueueCallerJoin", "Queue": "billing",
                                  "Uniqueid": "u2", "Position": "1"})
    kind, status = await billing.event(timeout=2)
    assert (status["queue"], status["callers_waiting"]) == ("billing", 1)
