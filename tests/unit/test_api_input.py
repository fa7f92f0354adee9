"""The request-body layer: each input that once made a 500 now gets a clear 4xx problem."""

from __future__ import annotations

import contextlib
import logging
import time

import pytest

from ivr_engine.api.input import (
    MAX_BODY_BYTES,
    MAX_DEPTH,
    check_content_type,
    check_depth,
    parse_object,
)
from ivr_engine.api.problems import Problem

from .test_api_harness import (  # noqa: F401 - api_fixture: the api fixture
    ADMIN_TOKEN,
    ENDED_CALL,
    KEYS,
    api_fixture,
    assert_problem,
)

PLAN = "/v1/apps/staff/calls"
STAFF = KEYS["staff"]


def problem_of(call, *args) -> Problem:
    with pytest.raises(Problem) as exc:
        call(*args)
    return exc.value


# ---------------------------------------------------------------- regressions (were 500s)

async def test_huge_integer_connectivity_is_422(api):
    r = await api.post(PLAN, b'{"connectivity": 1' + b"0" * 400 + b"}", key=STAFF)
    assert assert_problem(r, 422)["field"] == "connectivity"


async def test_lone_surrogate_caller_is_422_naming_the_field(api):
    r = await api.post(PLAN, b'{"connectivity": 0.5, "caller": "\\ud800"}', key=STAFF)
    assert assert_problem(r, 422)["field"] == "caller"


async def test_30000_deep_json_is_400(api):
    deep = b'{"connectivity": 0.5, "custom_data": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    assert len(deep) < MAX_BODY_BYTES
    doc = assert_problem(await api.post(PLAN, deep, key=STAFF), 400)
    assert "deeper than" in doc["detail"]


async def test_4300_digit_integer_is_422(api):
    body = b'{"connectivity": 0.5, "custom_data": {"n": ' + b"7" * 4301 + b"}}"
    assert assert_problem(await api.post(PLAN, body, key=STAFF), 422)["field"] == \
        "custom_data.n"


async def test_unknown_charset_is_415(api):
    r = await api.post(PLAN, {"connectivity": 0.5}, key=STAFF,
                       content_type=b"application/json; charset=x-nope")
    assert_problem(r, 415)


@pytest.mark.parametrize("route", [PLAN, "/v1/devices", "/v1/calls/x",
                                   "/v1/calls/x/transfer"])
async def test_non_utf8_authorization_is_a_wrong_credential(api, route):
    method = "GET" if route == "/v1/calls/x" else "POST"
    for value in (b"Bearer \xff\xfe\x80", b"Bearer " + STAFF.encode() + b"\xe9",
                  b"\xc3\x28 " + STAFF.encode(), "Bearer clé".encode("latin-1")):
        r = await api.raw(method, route, [("Authorization", value),
                                          ("Content-Type", b"application/json")],
                          b'{"app": "staff", "connectivity": 0.5}')
        assert_problem(r, 401)


# ---------------------------------------------------------------- the other limits, end to end

async def test_body_size_limit_is_413_declared_or_chunked(api):
    big = b'{"connectivity": 0.5, "caller": "' + b"1" * MAX_BODY_BYTES + b'"}'
    assert_problem(await api.post(PLAN, big, key=STAFF), 413)
    chunk = b"%x\r\n%s\r\n" % (len(big), big)
    r = await api.raw("POST", PLAN, [("Content-Type", b"application/json"),
                                     ("Authorization", b"Bearer " + STAFF.encode()),
                                     ("Transfer-Encoding", b"chunked")], tail=chunk + b"0\r\n\r\n")
    assert_problem(r, 413)


@pytest.mark.parametrize("content_type", [None, b"text/plain", b"application/json-seq",
                                          b"application/json; charset=latin-1",
                                          b"application/json; charset=\xff"])
async def test_content_type_must_be_json_in_utf8(api, content_type):
    headers = [("Authorization", b"Bearer " + STAFF.encode())]
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    assert_problem(await api.raw("POST", PLAN, headers, b'{"connectivity": 0.5}'), 415)


async def test_accepted_content_types_reach_the_handler(api):
    for ctype in (b"application/json", b"Application/JSON; charset=UTF-8",
                  b'application/json; charset="utf-8"'):
        r = await api.post(PLAN, {"connectivity": 0.5}, key=STAFF, content_type=ctype)
        assert r.status == 201, r.body


@pytest.mark.parametrize("body, status", [
    (b"", 400), (b"[]", 400), (b'"x"', 400), (b"{nope", 400), (b"\xff\xfe{}", 400),
    (b'\xef\xbb\xbf{"connectivity": 0.5}', 400),  # a BOM is not JSON
    (b'{"connectivity": NaN}', 422), (b'{"connectivity": -Infinity}', 422),
    (b'{"connectivity": 1e400}', 422), (b'{"\\udc00": 1}', 422),
    (b'{"connectivity": 0.5, "caller": "\xed\xa0\x80"}', 400),  # encoded surrogate: not UTF-8
])
async def test_bad_bodies_are_4xx_problems(api, body, status):
    assert_problem(await api.post(PLAN, body, key=STAFF), status)


async def test_transfer_goes_through_the_input_layer(api):
    r = await api.post(f"/v1/calls/{ENDED_CALL}/transfer", b'{"to": "\\ud800"}',
                       key=ADMIN_TOKEN)
    assert assert_problem(r, 422)["field"] == "to"
    r = await api.post(f"/v1/calls/{ENDED_CALL}/transfer", {"to": "queue:sales"},
                       key=ADMIN_TOKEN, content_type=b"text/plain")
    assert_problem(r, 415)


async def test_unexpected_errors_are_a_logged_500_problem(api, caplog):
    class BrokenIntents:
        async def active_count(self, app, now):
            raise RuntimeError("database is on fire")

    class BrokenStore:
        intents = BrokenIntents()
        devices = sms = sms_inbound = lifecycle = users = callbacks = None

    await api.rebuild(store=BrokenStore(), lifecycle=api.parts.lifecycle)
    with caplog.at_level(logging.ERROR, "ivr_engine.api"):
        r = await api.post(PLAN, {"connectivity": 0.5}, key=STAFF)
    doc = assert_problem(r, 500)
    assert "fire" not in doc["detail"] and b"Traceback" not in r.body
    assert "database is on fire" in caplog.text


async def test_unknown_route_and_wrong_method_are_problems(api):
    assert_problem(await api.raw("GET", "/v1/nope"), 404)
    r = await api.raw("DELETE", "/v1/health")
    assert_problem(r, 405)
    assert "GET" in r.headers["allow"]


# ---------------------------------------------------------------- the parser, directly

def test_parse_object_names_the_field():
    assert problem_of(parse_object, b'{"a": {"b": [1, "\\ud800"]}}').field == "a.b[1]"
    assert problem_of(parse_object, b'{"a": {"\\ud800x": 1}}').field == "a"
    top = problem_of(parse_object, b'{"\\ud800": 1}')
    assert top.field is None and top.status == 422
    assert problem_of(parse_object, b'{"a": [Infinity]}').field == "a[0]"
    assert problem_of(parse_object, b'{"n": -' + b"9" * 33 + b"}").field == "n"


def test_parse_object_keeps_good_values():
    body = parse_object(b'{"e": "\\ud83d\\ude00", "n": -' + b"9" * 32 + b', "f": 1e308}')
    assert body == {"e": "\U0001F600", "n": -int("9" * 32), "f": 1e308}


def test_depth_limit_counts_brackets_outside_strings_only():
    check_depth("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    check_depth('{"a": "' + "[" * 1000 + '"}')
    check_depth('["\\"[[[[", ' + "[" * (MAX_DEPTH - 1) + "]" * MAX_DEPTH)
    assert problem_of(check_depth, "[" * (MAX_DEPTH + 1)).status == 400
    assert parse_object(("{" + '"a": {' * (MAX_DEPTH - 1) + "}" * MAX_DEPTH).encode())


def test_depth_scan_is_linear_on_hostile_strings():
    for text in ('"\\"' * 30_000, '"' + "\\" * 60_000, '"\\' + '"[' * 30_000):
        start = time.perf_counter()
        with contextlib.suppress(Problem):  # only the time matters here
            check_depth(text)
        assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("header", ["application/json", "APPLICATION/json ; charset=utf-8",
                                    "application/json;foo=bar"])
def test_content_type_accepted(header):
    check_content_type(header)


@pytest.mark.parametrize("header", [None, "", "application/jsonx", "text/json",
                                    "application/json; charset=utf-16", "\udcff",
                                    "application/json; charset=\udcff"])
def test_content_type_refused(header):
    assert problem_of(check_content_type, header).status == 415
