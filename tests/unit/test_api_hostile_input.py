"""Inputs that answered 500 (found by fuzzing with valid credentials, issue 16) now answer a
4xx problem on both backends, and no log line or metric label carries a provider's callback
token: a CSV line over 512 KiB, a delivery report nested 30 000 deep, a NUL in any text that
reaches the database (PostgreSQL cannot store it: body fields, path parameters), headers
over 8 190 bytes and bad bytes in the request line (answered by aiohttp's parser before any
middleware), and an unexpected failure on the report route."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.engine import make_url

from ivr_engine.config import parse_config
from ivr_engine.repositories import Store

from .test_api_harness import (  # noqa: F401 - api_fixture: the api fixture
    ADMIN_TOKEN,
    ENV,
    FIXTURE,
    KEYS,
    USERS,
    api_fixture,
    assert_problem,
)

ADMIN = [("Authorization", b"Bearer " + ADMIN_TOKEN.encode())]
TOKEN = "infobip-report-token-0f3c9a51e7d24b88a6"
REPORT = f"/v1/sms/reports/ib/{TOKEN}"
SMS = f"""
sms:
  providers:
    - name: ib
      type: infobip
      url: http://127.0.0.1:9
      password: infobip-key
      status_callback_url: https://ivr.example
      callback_token: {TOKEN}
  dialers: {{d: {{provider: ib}}}}
  campaigns: {{c1: {{dialer: d}}}}
"""


@pytest.fixture
async def sms_api(api):
    """The API with an SMS provider (its delivery reports) and a campaign."""
    cfg = parse_config(FIXTURE.read_text() + USERS + SMS, str(FIXTURE), ENV)
    await api.rebuild(config=lambda: cfg)
    return api


def no_secret_logged(caplog) -> None:
    text = caplog.text + "".join(str(r.exc_info) for r in caplog.records)
    assert TOKEN not in text and TOKEN[:20] not in text, text[-2000:]


# ---------------------------------------------------------------- were 500s

async def test_delivery_report_nested_30000_deep_is_422(sms_api, caplog):
    body = b'{"results": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    with caplog.at_level(logging.INFO):
        doc = assert_problem(await sms_api.post(REPORT, body), 422)
    assert "deeper than 32 levels" in doc["detail"]
    no_secret_logged(caplog)


async def test_csv_line_over_1_mib_is_422(sms_api):
    line = b"c1;+15550001111;" + b"x" * (1100 * 1024) + b";1\n"
    r = await sms_api.raw("POST", "/v1/sms/uploads", ADMIN + [("Content-Type", b"text/csv")],
                          b"c1;+15550001111;hi;1\n" + line)
    doc = assert_problem(r, 422)
    assert "nothing was imported" in doc["detail"]
    assert [e["line"] for e in doc["errors"]] == [2], doc
    assert "longer than" in doc["errors"][0]["reason"], doc


@pytest.mark.parametrize("query", ["to=0001-01-01", "from=0001-01-01T00:00:00%2B01:00",
                                   "to=9999-12-31T23:59:59-01:00"])
async def test_report_dates_out_of_range_are_422(api, query):
    r = await api.raw("GET", f"/v1/reports/logins?{query}", ADMIN)
    assert assert_problem(r, 422)["field"] in ("from", "to")


async def test_nul_in_a_body_field_is_422_naming_it(sms_api):
    r = await sms_api.post("/v1/sms", {"destination": "+15550001111", "message": "a\x00b",
                                       "campaign": "c1"}, key=ADMIN_TOKEN)
    doc = assert_problem(r, 422)
    assert doc["field"] == "message" and "NUL" in doc["detail"]
    r = await sms_api.post("/v1/apps/customer/calls", {"connectivity": 0.9, "custom_data": {
        "ok": "x", "k\x00": "v"}}, key=KEYS["customer"])
    assert assert_problem(r, 422)["field"] == "custom_data"
    r = await sms_api.post("/v1/apps/customer/calls", {"connectivity": 0.9, "custom_data": {
        "tags": ["a", "b\x00"]}}, key=KEYS["customer"])
    assert assert_problem(r, 422)["field"] == "custom_data.tags[1]"


@pytest.mark.parametrize("method, path, field", [
    ("DELETE", "/v1/sms/campaigns/a%00b/unprocessed", "campaign"),
    ("GET", "/v1/sms/messages/1%00", "id"),
    ("GET", "/v1/calls/call%00x", "call_id"),
    ("POST", "/v1/sms/dialers/d%01/start", "name"),
    ("GET", "/v1/admin/apps/cust%00omer/sessions", "app"),
])
async def test_nul_or_control_character_in_a_path_parameter_is_422_naming_it(
        sms_api, method, path, field):
    r = await sms_api.raw(method, path, ADMIN)
    assert assert_problem(r, 422)["field"] == field


async def test_path_parameters_are_checked_after_the_credential(sms_api):
    assert_problem(await sms_api.raw("DELETE", "/v1/sms/campaigns/a%00b/unprocessed"), 401)


# ---------------------------------------------------------------- what aiohttp's parser refuses

@pytest.mark.parametrize("head, status", [
    ([("X-Big", b"a" * 9000)], 431),
    ([("Authorization", b"Bearer " + b"k" * 8200)], 431),
    ([("Bad Name", b"x")], 400),
])
async def test_bad_headers_answer_problems_without_traceback(api, caplog, head, status):
    with caplog.at_level(logging.DEBUG):
        r = await api.raw("GET", "/healthz", head)
    assert_problem(r, status)
    assert not [x for x in caplog.records if x.exc_info or x.levelno >= logging.ERROR], \
        caplog.text


@pytest.mark.parametrize("target", ["/heal\x01thz", "/v1/apps/\x7f/calls", "/" + "a" * 9000])
async def test_bad_request_lines_answer_problems_without_traceback(api, caplog, target):
    with caplog.at_level(logging.DEBUG):
        r = await api.raw("GET", target)
    assert_problem(r, 431 if len(target) > 8000 else 400)
    assert not [x for x in caplog.records if x.exc_info or x.levelno >= logging.ERROR]


async def test_a_report_with_a_bad_byte_after_its_token_logs_no_token(sms_api, caplog):
    with caplog.at_level(logging.DEBUG):
        r = await sms_api.raw("POST", f"{REPORT}/\x01", body=b"{}")
    assert_problem(r, 400)
    assert TOKEN not in r.body.decode()  # the parser's own page quoted the request line
    no_secret_logged(caplog)


# ---------------------------------------------------------------- the token in logs and metrics

async def test_a_failure_on_the_report_route_logs_no_token(sms_api, caplog, db_url):
    """The database cannot be opened: the report answers a logged 503 (SQLite's error is
    operational; asyncpg's refused connection a plain OSError raised through SQLAlchemy's
    pool) whose line names the route with the token written ***."""
    url = make_url(db_url)
    gone = url.set(port=9) if url.get_backend_name() == "postgresql" else \
        url.set(database="/nonexistent-directory/ivr.db")
    store = await Store.open(gone.render_as_string(hide_password=False), check=False)
    await sms_api.rebuild(store=store)
    report = b'{"results": [{"messageId": "k1", "status": {"groupName": "DELIVERED"}}]}'
    with caplog.at_level(logging.INFO):
        r = await sms_api.post(REPORT, report)
    assert_problem(r, 503)
    assert "POST /v1/sms/reports/ib/***" in caplog.text
    no_secret_logged(caplog)


async def test_refused_report_tokens_are_logged_redacted(sms_api, caplog):
    wrong = "wrong-token-but-maybe-an-old-real-one-0000"
    with caplog.at_level(logging.INFO):
        r = await sms_api.post(f"/v1/sms/reports/ib/{wrong}", b"{}")
    assert_problem(r, 401)
    assert "/v1/sms/reports/ib/***" in caplog.text and wrong not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):  # a short one: only its segment is written ***
        assert_problem(await sms_api.post("/v1/sms/reports/ib/v", b"{}"), 401)
    assert "POST /v1/sms/reports/ib/*** from" in caplog.text


async def test_metrics_name_the_report_route_by_its_template(sms_api):
    report = b'{"results": [{"messageId": "k1", "status": {"groupName": "DELIVERED"}}]}'
    assert (await sms_api.post(REPORT, report)).status == 200
    assert (await sms_api.post(f"{REPORT}x", b"{}")).status == 401
    text = (await sms_api.raw("GET", "/metrics")).body.decode()
    assert 'route="/v1/sms/reports/{provider}/{token}"' in text
    assert TOKEN[:20] not in text
