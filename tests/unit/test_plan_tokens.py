"""Call plans made at the same moment never share a token (issue 16): they picked a value
absent from the active set, then inserted it in another transaction, with no unique index —
one caller could land with another user's custom data. Here every plan's first draw is the
same value; the API answers each with its own token, and each token carries its own data."""

from __future__ import annotations

import asyncio
import itertools

from .test_api_harness import (  # noqa: F401 - api_fixture: the api fixture
    KEYS,
    api_fixture,
)


async def test_concurrent_plans_get_distinct_tokens(api):
    counter = itertools.count()

    def randbelow(n: int) -> int:  # the first 40 draws collide, then distinct values
        i = next(counter)
        return 424242 if i < 40 else 100000 + i

    await api.rebuild(randbelow=randbelow)
    replies = await asyncio.gather(*(
        api.post("/v1/apps/customer/calls", {"connectivity": 0.1,
                                             "custom_data": {"who": f"u{i}"}},
                 key=KEYS["customer"], source=f"127.0.1.{i + 1}") for i in range(40)))
    assert [r.status for r in replies] == [201] * 40
    tokens = [r.json()["token"] for r in replies]
    duplicates = len(tokens) - len(set(tokens))
    print(f"\n40 concurrent plans, first draws colliding: {duplicates} duplicate tokens")
    assert duplicates == 0
    import datetime as dt
    now = dt.datetime.now(dt.timezone.utc)
    for i, r in enumerate(replies):  # each token opens its own plan's data
        intent = await api.parts.store.intents.consume_token(
            "customer", r.json()["token"], now, f"chan-{i}")
        assert intent.custom_data == {"who": f"u{i}"}
