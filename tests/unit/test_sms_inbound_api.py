"""The inbound SMS routes in the API harness, on SQLite and PostgreSQL: what a proven provider
may still get wrong is a 4xx problem (never a 500), a HEAD never stores a message, a provider
without ``inbound: true`` takes none, a token is never logged, and a text PostgreSQL could
not store (NUL) is stored readable."""

from __future__ import annotations

import json
import logging

import pytest

from ivr_engine.config import parse_config

from .test_api_harness import (  # noqa: F401 - api_fixture: the api fixture
    ADMIN_TOKEN,
    ENV,
    FIXTURE,
    USERS,
    api_fixture,
    assert_problem,
)

TOKEN = "infobip-inbound-token-0f3c9a51e7d24b88a6"
OFF = "vonage-inbound-off-token-00000000000000000"
INBOUND = f"/v1/sms/inbound/ib/{TOKEN}"
SMS = f"""
sms:
  providers:
    - {{name: ib, type: infobip, url: "http://127.0.0.1:9", password: k,
       callback_token: {TOKEN}, inbound: true}}
    - {{name: vg, type: vonage, user: k, password: s, callback_token: {OFF}}}
"""
ADMIN = [("Authorization", b"Bearer " + ADMIN_TOKEN.encode())]


def results(**fields) -> bytes:
    one = {"messageId": "m1", "from": "59899635199", "to": "59829001234", "text": "hola",
           **fields}
    return json.dumps({"results": [one]}).encode()


@pytest.fixture
async def sms_api(api):
    cfg = parse_config(FIXTURE.read_text() + USERS + SMS, str(FIXTURE), ENV)
    await api.rebuild(config=lambda: cfg)
    return api


@pytest.mark.parametrize("body,why", [
    (b"[" * 30_000 + b"]" * 30_000, "nests deeper"),
    (b'{"results": "x"}', "results is missing"),
    (results(messageId="m\x00"), "messageId is not printable"),
    (results(messageId="\ud800"), "messageId"),
    (results(**{"from": 5}), None),  # a number where a string was: read as its digits
    (b"\xff\xfe", "not UTF-8"),
])
async def test_a_proven_provider_sending_nonsense_gets_a_422(sms_api, body, why):
    r = await sms_api.post(INBOUND, body)
    if why is None:
        assert r.status == 200, r.body
        return
    doc = assert_problem(r, 422)
    assert why in doc["detail"]


async def test_nul_in_a_text_is_stored_readable(sms_api):
    r = await sms_api.post(INBOUND, results(text="a\x00b\ud800"))
    assert r.status == 200 and r.json()["stored"] == 1, r.body
    got = (await sms_api.raw("GET", "/v1/admin/sms/inbound", ADMIN)).json()["messages"]
    assert got[0]["text"].startswith("a\ufffdb")


async def test_head_never_stores_and_a_provider_without_inbound_takes_none(sms_api):
    r = await sms_api.raw("HEAD", f"{INBOUND}?results=x")
    assert (r.status, r.headers["allow"]) == (405, "GET")
    r = await sms_api.raw("GET", f"/v1/sms/inbound/vg/{OFF}?msisdn=1&to=2&messageId=m&text=x")
    doc = assert_problem(r, 404)
    assert "takes no inbound messages" in doc["detail"]
    got = (await sms_api.raw("GET", "/v1/admin/sms/inbound", ADMIN)).json()
    assert got["messages"] == []


async def test_tokens_are_never_logged(sms_api, caplog):
    wrong = "wrong-token-but-maybe-an-old-real-one-0000"
    with caplog.at_level(logging.INFO):
        assert_problem(await sms_api.post(f"/v1/sms/inbound/ib/{wrong}", results()), 401)
        assert (await sms_api.post(INBOUND, results(text="STOP"))).status == 200
        assert_problem(await sms_api.post(INBOUND, b"{}"), 422)
    text = caplog.text
    assert "/v1/sms/inbound/ib/***" in text
    assert wrong not in text and TOKEN not in text and TOKEN[:20] not in text


async def test_search_refusals_name_the_parameter(sms_api):
    for query, field in (("to=2026-13-01", "to"), ("number=abc", "number"),
                         ("limit=0", "limit"), ("status=sent", "status")):
        r = await sms_api.raw("GET", f"/v1/admin/sms/inbound?{query}", ADMIN)
        assert assert_problem(r, 422)["field"] == field, query
