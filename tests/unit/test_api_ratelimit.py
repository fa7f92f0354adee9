"""Rate limits: the pure token buckets, then per address (before auth) and per key (after)."""

from __future__ import annotations

import pytest

from ivr_engine.api.ratelimit import TokenBuckets, retry_after
from ivr_engine.config import parse_config
from ivr_engine.config.model import ApiRateLimits

from .test_api_harness import (  # noqa: F401 - api_fixture: the api fixture
    ENV,
    FIXTURE,
    KEYS,
    USERS,
    FakeClock,
    api_fixture,
    assert_problem,
)

PLAN = "/v1/apps/staff/calls"


# ---------------------------------------------------------------- the buckets

def test_burst_then_refuse_with_the_wait_then_refill():
    clock = FakeClock()
    buckets = TokenBuckets(clock)
    assert [buckets.take("a", 2, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", 2, 3) == pytest.approx(0.5)  # one token every 0.5 s
    assert buckets.take("a", 2, 3) == pytest.approx(0.5)  # a refusal takes nothing
    assert buckets.take("b", 2, 3) == 0.0  # buckets are per key
    clock.now += 0.5
    assert buckets.take("a", 2, 3) == 0.0
    assert buckets.take("a", 2, 3) > 0
    clock.now += 3600
    assert [buckets.take("a", 2, 3) for _ in range(4)][-1] > 0  # refills up to burst only


def test_new_rate_and_burst_apply_to_existing_buckets():
    clock = FakeClock()
    buckets = TokenBuckets(clock)
    for _ in range(10):
        buckets.take("a", 1, 10)
    assert buckets.take("a", 1, 10) == pytest.approx(1.0)
    assert buckets.take("a", 0.1, 10) == pytest.approx(10.0)  # a reload lowered the rate
    clock.now += 100
    assert sum(buckets.take("a", 1, 2) == 0 for _ in range(5)) == 2  # and the burst


def test_buckets_are_a_bounded_lru():
    clock = FakeClock()
    buckets = TokenBuckets(clock, max_keys=3)
    for key in "abc":
        buckets.take(key, 1, 1)
    buckets.take("a", 1, 1)  # a is now the most recent
    buckets.take("d", 1, 1)  # evicts b, the least recently seen
    assert len(buckets) == 3
    assert buckets.take("a", 1, 1) > 0 and buckets.take("c", 1, 1) > 0
    assert buckets.take("b", 1, 1) == 0.0  # forgotten: a fresh bucket


@pytest.mark.parametrize("wait, header", [(0.001, "1"), (0.5, "1"), (1.0, "1"), (1.01, "2"),
                                          (59.2, "60")])
def test_retry_after_is_whole_seconds_at_least_one(wait, header):
    assert retry_after(wait) == header


def test_defaults_and_config():
    limits = ApiRateLimits()
    assert (limits.per_key.rate, limits.per_key.burst) == (10, 20)
    assert (limits.per_address.rate, limits.per_address.burst) == (20, 40)
    text = FIXTURE.read_text().replace(
        "  api:\n", "  api:\n    rate_limit:\n      per_key: {rate: 0.5, burst: 2}\n", 1)
    cfg = parse_config(text + USERS, str(FIXTURE), ENV)
    assert cfg.engine.api.rate_limit.per_key.burst == 2
    assert cfg.engine.api.rate_limit.per_address.burst == 40


# ---------------------------------------------------------------- over HTTP

def assert_throttled(reply) -> int:
    assert_problem(reply, 429)
    seconds = int(reply.headers["retry-after"])
    assert seconds >= 1
    return seconds


async def test_wrong_keys_from_one_address_are_throttled_before_auth(api):
    statuses = [(await api.post(PLAN, {"connectivity": 0.5}, key=f"guess-{i}")).status
                for i in range(300)]
    assert statuses[:40] == [401] * 40  # the per-address burst
    assert set(statuses[40:]) == {429}
    # even the right key waits: the address is over its limit whoever it claims to be
    assert_throttled(await api.post(PLAN, {"connectivity": 0.5}, key=KEYS["staff"]))
    api.clock.now += 1
    assert (await api.post(PLAN, {"connectivity": 0.5}, key=KEYS["staff"])).status == 201


async def test_devices_share_the_address_limit(api):
    for _ in range(40):
        await api.post("/v1/devices", {"app": "ghost"}, key="x")
    assert_throttled(await api.post("/v1/devices", {"app": "customer"}, key="x"))


async def test_one_key_is_throttled_after_its_burst_others_are_not(api):
    statuses = [(await api.post(PLAN, {"connectivity": 0.5}, key=KEYS["staff"])).status
                for _ in range(21)]
    assert statuses == [201] * 20 + [429]  # the key's burst (20) ends before the address's
    reply = await api.post(PLAN, {"connectivity": 0.5}, key=KEYS["staff"])
    assert assert_throttled(reply) == 1  # 10/s: the next token within a second
    assert "api key" in reply.json()["detail"]
    # the per-key limit counts one app's key across calls and devices
    assert_throttled(await api.post("/v1/devices", {"app": "staff", "user": "sam",
                                                    "platform": "android", "push_token": "t"},
                                    key=KEYS["staff"]))
    customer = await api.post("/v1/apps/customer/calls", {"connectivity": 0.5},
                              key=KEYS["customer"])
    assert customer.status == 201
    api.clock.now += 1
    assert (await api.post(PLAN, {"connectivity": 0.5}, key=KEYS["staff"])).status == 201


async def test_admin_and_health_routes_are_not_rate_limited(api):
    for _ in range(60):
        assert (await api.raw("GET", "/v1/health")).status == 200
        assert (await api.raw("GET", "/v1/calls/none")).status == 401
