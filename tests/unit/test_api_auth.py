"""Authentication first, fail closed: the auth matrix, what a 401 reveals, empty secrets,
constant-time comparison and unique keys."""

from __future__ import annotations

import json
import logging

import pytest

from ivr_engine.api import auth
from ivr_engine.config import ConfigError, parse_config
from ivr_engine.config.model import ApiSettings, App

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

# route → (method, path, body, the credential that opens it or None for public routes,
#          the status a right credential gets)
ROUTES = {
    "plan customer": ("POST", "/v1/apps/customer/calls", {"connectivity": 0.9},
                      KEYS["customer"], 201),
    "plan staff": ("POST", "/v1/apps/staff/calls", {"connectivity": 0.9}, KEYS["staff"], 201),
    "devices": ("POST", "/v1/devices", {"app": "customer", "user": "alice",
                                        "platform": "android", "push_token": "t" * 40},
                KEYS["customer"], 201),
    "get call": ("GET", f"/v1/calls/{ENDED_CALL}", None, ADMIN_TOKEN, 200),
    "transfer": ("POST", f"/v1/calls/{ENDED_CALL}/transfer", {"to": "queue:sales"},
                 ADMIN_TOKEN, 409),  # allowed, but the call has ended
    "health": ("GET", "/v1/health", None, None, 200),
}
CREDENTIALS = {
    "none": lambda right: None,
    "empty Bearer": lambda right: b"Bearer ",
    "wrong": lambda right: b"Bearer not-the-key",
    "right": lambda right: b"Bearer " + right.encode(),
}


def expected(route: str, credential: str) -> int:
    _, _, _, key, right_status = ROUTES[route]
    return right_status if key is None or credential == "right" else 401


async def request(api, route: str, authorization: bytes | None):
    method, path, body, _, _ = ROUTES[route]
    headers = [("Content-Type", b"application/json")]
    if authorization is not None:
        headers.append(("Authorization", authorization))
    return await api.raw(method, path, headers,
                         json.dumps(body).encode() if body is not None else None)


async def auth_matrix(api) -> dict[str, dict[str, int]]:
    matrix: dict[str, dict[str, int]] = {}
    for route, (_, _, _, key, _) in ROUTES.items():
        for credential, make in CREDENTIALS.items():
            reply = await request(api, route, make(key or "unused"))
            if reply.status >= 400:
                assert_problem(reply)
            if reply.status == 401:
                assert reply.headers["www-authenticate"].startswith("Bearer")
            matrix.setdefault(route, {})[credential] = reply.status
    return matrix


async def test_auth_matrix(api):
    matrix = await auth_matrix(api)
    print("\n| route | " + " | ".join(CREDENTIALS) + " |")
    for route, row in matrix.items():
        print(f"| {ROUTES[route][0]} {ROUTES[route][1]} | "
              + " | ".join(str(row[c]) for c in CREDENTIALS) + " |")
    assert matrix == {r: {c: expected(r, c) for c in CREDENTIALS} for r in ROUTES}


def body_without_instance(reply) -> dict:
    doc = reply.json()
    doc.pop("instance")
    return doc


async def test_unknown_app_answers_exactly_like_a_wrong_key(api):
    wrong = await api.post("/v1/apps/staff/calls", {"connectivity": 0.5}, key="nope")
    unknown = await api.post("/v1/apps/nope/calls", {"connectivity": 0.5}, key="nope")
    inactive_unknown = await api.post("/v1/apps/nope/calls", {}, key=KEYS["staff"])
    assert wrong.status == unknown.status == inactive_unknown.status == 401
    assert body_without_instance(wrong) == body_without_instance(unknown) \
        == body_without_instance(inactive_unknown)
    device = {"user": "alice", "platform": "android", "push_token": "t"}
    wrong_dev = await api.post("/v1/devices", {**device, "app": "customer"}, key="nope")
    unknown_dev = await api.post("/v1/devices", {**device, "app": "nope"}, key="nope")
    no_app = await api.post("/v1/devices", device, key=KEYS["customer"])
    assert wrong_dev.status == unknown_dev.status == no_app.status == 401
    assert body_without_instance(wrong_dev) == body_without_instance(unknown_dev) \
        == body_without_instance(no_app) == body_without_instance(wrong)


async def test_a_key_opens_its_own_app_only(api):
    r = await api.post("/v1/apps/customer/calls", {"connectivity": 0.5}, key=KEYS["staff"])
    assert_problem(r, 401)
    r = await api.post("/v1/devices", {"app": "staff", "user": "alice", "platform": "android",
                                       "push_token": "t"}, key=KEYS["customer"])
    assert_problem(r, 401)
    r = await api.raw("GET", f"/v1/calls/{ENDED_CALL}",
                      [("Authorization", b"Bearer " + KEYS["staff"].encode())])
    assert_problem(r, 401)


async def test_credential_shapes(api):
    path, ok = "/v1/apps/staff/calls", KEYS["staff"].encode()
    body = b'{"connectivity": 0.5}'
    ctype = ("Content-Type", b"application/json")
    for value, status in ((b"bearer " + ok, 201), (b"BEARER  " + ok + b" ", 201),
                          (b"Basic " + ok, 401), (ok, 401), (b"Bearer", 401),
                          (b"Bearer \t ", 401), (b"Bearer " + ok + b"x", 401),
                          (b"Bearer " + ok[:-1], 401)):
        r = await api.raw("POST", path, [ctype, ("Authorization", value)], body)
        assert r.status == status, value
    r = await api.raw("POST", path, [ctype, ("Authorization", b"Bearer " + ok),
                                     ("Authorization", b"Bearer " + ok)], body)
    assert_problem(r, 401)  # two credentials: refuse rather than guess which one counts


async def test_refusals_are_logged_with_the_reason_never_the_key(api, caplog):
    with caplog.at_level(logging.INFO, "ivr_engine.api"):
        await api.post("/v1/apps/staff/calls", {"connectivity": 0.5}, key="guess-123")
        await api.post("/v1/apps/ghost/calls", {"connectivity": 0.5}, key="guess-456")
    assert "missing or wrong api key (app 'staff')" in caplog.text
    assert "unknown app (app 'ghost')" in caplog.text
    assert "guess-" not in caplog.text and KEYS["staff"] not in caplog.text


def config_with(**env: str):
    return parse_config(FIXTURE.read_text() + USERS, str(FIXTURE), {**ENV, **env})


async def test_app_without_api_key_refuses_everything(api, caplog):
    cfg = config_with(IVR_STAFF_API_KEY="")  # ${IVR_STAFF_API_KEY:-...} set but empty
    assert cfg.model.apps["staff"].api_key is None
    api.ctx.config = lambda: cfg
    with caplog.at_level(logging.INFO, "ivr_engine.api"):
        for key in (None, "", " ", "staff-key", KEYS["staff"]):
            r = await api.post("/v1/apps/staff/calls", {"connectivity": 0.5}, key=key)
            doc = assert_problem(r, 401)
            assert doc["detail"] == "a valid Bearer api key for this app is required"
    assert "the app has no api_key configured" in caplog.text


async def test_admin_routes_without_admin_token_are_disabled(api):
    cfg = config_with(IVR_ADMIN_TOKEN="   ")
    assert cfg.engine.api.admin_token is None
    api.ctx.config = lambda: cfg
    for key in (None, "", ADMIN_TOKEN):
        for route in ("get call", "transfer"):
            method, path, body, _, _ = ROUTES[route]
            r = await (api.post(path, body, key=key) if method == "POST" else
                       api.raw(method, path, [("Authorization", f"Bearer {key}".encode())]))
            doc = assert_problem(r, 401)
            assert doc["detail"] == ("admin API disabled: engine.api.admin_token is not "
                                     "configured")
    r = await api.raw("GET", "/v1/health")
    assert r.status == 200


@pytest.mark.parametrize("value, stored", [("", None), ("   ", None), ("\t\n", None),
                                           (None, None), (" k3y ", "k3y"), ("k3y", "k3y")])
def test_blank_secrets_mean_not_configured(value, stored):
    for model, name in ((App, "api_key"), (ApiSettings, "admin_token")):
        secret = getattr(model.model_validate({name: value}), name)
        assert (secret.get_secret_value() if secret is not None else None) == stored


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
    with pytest.raises(ConfigError) as exc:
        config_with(IVR_CUSTOMER_API_KEY="shared-key-1", IVR_STAFF_API_KEY="shared-key-1")
    lines = str(exc.value).splitlines()
    text = FIXTURE.read_text().splitlines()
    line = next(i for i, t in enumerate(text, 1) if "IVR_STAFF_API_KEY" in t)
    assert f"{FIXTURE}:{line}: apps.staff.api_key: is the same as the api_key of app " \
           "'customer'; each app needs its own key" in lines
    assert "shared-key-1" not in str(exc.value)


def test_an_app_key_equal_to_the_admin_token_is_a_config_error():
    with pytest.raises(ConfigError) as exc:
        config_with(IVR_STAFF_API_KEY=ADMIN_TOKEN)
    assert "apps.staff.api_key: is the same as engine.api.admin_token" in str(exc.value)
    assert ADMIN_TOKEN not in str(exc.value)
