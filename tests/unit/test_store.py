"""The store on SQLite: tokens are single use, and a call finds the intent it matched."""

from __future__ import annotations

import datetime as dt

from ivr_engine.store import Store

NOW = dt.datetime(2026, 11, 23, 17, 0, tzinfo=dt.timezone.utc)


async def test_a_consumed_token_is_found_again_by_its_channel(tmp_path):
    store = await Store.open(f"sqlite:///{tmp_path}/s.db")
    try:
        await store.add_intent(app="a", token="123456", caller="+1555", language="fr",
                               custom_data={"order": "A-42"}, now=NOW, ttl_seconds=180)
        assert await store.intent_for_channel("chan-1") is None
        got = await store.consume_token("a", "123456", NOW, "chan-1")
        assert got is not None and got.custom_data == {"order": "A-42"}
        assert await store.consume_token("a", "123456", NOW, "chan-2") is None  # single use
        again = await store.intent_for_channel("chan-1")
        assert again is not None and again.custom_data == {"order": "A-42"}
        assert await store.intent_for_channel("chan-2") is None
    finally:
        await store.close()
