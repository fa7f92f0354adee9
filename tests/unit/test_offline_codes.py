"""Offline fallback codes (issue 16): RFC 4226 vectors, the look-ahead window, the login that
hands the secret out, and a code accepted once — also by two calls at once — and never from
an ended session. The SIPp test of a real caller is tests/integration/test_identity_calls.py."""

from __future__ import annotations

import asyncio
import base64

from ivr_engine.lifecycle.offline import OfflineCodes, code_at, matching_counter, parse
from tests.support.identity import assertion

from .test_api_harness import (  # noqa: F401 - api_fixture: the api fixture
    KEYS,
    api_fixture,
)

RFC4226_SECRET = base64.b32encode(b"12345678901234567890").decode()
RFC4226_CODES = ["755224", "287082", "359152", "969429", "338314", "254676", "287922",
                 "162583", "399871", "520489"]  # RFC 4226 appendix D, counters 0..9


def test_rfc_4226_test_vectors():
    assert [code_at(RFC4226_SECRET, c, 6) for c in range(10)] == RFC4226_CODES


def test_the_look_ahead_window():
    s = RFC4226_SECRET
    assert matching_counter(s, RFC4226_CODES[1], 0, 5, 6) == 1
    assert matching_counter(s, RFC4226_CODES[5], 0, 5, 6) == 5  # skipped codes are fine
    assert matching_counter(s, RFC4226_CODES[6], 0, 5, 6) is None  # beyond the look-ahead
    assert matching_counter(s, RFC4226_CODES[3], 3, 5, 6) is None  # used (replay)
    assert matching_counter(s, "000000", 0, 5, 6) is None


def test_parse():
    assert parse("42*12345678") == (42, "12345678")
    for bad in ("4212345678", "*1234", "42*", "4a*1", "42*12*3", "12345678901*1"):
        assert parse(bad) is None, bad


async def test_login_hands_out_the_secret_and_a_code_is_accepted_once(api):
    r = await api.post("/v1/apps/customer/sessions", {
        "assertion": assertion("customer", "alice"),
        "device_id": "d1", "platform": "mobile", "app_type": "Mobile", "app_version": "1",
        "os": "android", "os_version": "14"}, key=KEYS["customer"])
    assert r.status == 201, r.body
    body = r.json()
    offline = body["offline"]
    sid = body["session_id"]
    assert offline["digits"] == 8 and offline["counter"] == 0 and offline["look_ahead"] == 5
    assert offline["dial"] == f"+17144505656,,{sid}*{{code}}#"
    codes = OfflineCodes(api.parts.config, api.parts.store.lifecycle)
    first = code_at(offline["secret"], 1, 8)
    # two calls presenting the same code at the same moment: one is the user's
    got = await asyncio.gather(*(codes.verify("customer", f"{sid}*{first}") for _ in range(5)))
    assert [g.user for g in got if g is not None] == ["alice"]
    assert await codes.verify("customer", f"{sid}*{first}") is None  # replayed
    third = code_at(offline["secret"], 3, 8)  # the app skipped one: still within look-ahead
    assert (await codes.verify("customer", f"{sid}*{third}")).user == "alice"
    assert await codes.verify("staff", f"{sid}*{code_at(offline['secret'], 4, 8)}") is None
    assert await codes.verify("customer", f"{sid + 1}*{code_at(offline['secret'], 4, 8)}") \
        is None  # another session
    assert await codes.verify("customer", f"{sid}*{code_at(offline['secret'], 4, 8)[:6]}") \
        is None  # wrong length
    # a new login ends this session: its codes die with it
    await api.login("customer", "alice")
    assert await codes.verify("customer", f"{sid}*{code_at(offline['secret'], 4, 8)}") is None
