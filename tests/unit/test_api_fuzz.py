"""Property: whatever a client sends to any route, the API never answers 5xx, and every error
is a complete problem document (429s with Retry-After).

Routes come from the app's router, so a new route is fuzzed without touching this file.
Requests stay within what aiohttp's HTTP parser accepts (header values of visible ASCII,
obs-text 0x80-0xFF, space and tab; request lines under 8 KiB): the parser answers anything
else itself, before the application sees it (``test_api_hostile_input.py`` covers that). The
rate-limit clock moves by a drawn step and some examples start from emptied buckets, so some
are throttled and most are not.

With valid credentials (an app key, the admin token, alice's session, an SMS provider's
callback token) the properties also reach the handlers and the store: every route's query
parameters (the routes that declare a ``query`` model, from its fields), bodies of the routes
that read JSON (SendSMS and delivery reports included), path parameters; NUL, control
characters and lone surrogates are drawn on purpose (PostgreSQL cannot store NUL). The
``api`` fixture runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr_engine.api.routes import spec_of
from ivr_engine.config import parse_config

from .test_api_harness import (  # noqa: F401 - api_fixture: the api fixture
    ADMIN_TOKEN,
    ENDED_CALL,
    ENV,
    FIXTURE,
    KEYS,
    USERS,
    api_fixture,
    assert_problem,
)

FUZZ = settings(max_examples=1200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])
BODIES = settings(FUZZ, max_examples=300)
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
STATS: Counter = Counter()  # requests and 5xx over the whole module, for the report
FIVE_XX: list[str] = []  # the requests that answered 5xx (a property stops at its first)
CALLBACK = "fuzz-callback-token-000000000000000000000"
SMS = f"""
sms:
  providers:
    - {{name: gw, type: url-post, url: "http://127.0.0.1:9/gw", params: {{to: "{{to}}",
       text: "{{text}}"}}, default: true, status_callback_url: "https://ivr.example",
       callback_token: {CALLBACK}, inbound: true}}
    - {{name: ib, type: infobip, url: "http://127.0.0.1:9", password: k,
       status_callback_url: "https://ivr.example", callback_token: {CALLBACK}, inbound: true}}
    - {{name: vg, type: vonage, user: k, password: p, status_callback_url: "https://ivr.example",
       callback_token: {CALLBACK}, inbound: true}}
  dialers: {{d: {{provider: gw}}}}
  campaigns: {{c1: {{dialer: d}}}}
"""


@pytest.fixture(name="fuzzed")
async def fuzzed_fixture(api):
    """The API with SMS providers (reports with their callback token) and a campaign, so
    SendSMS, uploads and delivery reports reach the store."""
    cfg = parse_config(FIXTURE.read_text() + USERS + SMS, str(FIXTURE), ENV)
    await api.rebuild(config=lambda: cfg)
    return api


# ---------------------------------------------------------------- requests

def header_bytes(raw: bytes) -> bytes:
    """Map arbitrary bytes onto those a header value may carry (VCHAR, obs-text, SP, HTAB);
    the value never starts or ends with whitespace (the parser would strip it)."""
    out = bytes(b if b == 9 or 0x20 <= b <= 0x7E or b >= 0x80 else 0x21 for b in raw)
    return out.strip(b" \t") or b"x"


names = st.sampled_from(["customer", "staff", "legacy", "nope", ENDED_CALL, "", "..", "é",
                         "c1", "ib", "vg", "gw", "sales", "1", CALLBACK])
path_params = st.one_of(
    names.map(lambda s: quote_from_bytes(s.encode(), safe="")),
    st.binary(max_size=1200).map(lambda b: quote_from_bytes(b, safe="")),
    st.text(max_size=200).map(lambda s: quote_from_bytes(s.encode("utf-8", "surrogatepass"),
                                                         safe="")),
    st.sampled_from(["%zz", "%", "%ED%A0%80", "%00", "%2F", "a%2Fb", "%FF%FE", "%C0%AF",
                     "..%2F..", "a" * 2500, "%F0%9F%98%80", "%u0041", "c1%00", "a%01b",
                     "%7F", "1%00"]),
)
SESSION = "<alice's session>"  # replaced by a session token of alice (customer) when sent
keys = [ADMIN_TOKEN, *KEYS.values(), SESSION]
authorization = st.one_of(
    st.none(),
    st.sampled_from(keys).map(lambda k: b"Bearer " + k.encode()),
    st.sampled_from([b"Bearer", b"Bearer  x", b"bearer " + keys[1].encode(),
                     b"Basic " + keys[1].encode(), keys[0].encode()]),
    st.binary(max_size=80).map(lambda b: b"Bearer " + header_bytes(b)),
    st.binary(min_size=1, max_size=80).map(header_bytes),
    st.text(max_size=40).map(lambda s: b"Bearer " + header_bytes(s.encode("latin-1", "replace"))),
)
content_type = st.one_of(
    st.none(),
    st.sampled_from([b"application/json", b"application/json; charset=utf-8",
                     b"application/json; charset=UTF-8", b"application/json; charset=x-nope",
                     b"application/json; charset=latin-1", b"application/json;charset",
                     b"text/plain", b"application/problem+json", b";;=;",
                     b'application/json; charset="utf-8"; q=1']),
    st.binary(min_size=1, max_size=60).map(header_bytes),
    st.binary(max_size=30).map(lambda b: b"application/json; charset=" + header_bytes(b)),
)

# ---------------------------------------------------------------- bodies

hostile_numbers = st.one_of(
    st.integers(), st.integers(min_value=10 ** 300, max_value=10 ** 4000),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, -0.0, 5e-324]),
)
hostile_text = st.one_of(st.text(max_size=60), st.sampled_from(["\ud800", "a\udfff", "\x00",
                                                                  "+15551230000", "x" * 600,
                                                                  "a\x00b", "\x01\x7f"]))
hostile_values = st.recursive(
    st.one_of(st.none(), st.booleans(), hostile_numbers, hostile_text),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(hostile_text, inner, max_size=4)),
    max_leaves=12,
)
plan_body = st.fixed_dictionaries({}, optional={
    "connectivity": st.one_of(hostile_numbers, st.floats(0, 1), hostile_values),
    "caller": hostile_text, "language": st.one_of(st.sampled_from(["en", "fr"]), hostile_text),
    "data_path": st.one_of(st.booleans(), hostile_values),
    "custom_data": st.one_of(st.dictionaries(st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,8}",
                                                           fullmatch=True), hostile_values,
                                             max_size=25), hostile_values),
})
device_body = st.fixed_dictionaries({}, optional={
    "app": st.one_of(names, hostile_text), "user": st.one_of(st.sampled_from(["alice", "sam"]),
                                                             hostile_text),
    "platform": st.one_of(st.sampled_from(["ios", "android"]), hostile_values),
    "push_token": hostile_text, "voip_token": hostile_text, "app_version": hostile_values,
    "os_version": hostile_text, "model": hostile_text,
})
# near-valid bodies, so that examples get past validation into the store with odd text
printable = st.characters(exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"))
simple_values = st.one_of(st.booleans(), st.integers(-10 ** 30, 10 ** 30),
                          st.text(printable, max_size=40),
                          st.floats(allow_nan=False, allow_infinity=False))
plausible_plan = st.fixed_dictionaries({
    "connectivity": st.floats(0, 1), "caller": st.text(printable, max_size=32),
}, optional={
    "language": st.text(printable, max_size=16), "data_path": st.booleans(),
    "custom_data": st.dictionaries(st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,31}", fullmatch=True),
                                   simple_values, max_size=20),
})
plausible_device = st.fixed_dictionaries({
    "app": st.sampled_from(["customer", "staff"]), "user": st.sampled_from(["alice", "sam"]),
    "platform": st.sampled_from(["ios", "android"]), "push_token": st.text(printable, max_size=520),
}, optional={"voip_token": st.text(printable, max_size=520), "app_version": st.text(max_size=20),
             "os_version": st.text(printable, max_size=20), "model": st.text(max_size=20)})
transfer_body = st.fixed_dictionaries({"to": st.one_of(
    st.sampled_from(["queue:sales", "queue:support", "endpoint:bob", "voicemail:1"]),
    hostile_values)})
push_test_body = st.fixed_dictionaries({}, optional={
    "app": st.one_of(names, hostile_values), "user": st.one_of(st.sampled_from(["alice", "sam"]),
                                                               hostile_values)})


with_nul = st.builds(lambda a, b: a + "\x00" + b, st.text(printable, max_size=20),
                    st.text(printable, max_size=20))
sms_text = st.one_of(st.text(printable, min_size=1, max_size=80), with_nul, hostile_text)
send_sms_body = st.fixed_dictionaries({
    "destination": st.one_of(st.sampled_from(["+15550001111", "+447700900123"]), sms_text),
    "message": sms_text,
}, optional={"campaign": st.one_of(st.just("c1"), sms_text), "agent": sms_text,
             "provider": st.one_of(st.sampled_from(["gw", "ib"]), sms_text),
             "wait_seconds": st.one_of(st.just(0), hostile_numbers)})
infobip_report = st.fixed_dictionaries({"results": st.lists(st.fixed_dictionaries({
    "messageId": sms_text, "status": st.fixed_dictionaries({"groupName": sms_text})}),
    max_size=3)})
vonage_report = st.fixed_dictionaries({"messageId": sms_text, "status": sms_text},
                                      optional={"client-ref": sms_text})


def encode(value: object, ascii_only: bool) -> bytes:
    """JSON text; with ascii_only=False, lone surrogates go out as (invalid) UTF-8 bytes."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


json_bodies = st.builds(encode, st.one_of(plausible_plan, plausible_device, plan_body,
                                          device_body, transfer_body, push_test_body,
                                          send_sms_body, infobip_report, vonage_report,
                                          hostile_values),
                        st.booleans())
bodies = st.one_of(
    st.none(),
    json_bodies,
    st.integers(0, 32_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(0, 20_000).map(lambda n: b'{"connectivity": 0.5, "custom_data": '
                               + b'{"a": ' * n + b"1" + b"}" * n + b"}"),
    st.integers(1, 6000).map(lambda n: b'{"connectivity": ' + b"9" * n + b"}"),
    st.sampled_from([b"", b"[]", b"null", b"NaN", b'{"connectivity": NaN}', b"{" * 5,
                     b'{"connectivity": 1e400}', b'{"\\ud800": 1}', b"\xef\xbb\xbf{}",
                     b" " * 70_000]),
    st.binary(max_size=300),
)
clock_steps = st.sampled_from([0.0, 0.0, 0.01, 1.0, 100.0])
floods = st.sampled_from([None] * 6 + ["address", "key", "user", "app", "failures"])


def flood(api, which: str | None) -> None:
    """Empty the buckets a flood would have emptied (cheaper than sending the flood)."""
    limits = api.parts.config().engine.api.rate_limit
    targets = {"address": [("addr|127.0.0.1", limits.per_address)],
               "key": [(f"client|{app}|127.0.0.1", limits.per_client) for app in KEYS],
               "user": [("user|customer|alice", limits.per_user)],
               "app": [(f"app|{app}", limits.per_app) for app in KEYS],
               "failures": [("fail|127.0.0.1", limits.failed_credentials)]}
    for key, limit in targets.get(which, []):
        while api.parts.buckets.take(key, limit.rate, limit.burst) == 0:
            pass


async def with_session(api, auth: bytes | None) -> bytes | None:
    """``auth`` with the session placeholder replaced by a live session of alice."""
    if auth is None or SESSION.encode() not in auth:
        return auth
    if getattr(api, "session", None) is None:
        api.clock.now += 3600  # the login itself must not be throttled
        api.session = await api.login("customer", "alice")
    return auth.replace(SESSION.encode(), api.session.encode())


# ---------------------------------------------------------------- the properties

async def send_and_check(api, method: str, target: str, auth: bytes | None,
                         ctype: bytes | None, body: bytes | None, step: float) -> None:
    api.clock.now += step
    auth = await with_session(api, auth)
    headers = [("Authorization", auth)] if auth is not None else []
    if ctype is not None:
        headers.append(("Content-Type", ctype))
    reply = await api.raw(method, target, headers, body)
    STATS["requests"] += 1
    STATS[reply.status] += 1
    if reply.status == 503 and api.parts.queues is None and target.startswith("/v1/queues/"):
        # the harness follows no queue (no AMI): a request that gets through the door to a
        # queue of the app's own tree gets the route's documented 503, a problem document
        assert method == "HEAD" or reply.json()["title"] == "Queues not followed"
        STATS["queues not followed"] += 1
        return
    STATS["5xx"] += reply.status >= 500
    if reply.status >= 500:
        FIVE_XX.append(f"{method} {target[:70]} {body[:60] if body else b''!r}")
    assert reply.status < 500, (method, target, reply.status, reply.body[:300])
    if reply.status >= 400:
        if method == "HEAD":  # no body: the media type must still say problem+json
            assert reply.headers["content-type"].startswith("application/problem+json")
        else:
            assert_problem(reply)
    if reply.status == 429:
        assert int(reply.headers["retry-after"]) >= 1


def route_table(api) -> list[tuple[str, str]]:
    return sorted({(r.method, r.resource.canonical) for r in api.server.app.router.routes()})


def fill(canonical: str, draw) -> str:
    return re.sub(r"\{[^}]+\}", lambda _: draw(path_params), canonical)


@FUZZ
@given(data=st.data(), auth=authorization, ctype=content_type, body=bodies, step=clock_steps,
       flooded=floods)
async def test_every_route_answers_4xx_problems_never_5xx(fuzzed, data, auth, ctype, body, step,
                                                          flooded):
    api = fuzzed
    routes = route_table(api)
    method, canonical = data.draw(st.sampled_from(routes))
    method = data.draw(st.sampled_from([method] * 12 + ["GET", "PUT", "DELETE", "PATCH"]))
    STATS[f"{method} {canonical}"] += 1
    flood(api, flooded)
    await send_and_check(api, method, fill(canonical, data.draw), auth, ctype, body, step)


def right_key(route: str, body: bytes) -> str:
    """The credential that opens ``route``."""
    if "transfer" in route or route.startswith(("/v1/admin/", "/v1/sms", "/v1/reports/",
                                                "/v1/calls/")):
        return ADMIN_TOKEN
    if route in ("/v1/devices", "/v1/apps/customer/sessions/current"):
        return SESSION
    return KEYS["staff" if "staff" in route else "customer"]


@BODIES
@given(route=st.sampled_from(["/v1/apps/customer/calls", "/v1/apps/staff/calls",
                              "/v1/devices", f"/v1/calls/{ENDED_CALL}/transfer",
                              "/v1/admin/push-test", "/v1/apps/customer/sessions",
                              "/v1/sms", f"/v1/sms/reports/ib/{CALLBACK}",
                              f"/v1/sms/reports/vg/{CALLBACK}", "/v1/sms/app-links",
                              f"/v1/sms/inbound/ib/{CALLBACK}",
                              f"/v1/sms/inbound/vg/{CALLBACK}",
                              f"/v1/sms/inbound/gw/{CALLBACK}"]),
       body=st.one_of(json_bodies, bodies.filter(lambda b: b is not None)), step=clock_steps)
async def test_well_authenticated_hostile_bodies_are_4xx_problems(fuzzed, route, body, step):
    """Past the doors, with the right key and media type: the handlers' own validation and
    the store. The clock moves at least a second: these examples are not about throttling."""
    await send_and_check(fuzzed, "POST", route, b"Bearer " + right_key(route, body).encode(),
                         b"application/json", body, max(step, 1.0))


unstorable = st.one_of(with_nul, st.sampled_from(["\x00", "a\x00", "\x01", "x\x7f", "\ud800",
                                                  "\x1b[31m"]))
nul_escape = st.sampled_from(["%00", "a%00b", "c1%00", "%01", "%1B", "%7F", "%ED%A0%80"])


@BODIES
@given(data=st.data(), step=clock_steps)
async def test_text_that_reaches_the_store_refuses_nul_and_controls(fuzzed, data, step):
    """Text bound for a database column, with the credential that gets it there: NUL,
    control characters and lone surrogates in SendSMS fields, custom data, device fields
    and path parameters (PostgreSQL cannot store NUL: these answered 500 there)."""
    kind = data.draw(st.sampled_from(["sms", "plan", "device", "path"]))
    if kind == "path":
        method, template = data.draw(st.sampled_from([
            ("DELETE", "/v1/sms/campaigns/{}/unprocessed"), ("GET", "/v1/sms/messages/{}"),
            ("GET", "/v1/calls/{}"), ("GET", "/v1/admin/apps/{}/sessions"),
            ("POST", "/v1/sms/dialers/{}/start"), ("GET", "/v1/admin/releases/{}/notices")]))
        target = template.format(data.draw(nul_escape))
        await send_and_check(fuzzed, method, target, b"Bearer " + ADMIN_TOKEN.encode(),
                             None, None, max(step, 1.0))
        return
    field = data.draw(st.sampled_from({"sms": ["message", "agent", "campaign", "destination"],
                                       "plan": ["caller", "custom_data", "language"],
                                       "device": ["push_token", "model", "os_version"]}[kind]))
    text = data.draw(unstorable)
    if kind == "sms":
        body = {"destination": "+15550001111", "message": "hi", field: text}
        route, key = "/v1/sms", ADMIN_TOKEN
    elif kind == "plan":
        body = {"connectivity": 0.1, field: {"k": text} if field == "custom_data" else text}
        route, key = "/v1/apps/customer/calls", KEYS["customer"]
    else:
        body = {"user": "alice", "platform": "android", "push_token": "t" * 40, field: text}
        route, key = "/v1/devices", SESSION
    await send_and_check(fuzzed, "POST", route, b"Bearer " + key.encode(),
                         b"application/json", encode(body, data.draw(st.booleans())),
                         max(step, 1.0))


def query_routes(api) -> list[tuple[str, str, list[str]]]:
    """(method, path template, parameter names) of every route with a ``query`` model."""
    out = set()
    for r in api.server.app.router.routes():
        spec = spec_of(r.handler)
        if spec is not None and spec.query is not None and r.method != "HEAD":
            names = tuple(f.alias or n for n, f in spec.query.model_fields.items())
            out.add((r.method, r.resource.canonical, names))
    return sorted((m, p, list(n)) for m, p, n in out)


query_values = st.one_of(
    st.sampled_from(["", "0001-01-01", "0001-01-01T00:00:00+01:00", "9999-12-31",
                     "9999-12-31T23:59:59-01:00", "1969-12-31T23:59:59Z", "2026-02-30",
                     "2026-01-01T25:00:00", "2026-01-01T00:00:00+99:00", "1e400", "NaN",
                     "alice", "customer", "ivr", "in-app", "fr", "pt_BR", "x" * 1025,
                     "%00", "a%00b", "%01", "%ED%A0%80", "%FF", "%zz", "%2B", "+", "%20"]),
    st.text(max_size=40).map(lambda t: quote_from_bytes(t.encode("utf-8", "surrogatepass"),
                                                        safe="")),
    st.binary(max_size=40).map(lambda b: quote_from_bytes(b, safe="")),
)


@BODIES
@given(data=st.data(), step=clock_steps)
async def test_well_authenticated_query_parameters_are_4xx_problems(fuzzed, data, step):
    """Every route that reads query parameters, with the right credential: each declared
    parameter drawn from hostile values (dates out of range, NUL, bad escapes), sometimes
    repeated, sometimes unknown."""
    method, canonical, params = data.draw(st.sampled_from(query_routes(fuzzed)))
    STATS[f"query {method} {canonical}"] += 1
    pairs = data.draw(st.lists(st.tuples(st.one_of(st.sampled_from(params),
                                                   st.sampled_from(["nope", "%00", "x[]"])),
                                         query_values), max_size=4))
    target = fill(canonical, lambda _: quote_from_bytes(data.draw(names).encode(), safe="")) + \
        "?" + "&".join(
        f"{k}={v}" for k, v in pairs)
    key = KEYS["customer"] if canonical.startswith("/v1/apps/") else ADMIN_TOKEN
    await send_and_check(fuzzed, method, target, b"Bearer " + key.encode(), None, None,
                         max(step, 1.0))


async def test_every_route_was_fuzzed_and_nothing_answered_5xx(fuzzed):
    """Runs after the properties (file order): the route table was covered (the routes with
    query parameters with valid credentials too), with zero 5xx. A route the draws happened
    to miss (Hypothesis does not draw uniformly) gets its requests now, one per credential;
    a query route, three with hostile values in every parameter."""
    api = fuzzed
    assert STATS["requests"], "this test summarises the property tests above: run the module"
    for method, canonical in route_table(api):
        if method != "HEAD" and not STATS[f"{method} {canonical}"]:
            for key in keys:
                api.refill()
                STATS[f"{method} {canonical}"] += 1
                await send_and_check(api, method, fill(canonical, lambda _: "customer"),
                                     b"Bearer " + key.encode(), b"application/json", b"{}", 1.0)
    statuses = sorted((k, v) for k, v in STATS.items() if isinstance(k, int))
    print(f"\nfuzz: {STATS['requests']} requests, {STATS['5xx']} answered 5xx; by status: "
          + ", ".join(f"{status}: {n}" for status, n in statuses))
    for method, canonical, params in query_routes(api):
        if not STATS[f"query {method} {canonical}"]:  # missed by the draws: hostile values now
            key = KEYS["customer"] if canonical.startswith("/v1/apps/") else ADMIN_TOKEN
            for value in ("%00", "9999-12-31T23:59:59-01:00", "x" * 1025):
                api.refill()
                STATS[f"query {method} {canonical}"] += 1
                target = fill(canonical, lambda _: "customer") + "?" + "&".join(
                    f"{name}={value}" for name in params)
                await send_and_check(api, method, target, b"Bearer " + key.encode(), None,
                                     None, 1.0)
        assert STATS[f"query {method} {canonical}"] > 0, (method, canonical)
    assert STATS["requests"] >= 1500 and STATS["5xx"] == 0, "\n".join(FIVE_XX)
