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
    assert (limits.per_address.rate, limits.per_address.burst) == (20, 40)
    assert (limits.failed_credentials.rate, limits.failed_credentials.burst) == (1, 30)
    assert (limits.per_user.rate, limits.per_user.burst) == (10, 20)
    assert (limits.per_client.rate, limits.per_client.burst) == (10, 20)
    assert (limits.per_app.rate, limits.per_app.burst) == (200, 400)
    text = FIXTURE.read_text().replace(
        "  api:\n", "  api:\n    rate_limit:\n      per_user: {rate: 0.5, burst: 2}\n", 1)
    cfg = parse_config(text + USERS, str(FIXTURE), ENV)
    assert cfg.engine.api.rate_limit.per_user.burst == 2
    assert cfg.engine.api.rate_limit.per_address.burst == 40
    # per_key (before 0.2: one bucket per app key) is read as per_client
    old = FIXTURE.read_text().replace(
        "  api:\n", "  api:\n    rate_limit:\n      per_key: {rate: 3, burst: 7}\n", 1)
    assert parse_config(old + USERS, str(FIXTURE), ENV).engine.api.rate_limit.per_client \
        .burst == 7


def with_limits(api, **limits: dict) -> object:
    """The fixture's config with these rate limits."""
    extra = "".join(f"      {name}: {{rate: {v['rate']}, burst: {v['burst']}}}\n"
                    for name, v in limits.items())
    text = FIXTURE.read_text().replace("  api:\n", "  api:\n    rate_limit:\n" + extra, 1)
    return parse_config(text + USERS, str(FIXTURE), ENV)


# ---------------------------------------------------------------- over HTTP

def assert_throttled(reply) -> int:
    assert_problem(reply, 429)
    seconds = int(reply.headers["retry-after"])
    assert seconds >= 1
    return seconds


async def test_wrong_keys_from_one_address_are_refused_before_any_comparison(api):
    statuses = [(await api.post(PLAN, {"connectivity": 0.5}, key=f"guess-{i}")).status
                for i in range(35)]
    assert statuses[:30] == [401] * 30  # the failed-credentials budget (30)
    assert set(statuses[30:]) == {429}
    # the right key waits too: nothing is compared for this address until its budget refills
    reply = await api.post(PLAN, {"connectivity": 0.5}, key=KEYS["staff"])
    assert_throttled(reply)
    assert "failed credentials" in reply.json()["detail"]
    # another address is not concerned
    other = await api.post(PLAN, {"connectivity": 0.5}, key=KEYS["staff"], source="127.0.0.2")
    assert other.status == 201
    api.clock.now += 1
    assert (await api.post(PLAN, {"connectivity": 0.5}, key=KEYS["staff"])).status == 201


async def test_every_route_is_throttled_per_address(api):
    """Issue 16: admin and public routes were not throttled (a wrong admin token could be
    tried 600-1 100 times a second)."""
    for target in ("/v1/health", "/v1/calls/none", "/l/customer/install"):
        statuses = [(await api.raw("GET", target)).status for _ in range(41)]
        assert statuses[-1] == 429 and 429 not in statuses[:40], (target, statuses)
        api.refill()
    statuses = [(await api.raw("GET", "/v1/calls/none", [
        ("Authorization", f"Bearer guess-{i}".encode())])).status for i in range(40)]
    assert statuses.count(401) == 30 and set(statuses[30:]) == {429}


async def test_one_client_of_an_app_key_cannot_spend_another_clients_budget(api):
    """Issue 16: the per-key limit was one bucket per app, and the key ships in every copy
    of the app: one client at 15 requests/s made another user's requests answer 429."""
    statuses = [(await api.post(PLAN, {"connectivity": 0.5}, key=KEYS["staff"])).status
                for _ in range(21)]
    assert statuses == [201] * 20 + [429]  # this address's budget with the key (20)
    reply = await api.post(PLAN, {"connectivity": 0.5}, key=KEYS["staff"])
    assert assert_throttled(reply) == 1  # 10/s: the next token within a second
    assert "app key from this address" in reply.json()["detail"]
    for source in ("127.0.0.2", "127.0.0.3"):  # other phones with the same app
        r = await api.post(PLAN, {"connectivity": 0.5}, key=KEYS["staff"], source=source)
        assert r.status == 201
    api.clock.now += 1
    assert (await api.post(PLAN, {"connectivity": 0.5}, key=KEYS["staff"])).status == 201


async def test_each_user_has_a_budget_of_their_own(api):
    alice, bob = await api.login("customer", "alice"), await api.login("customer", "bob")
    plan = "/v1/apps/customer/calls"
    statuses = [(await api.post(plan, {"connectivity": 0.9}, key=alice)).status
                for _ in range(21)]
    assert statuses == [201] * 20 + [429]
    reply = await api.post(plan, {"connectivity": 0.9}, key=alice)
    assert "for this user" in reply.json()["detail"]
    # bob, at the same address, is not throttled by alice
    assert (await api.post(plan, {"connectivity": 0.9}, key=bob)).status == 201


async def test_an_apps_ceiling_holds_over_all_its_clients(api):
    cfg = with_limits(api, per_app={"rate": 1, "burst": 5})
    await api.rebuild(config=lambda: cfg)
    statuses = [(await api.post(PLAN, {"connectivity": 0.5}, key=KEYS["staff"],
                                source=f"127.0.0.{10 + i}")).status for i in range(6)]
    assert statuses == [201] * 5 + [429]
    reply = await api.post(PLAN, {"connectivity": 0.5}, key=KEYS["staff"], source="127.0.0.99")
    assert "for this app" in reply.json()["detail"]
    customer = await api.post("/v1/apps/customer/calls", {"connectivity": 0.5},
                              key=KEYS["customer"])
    assert customer.status == 201  # another app has its own ceiling
