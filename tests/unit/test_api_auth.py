"""Authentication first, fail closed: the auth matrix over every route of the OpenAPI document
× every credential, what a 401 reveals, empty and short secrets, constant-time comparison and
unique keys.

The matrix (issue 16): for each operation the document lists, one request per credential —
none, an empty Bearer, a wrong one, another app's key, the app's key, another user's session,
the user's session, the admin token — and, for the login, assertions that are expired,
forged (signed with another secret), ``alg: none`` or replayed. The expected status is the
route's declared security; ``test_auth_matrix`` fails on any 2xx a credential should not get
(and on any route the document lists that the matrix does not know)."""

from __future__ import annotations

import json
import logging
import time

import jwt
import pytest

from ivr_engine.api import auth
from ivr_engine.config import ConfigError, parse_config
from ivr_engine.config.model import ApiSettings, App

from tests.support.identity import assertion

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

APP_CREDENTIALS = ("none", "empty", "wrong", "other app's key", "app key",
                   "other user's session", "session", "admin")
ASSERTIONS = ("expired assertion", "forged assertion", "alg none assertion",
              "replayed assertion")
LOGIN = {"device_id": "d-1", "platform": "mobile", "app_type": "Mobile",
         "app_version": "2.0.0", "os": "android", "os_version": "14"}
CSV = ("text/csv", b"c1;+15550001111;hello;1\n")


def recipes(log_request: str) -> dict[str, tuple]:
    """operationId → (method, path, JSON body | (media type, bytes) | None, {credential:
    the status a credential that opens the route gets} | "public" (200 whatever is
    presented) | a status (public, answered whatever is presented))."""
    admin = lambda status: {"admin": status}  # noqa: E731
    user = {"app key": 201, "session": 201, "other user's session": 201}
    return {
        "health": ("GET", "/v1/health", None, "public"),
        "healthz": ("GET", "/healthz", None, "public"),
        "readyz": ("GET", "/readyz", None, "public"),
        "metrics_text": ("GET", "/metrics", None, "public"),
        "openapi_document": ("GET", "/openapi.json", None, "public"),
        "install_link": ("GET", "/l/customer/install", None, 404),  # sms_links off here
        "open_link": ("GET", "/l/customer/open", None, 404),
        "aasa": ("GET", "/.well-known/apple-app-site-association", None, "public"),
        # the web widget (public): off for every app of this fixture (test_edge_widget.py)
        "widget_page": ("GET", "/w/customer", None, 404),
        "widget_menu": ("GET", "/w/customer/menu", None, 404),
        "widget_preflight": ("OPTIONS", "/w/customer/calls", None, 404),
        "widget_call": ("POST", "/w/customer/calls", {"target": "cust"}, 404),
        "widget_script": ("GET", "/w-static/widget.js", None, "public"),
        "widget_style": ("GET", "/w-static/widget.css", None, "public"),
        "assetlinks": ("GET", "/.well-known/assetlinks.json", None, "public"),
        "plan": ("POST", "/v1/apps/customer/calls", {"connectivity": 0.9}, user),
        "menu": ("GET", "/v1/apps/customer/menu", None,
                 {"app key": 200, "session": 200, "other user's session": 200}),
        # another app's key proves that app, whose tree has no queue "sales": 404
        "queue_status": ("GET", "/v1/queues/sales/status", None,
                         {"app key": 503, "session": 503, "other user's session": 503,
                          "other app's key": 404}),
        "queue_events": ("GET", "/v1/queues/sales/events", None,
                         {"app key": 503, "session": 503, "other user's session": 503,
                          "other app's key": 404}),
        "login": ("POST", "/v1/apps/customer/sessions", "login", {"app key": 201}),
        "logout": ("DELETE", "/v1/apps/customer/sessions/current", None,
                   {"session": 200, "other user's session": 200}),
        "register_device": ("POST", "/v1/devices", {"user": "alice", "platform": "android",
                                                     "push_token": "t" * 40},
                            {"session": 201, "other user's session": 403}),
        "upload": ("PUT", f"/v1/log-requests/{log_request}/upload",
                   ("text/plain", b"log line\n"), {"session": 201,
                                                    "other user's session": 404}),
        "send_logs": ("POST", "/v1/apps/customer/logs", ("text/plain", b"log line\n"),
                      {"session": 201, "other user's session": 201}),
        "reload": ("POST", "/v1/admin/reload", None, admin(200)),
        "list_apps": ("GET", "/v1/admin/apps", None, admin(200)),
        "push_test": ("POST", "/v1/admin/push-test", {"app": "customer", "user": "alice"},
                      admin(200)),
        "get_call": ("GET", f"/v1/calls/{ENDED_CALL}", None, admin(200)),
        "transfer": ("POST", f"/v1/calls/{ENDED_CALL}/transfer", {"to": "queue:sales"},
                     admin(409)),  # allowed, but the call has ended
        "transfer_targets_of": ("GET", f"/v1/calls/{ENDED_CALL}/transfer-targets", None,
                                admin(200)),
        "list_calls": ("GET", "/v1/admin/calls", None, admin(200)),
        "list_callbacks": ("GET", "/v1/callbacks?state=requested", None, admin(200)),
        "get_callback": ("GET", "/v1/callbacks/999", None, admin(404)),
        "claim": ("POST", "/v1/callbacks/999/claim", {"agent": "ann"}, admin(404)),
        "complete": ("POST", "/v1/callbacks/999/complete", {"claim": "c" * 32,
                                                             "outcome": "answered"},
                     admin(404)),
        "open_sessions": ("GET", "/v1/admin/apps/customer/sessions", None, admin(200)),
        "publish": ("POST", "/v1/admin/apps/customer/releases", {
            "platform": "android", "version": "1.0.0", "kind": "recommended",
            "store_url": "https://play.example/x"}, admin(200)),
        "list_releases": ("GET", "/v1/admin/apps/customer/releases", None, admin(200)),
        "notices": ("GET", "/v1/admin/releases/999/notices", None, admin(404)),
        "report_json": ("GET", "/v1/reports/logins", None, admin(200)),
        "report_csv": ("GET", "/v1/reports/logins.csv", None, admin(200)),
        "ask_logs": ("POST", "/v1/admin/apps/customer/log-requests", {"user": "nobody"},
                     admin(404)),
        "list_logs": ("GET", "/v1/admin/apps/customer/log-requests", None, admin(200)),
        "download": ("GET", f"/v1/admin/log-requests/{log_request}/log", None, admin(404)),
        "send_sms": ("POST", "/v1/sms", {"destination": "+15550001111", "message": "hi"},
                     admin(409)),  # no provider in this fixture
        "get_sms": ("GET", "/v1/sms/messages/1", None, admin(404)),
        # uContact's SendSMS paths (test_sms_ucontact.py: the Basic form of the admin token)
        "integra_send": ("POST", "/Integra/resources/SMS/SendSMS", (
            "application/x-www-form-urlencoded", b"destination=%2B15550001111&message=hi"),
            admin(409)),
        "integra_send_query": ("GET", "/Integra/resources/SMS/SendSMS?destination="
                               "%2B15550001111&message=hi", None, admin(409)),
        "integra_send_path": ("GET", "/Integra/resources/SMS/SendSMS/destination="
                              "%2B15550001111&message=hi", None, admin(409)),
        "search_messages": ("GET", "/v1/sms/messages?status=sent", None, admin(200)),
        "search_messages_csv": ("GET", "/v1/sms/messages.csv", None, admin(200)),
        "upload_spool": ("POST", "/v1/sms/uploads", CSV, admin(422)),
        "upload_dnc": ("POST", "/v1/sms/dnc/uploads", ("text/csv", b"+15550001111;\n"),
                       admin(200)),
        "monitor": ("GET", "/v1/sms/monitor", None, admin(200)),
        "start_dialer": ("POST", "/v1/sms/dialers/none/start", None, admin(404)),
        "stop_dialer": ("POST", "/v1/sms/dialers/none/stop", None, admin(404)),
        "delete_unprocessed": ("DELETE", "/v1/sms/campaigns/c1/unprocessed", None,
                               admin(200)),
        "send_app_link": ("POST", "/v1/sms/app-links", {"destination": "+15550001111",
                                                        "kind": "install"}, admin(409)),
        "delivery_report": ("POST", "/v1/sms/reports/none/not-a-token", {}, {}),
        # users (issue 19): the matrix runs in operationId order, so delete_user deletes
        # the user create_user made
        "list_users": ("GET", "/v1/admin/users?limit=5", None, admin(200)),
        "create_user": ("POST", "/v1/admin/users", {"name": "nina", "mobile_endpoint": "nina",
                                                    "app": "customer"}, admin(201)),
        "get_user": ("GET", "/v1/admin/users/alice", None, admin(200)),
        "put_user": ("PUT", "/v1/admin/users/olga", {"ringing_device": "uc",
                                                     "uc_endpoint": "olga"}, admin(201)),
        "patch_user": ("PATCH", "/v1/admin/users/sam", {"wakeup": {"ring_seconds": 20}},
                       admin(200)),
        "delete_user": ("DELETE", "/v1/admin/users/nina", None, admin(204)),
        "import_users": ("POST", "/v1/admin/users/import",
                         ("text/csv", b"name,mobile_endpoint,app\npat,pat,customer\n"),
                         admin(200)),
        # bob (the other user's session) is no user the engine rings
        "get_ringing": ("GET", "/v1/users/me/ringing", None,
                        {"session": 200, "other user's session": 404}),
        "put_ringing": ("PUT", "/v1/users/me/ringing", {"ringing_device": "mobile"},
                        {"session": 200, "other user's session": 404}),
        # inbound SMS: the provider's callback token in the path opens them, nothing else
        "receive_sms": ("POST", "/v1/sms/inbound/none/not-a-token", {}, {}),
        "receive_sms_query": ("GET", "/v1/sms/inbound/none/not-a-token?msisdn=1", None, {}),
        "search_inbound": ("GET", "/v1/admin/sms/inbound?number=%2B15550001111", None,
                           admin(200)),
        "search_inbound_csv": ("GET", "/v1/admin/sms/inbound.csv", None, admin(200)),
    }


class Credentials:
    """The Bearer value of each credential column, made fresh for each request (a session
    used for a logout ends)."""

    def __init__(self, api) -> None:
        self.api = api

    async def bearer(self, name: str) -> bytes | None:
        api = self.api
        value = {
            "none": None, "empty": "", "wrong": "not-the-key-0123456789abcdef0123456789",
            "other app's key": KEYS["staff"], "app key": KEYS["customer"],
            "admin": ADMIN_TOKEN,
        }.get(name, "session")
        if value == "session":
            who = "alice" if name == "session" else "bob"
            value = await api.login("customer", who)
        return None if value is None else b"Bearer " + value.encode()


def login_body(credential: str, used: dict[str, str]) -> dict:
    if credential == "expired assertion":
        token = assertion("customer", "alice", iat=time.time() - 600)
    elif credential == "forged assertion":
        token = assertion("customer", "alice", secret="not-the-backend-secret-0123456789abc")
    elif credential == "alg none assertion":
        token = jwt.encode({"sub": "alice", "aud": "customer", "iss": "https://backend.test",
                            "iat": int(time.time()), "exp": int(time.time()) + 60,
                            "jti": "x1"}, None, algorithm="none")
    elif credential == "replayed assertion":
        token = used["app key"]  # the one the app key's column logged in with
    else:
        token = used[credential] = assertion("customer", "alice")
    return {**LOGIN, "assertion": token}


async def auth_matrix(api) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """(what each route answered per credential, what it should have)."""
    await register_and_ask_logs(api)
    log_request = (await api.raw("GET", "/v1/admin/apps/customer/log-requests", [
        ("Authorization", b"Bearer " + ADMIN_TOKEN.encode())])).json()["requests"][0]["id"]
    doc = (await api.raw("GET", "/openapi.json")).json()
    operations = {op["operationId"] for item in doc["paths"].values() for op in item.values()}
    table = recipes(log_request)
    assert operations == set(table), ("routes the matrix does not know (or no longer served)",
                                      operations ^ set(table))
    creds, used = Credentials(api), {}
    got: dict[str, dict[str, int]] = {}
    want: dict[str, dict[str, int]] = {}
    for op, (method, path, body, opens) in sorted(table.items()):
        columns = APP_CREDENTIALS + (ASSERTIONS if op == "login" else ())
        for credential in columns:
            api.refill()
            if op == "upload" and credential == "session":  # each upload once: a fresh one
                await register_and_ask_logs(api)
                path = f"/v1/log-requests/{await newest_log_request(api)}/upload"
            headers = []
            bearer = await creds.bearer("app key" if credential in ASSERTIONS else credential)
            if bearer is not None:
                headers.append(("Authorization", bearer))
            raw = None
            if body == "login":
                raw = json.dumps(login_body(credential, used)).encode()
                headers.append(("Content-Type", b"application/json"))
            elif isinstance(body, tuple):
                headers.append(("Content-Type", body[0].encode()))
                raw = body[1]
            elif body is not None:
                headers.append(("Content-Type", b"application/json"))
                raw = json.dumps(body).encode()
            if op == "queue_events":
                headers.append(("Accept", b"text/event-stream"))
            reply = await api.raw(method, path, headers, raw)
            if reply.status >= 400:
                assert_problem(reply)
            if reply.status == 401:
                assert reply.headers["www-authenticate"].startswith("Bearer")
            got.setdefault(op, {})[credential] = reply.status
            if opens == "public" or isinstance(opens, int):
                want.setdefault(op, {})[credential] = 200 if opens == "public" else opens
            else:
                # an assertion column presents the app's key with a bad assertion: 401
                want.setdefault(op, {})[credential] = (
                    401 if credential in ASSERTIONS else opens.get(credential, 401))
    return got, want


async def register_and_ask_logs(api) -> None:
    alice = await api.login("customer", "alice")
    r = await api.post("/v1/devices", {"platform": "android", "push_token": "t" * 40},
                       key=alice)
    assert r.status == 201, r.body
    r = await api.post("/v1/admin/apps/customer/log-requests", {"user": "alice"},
                       key=ADMIN_TOKEN)
    assert r.status == 201, r.body


async def newest_log_request(api) -> str:
    r = await api.raw("GET", "/v1/admin/apps/customer/log-requests?user=alice", [
        ("Authorization", b"Bearer " + ADMIN_TOKEN.encode())])
    return r.json()["requests"][0]["id"]


async def test_auth_matrix(api):
    got, want = await auth_matrix(api)
    columns = APP_CREDENTIALS + ASSERTIONS
    print("\n| route | " + " | ".join(columns) + " |")
    for op in sorted(got):
        print(f"| {op} | " + " | ".join(str(got[op].get(c, "")) for c in columns) + " |")
    unexpected_2xx = [(op, c, s) for op, row in got.items() for c, s in row.items()
                      if 200 <= s < 300 and not 200 <= want[op][c] < 300]
    assert unexpected_2xx == []
    assert got == want


def body_without_instance(reply) -> dict:
    doc = reply.json()
    doc.pop("instance")
    return doc


async def test_a_401_tells_nothing_about_apps_users_or_sessions(api):
    wrong = await api.post("/v1/apps/staff/calls", {"connectivity": 0.5}, key="nope")
    unknown = await api.post("/v1/apps/nope/calls", {"connectivity": 0.5}, key="nope")
    inactive_unknown = await api.post("/v1/apps/nope/calls", {}, key=KEYS["staff"])
    no_session = await api.post("/v1/devices", {"platform": "android", "push_token": "t"},
                                key="ivs_" + "x" * 43)
    key_for_session = await api.post("/v1/devices", {"platform": "android",
                                                     "push_token": "t"}, key=KEYS["customer"])
    replies = (wrong, unknown, inactive_unknown, no_session, key_for_session)
    assert {r.status for r in replies} == {401}
    assert len({json.dumps(body_without_instance(r)) for r in replies}) == 1


async def test_another_apps_key_cannot_tell_which_users_exist(api):
    """Issue 16: another app's key told which users exist (409 vs 404) at device
    registration; now only a user's own session registers devices, for that user."""
    for user in ("alice", "nobody"):
        r = await api.post("/v1/devices", {"app": "customer", "user": user,
                                           "platform": "android", "push_token": "t"},
                           key=KEYS["staff"])
        assert_problem(r, 401)


async def test_the_app_key_alone_cannot_act_for_a_user(api):
    """Issue 16: with only the key shipped in the app, anyone could log in as any user and
    overwrite any user's push tokens."""
    body = {**LOGIN, "user": "alice"}  # the old login: a name, no assertion
    doc = assert_problem(await api.post("/v1/apps/customer/sessions", body,
                                        key=KEYS["customer"]), 422)
    assert doc["field"] == "assertion"
    r = await api.post("/v1/devices", {"app": "customer", "user": "alice",
                                       "platform": "android", "push_token": "t" * 40},
                       key=KEYS["customer"])
    assert_problem(r, 401)
    assert await api.parts.store.devices.for_user("alice", "customer") == []


async def test_credential_shapes(api):
    path, ok = "/v1/apps/staff/calls", KEYS["staff"].encode()
    body = b'{"connectivity": 0.5}'
    ctype = ("Content-Type", b"application/json")
    for value, status in ((b"bearer " + ok, 201), (b"BEARER  " + ok + b" ", 201),
                          (b"Basic " + ok, 401), (ok, 401), (b"Bearer", 401),
                          (b"Bearer \t ", 401), (b"Bearer " + ok + b"x", 401),
                          (b"Bearer " + ok[:-1], 401), (b"Bearer " + b"k" * 600, 401)):
        r = await api.raw("POST", path, [ctype, ("Authorization", value)], body)
        assert r.status == status, value
    r = await api.raw("POST", path, [ctype, ("Authorization", b"Bearer " + ok),
                                     ("Authorization", b"Bearer " + ok)], body)
    assert_problem(r, 401)  # two credentials: refuse rather than guess which one counts


async def test_refusals_are_logged_with_the_reason_never_the_key(api, caplog):
    with caplog.at_level(logging.INFO, "ivr_engine.api"):
        await api.post("/v1/apps/staff/calls", {"connectivity": 0.5}, key="guess-123")
        await api.post("/v1/apps/ghost/calls", {"connectivity": 0.5}, key="guess-456")
    assert "missing or wrong api key for app 'staff'" in caplog.text
    assert "unknown app 'ghost'" in caplog.text
    assert "guess-" not in caplog.text and KEYS["staff"] not in caplog.text


def config_with(**env: str):
    return parse_config(FIXTURE.read_text() + USERS, str(FIXTURE), {**ENV, **env})


async def test_app_without_api_key_refuses_everything(api, caplog):
    cfg = config_with(IVR_STAFF_API_KEY="")  # ${IVR_STAFF_API_KEY:-...} set but empty
    assert cfg.model.apps["staff"].api_key is None
    await api.rebuild(config=lambda: cfg)
    with caplog.at_level(logging.INFO, "ivr_engine.api"):
        for key in (None, "", " ", "staff-key-000000000000000000000000000000", KEYS["staff"]):
            r = await api.post("/v1/apps/staff/calls", {"connectivity": 0.5}, key=key)
            doc = assert_problem(r, 401)
            assert doc["detail"].startswith("a valid credential for this route is required")
    assert "app 'staff' has no api_key configured" in caplog.text


async def test_admin_routes_without_admin_token_are_disabled(api, caplog):
    cfg = config_with(IVR_ADMIN_TOKEN="   ")
    assert cfg.engine.api.admin_token is None
    await api.rebuild(config=lambda: cfg)
    with caplog.at_level(logging.INFO, "ivr_engine.api"):
        for key in (None, "", ADMIN_TOKEN):
            r = await api.raw("GET", f"/v1/calls/{ENDED_CALL}",
                              [("Authorization", f"Bearer {key}".encode())] if key else [])
            assert_problem(r, 401)
    assert "admin API disabled: engine.api.admin_token is not configured" in caplog.text
    assert (await api.raw("GET", "/v1/health")).status == 200


@pytest.mark.parametrize("value, stored", [("", None), ("   ", None), ("\t\n", None),
                                           (None, None), (" k3y" + "x" * 32, "k3y" + "x" * 32),
                                           ("k3y" + "x" * 32, "k3y" + "x" * 32)])
def test_blank_secrets_mean_not_configured(value, stored):
    for model, name in ((App, "api_key"), (ApiSettings, "admin_token")):
        secret = getattr(model.model_validate({name: value}), name)
        assert (secret.get_secret_value() if secret is not None else None) == stored


def test_secrets_shorter_than_32_characters_are_refused_with_their_line():
    """Issue 16: admin_token, api_key and callback_token had no minimum length."""
    text = FIXTURE.read_text()
    with pytest.raises(ConfigError) as exc:
        config_with(IVR_ADMIN_TOKEN="short-admin", IVR_STAFF_API_KEY="s" * 31)
    lines = str(exc.value).splitlines()
    admin_line = next(i for i, t in enumerate(text.splitlines(), 1) if "IVR_ADMIN_TOKEN" in t)
    staff_line = next(i for i, t in enumerate(text.splitlines(), 1) if "IVR_STAFF_API_KEY" in t)
    assert any(line.startswith(f"{FIXTURE}:{admin_line}: engine.api.admin_token: ")
               and "too short" in line for line in lines), lines
    assert any(line.startswith(f"{FIXTURE}:{staff_line}: apps.staff.api_key: ")
               and "at least 32" in line for line in lines), lines
    assert "short-admin" not in str(exc.value)
    config_with(IVR_STAFF_API_KEY="s" * 32)  # 32 is enough


def test_key_matches_always_compares_in_constant_time(monkeypatch):
    from pydantic import SecretStr

    calls = []

    def spy(a, b):
        calls.append((type(a), type(b)))
        return a == b

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    key = SecretStr("k€y")
    cases = [(None, None, False), (b"x", None, False), (None, key, False),
             (b"k\xe2\x82\xacy", key, True), (b"k\xe2\x82\xacy ", key, False),
             (b"\xff", key, False), (b"", key, False)]
    for presented, secret, result in cases:
        assert auth.key_matches(presented, secret) is result
    assert calls == [(bytes, bytes)] * len(cases)
    assert auth.key_matches(b"\xed\xa0\x80", SecretStr("\ud800")) is True  # never raises


def test_two_apps_sharing_a_key_is_a_config_error():
    shared = "shared-key-" + "1" * 30
    with pytest.raises(ConfigError) as exc:
        config_with(IVR_CUSTOMER_API_KEY=shared, IVR_STAFF_API_KEY=shared)
    lines = str(exc.value).splitlines()
    text = FIXTURE.read_text().splitlines()
    line = next(i for i, t in enumerate(text, 1) if "IVR_STAFF_API_KEY" in t)
    assert f"{FIXTURE}:{line}: apps.staff.api_key: is the same as the api_key of app " \
           "'customer'; each app needs its own key" in lines
    assert shared not in str(exc.value)


def test_an_app_key_equal_to_the_admin_token_is_a_config_error():
    with pytest.raises(ConfigError) as exc:
        config_with(IVR_STAFF_API_KEY=ADMIN_TOKEN)
    assert "apps.staff.api_key: is the same as engine.api.admin_token" in str(exc.value)
    assert ADMIN_TOKEN not in str(exc.value)
