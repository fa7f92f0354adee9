"""User assertions (issue 16): a login names its user only through a JWT the customer's backend
signed — the algorithm pinned per app, the audience, issuer, lifetime and clock skew checked,
each ``jti`` accepted once (also when two logins race), RS256 / ES256 / EdDSA with a PEM key
or a JWKS file."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ivr_engine.config import ConfigError, parse_config
from tests.support.identity import ISSUER, assertion

from .test_api_harness import (  # noqa: F401 - api_fixture: the api fixture
    ENV,
    FIXTURE,
    KEYS,
    USERS,
    api_fixture,
    assert_problem,
)

DEVICE = {"device_id": "d-1", "platform": "mobile", "app_type": "Mobile",
          "app_version": "2.0.0", "os": "android", "os_version": "14"}
HS256_BLOCK = """    user_assertion:                  # the customer's backend signs its users' logins
      algorithm: HS256
      secret: ${IVR_CUSTOMER_ASSERTION_SECRET:-customer-backend-secret-0000000000000000}
      issuer: https://backend.test
"""


async def login(api, token: str, app: str = "customer", **extra):
    return await api.post(f"/v1/apps/{app}/sessions", {**DEVICE, "assertion": token, **extra},
                          key=KEYS[app])


def config_with_assertion(block: str):
    text = FIXTURE.read_text()
    assert HS256_BLOCK in text
    return parse_config(text.replace(HS256_BLOCK, block) + USERS, str(FIXTURE), ENV)


async def test_a_good_assertion_logs_its_user_in(api):
    r = await login(api, assertion("customer", "alice"))
    assert r.status == 201, r.body
    assert r.json()["user"] == "alice"


@pytest.mark.parametrize("why, token, detail", [
    ("forged", lambda: assertion("customer", "alice", secret="x" * 40), "bad signature"),
    ("for another app", lambda: assertion("customer", "alice", audience="staff"),
     "not for app 'customer'"),
    ("another app's backend", lambda: assertion("staff", "alice", audience="customer"),
     "bad signature"),
    ("wrong issuer", lambda: assertion("customer", "alice", issuer="https://evil.test"),
     "wrong issuer"),
    ("expired", lambda: assertion("customer", "alice", iat=time.time() - 400, lifetime=300),
     "expired"),
    ("too long-lived", lambda: assertion("customer", "alice", lifetime=3600),
     "longer than max_age_seconds"),
    ("issued in the future", lambda: assertion("customer", "alice", iat=time.time() + 120),
     "future"),
    ("no jti", lambda: assertion("customer", "alice", drop=("jti",)), "jti is missing"),
    ("no exp", lambda: assertion("customer", "alice", drop=("exp",)), "exp is missing"),
    ("alg none", lambda: jwt.encode({"sub": "alice", "aud": "customer", "iss": ISSUER,
                                     "iat": int(time.time()), "exp": int(time.time()) + 60,
                                     "jti": "n1"}, None, algorithm="none"),
     "algorithm 'none'"),
    ("HS512", lambda: assertion("customer", "alice", algorithm="HS512"), "algorithm 'HS512'"),
    ("not a JWT", lambda: "eyJhbGciOi.not.a.jwt", "not a compact JWT"),
    ("a user id of control characters", lambda: assertion("customer", "al\x00ice"), "sub"),
])
async def test_assertions_that_do_not_prove_the_user_are_refused(api, why, token, detail):
    doc = assert_problem(await login(api, token()), 401)
    assert doc["field"] == "assertion" and detail in doc["detail"], (why, doc)
    assert await api.parts.store.lifecycle.open_sessions(app="customer") == []


async def test_a_small_clock_skew_is_tolerated(api):
    assert (await login(api, assertion("customer", "alice", iat=time.time() + 20))).status \
        == 201  # 20 s ahead of the engine, within leeway_seconds (30)


async def test_an_assertion_logs_in_once_even_when_two_logins_race(api):
    token = assertion("customer", "alice")
    replies = await asyncio.gather(*(login(api, token) for _ in range(8)))
    assert sorted(r.status for r in replies) == [201] + [401] * 7
    again = assert_problem(await login(api, token), 401)
    assert "used already" in again["detail"]


async def test_the_body_may_name_the_user_but_not_another(api):
    assert (await login(api, assertion("customer", "alice"), user="alice")).status == 201
    doc = assert_problem(await login(api, assertion("customer", "alice"), user="bob"), 401)
    assert "another user" in doc["detail"]


async def test_an_app_without_user_assertion_refuses_logins(api):
    cfg = config_with_assertion("")
    await api.rebuild(config=lambda: cfg)
    doc = assert_problem(await login(api, assertion("customer", "alice")), 409)
    assert "user_assertion" in doc["detail"]
    unset = config_with_assertion("    user_assertion: {algorithm: HS256, issuer: x}\n")
    assert any("user_assertion.secret: warning: not set" in str(w) for w in unset.warnings)
    await api.rebuild(config=lambda: unset)
    assert_problem(await login(api, assertion("customer", "alice")), 409)
    # anonymous call plans with the app's key still work
    assert (await api.post("/v1/apps/customer/calls", {"connectivity": 0.9},
                           key=KEYS["customer"])).status == 201


def pem_public(private) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


KEYPAIRS = {
    "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "EdDSA": lambda: ed25519.Ed25519PrivateKey.generate(),
}


@pytest.mark.parametrize("algorithm", sorted(KEYPAIRS))
async def test_public_key_algorithms_with_a_pem_file(api, tmp_path, algorithm):
    private = KEYPAIRS[algorithm]()
    path = tmp_path / "backend.pem"
    path.write_bytes(pem_public(private))
    cfg = config_with_assertion(f"""    user_assertion:
      algorithm: {algorithm}
      public_key_file: {path}
      issuer: {ISSUER}
""")
    await api.rebuild(config=lambda: cfg)
    good = assertion("customer", "alice", algorithm=algorithm, key=private)
    assert (await login(api, good)).status == 201
    other = KEYPAIRS[algorithm]()
    assert_problem(await login(api, assertion("customer", "alice", algorithm=algorithm,
                                              key=other)), 401)
    # the HS256 confusion: the public key used as an HMAC secret is refused (alg pinned)
    claims = {"sub": "alice", "aud": "customer", "iss": ISSUER, "iat": int(time.time()),
              "exp": int(time.time()) + 60, "jti": "confused"}
    part = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=")  # noqa: E731
    signed = part({"alg": "HS256", "typ": "JWT"}) + b"." + part(claims)
    mac = hmac.new(pem_public(private), signed, hashlib.sha256).digest()
    forged = (signed + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()
    doc = assert_problem(await login(api, forged), 401)
    assert "algorithm 'HS256'" in doc["detail"]


async def test_a_jwks_file_picks_the_key_by_kid(api, tmp_path):
    keys = {kid: rsa.generate_private_key(public_exponent=65537, key_size=2048)
            for kid in ("2026-a", "2026-b")}
    jwks = {"keys": [{**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(k.public_key())),
                      "kid": kid, "use": "sig", "alg": "RS256"} for kid, k in keys.items()]}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    cfg = config_with_assertion(f"""    user_assertion:
      algorithm: RS256
      jwks_file: {path}
      issuer: {ISSUER}
""")
    await api.rebuild(config=lambda: cfg)
    for kid, key in keys.items():
        token = assertion("customer", "alice", algorithm="RS256", key=key,
                          headers={"kid": kid})
        assert (await login(api, token)).status == 201, kid
    wrong = assertion("customer", "alice", algorithm="RS256", key=keys["2026-a"],
                      headers={"kid": "2026-b"})
    assert_problem(await login(api, wrong), 401)
    unknown = assertion("customer", "alice", algorithm="RS256", key=keys["2026-a"],
                        headers={"kid": "retired"})
    assert "kid" in assert_problem(await login(api, unknown), 401)["detail"]


async def test_an_unreadable_key_file_is_a_503_with_the_reason_in_the_log(api, tmp_path,
                                                                          caplog):
    path = tmp_path / "gone.pem"
    cfg = config_with_assertion(f"""    user_assertion:
      algorithm: ES256
      public_key_file: {path}
      issuer: {ISSUER}
""")
    assert any("user_assertion.public_key_file" in str(w) for w in cfg.warnings)
    await api.rebuild(config=lambda: cfg)
    private = KEYPAIRS["ES256"]()
    doc = assert_problem(await login(api, assertion("customer", "alice", algorithm="ES256",
                                                    key=private)), 503)
    assert str(path) not in doc["detail"]
    assert str(path) in caplog.text


@pytest.mark.parametrize("block, message", [
    ("algorithm: HS256\n      secret: short\n      issuer: x", "at least 32"),
    ("algorithm: RS256\n      issuer: x", "exactly one of public_key_file, jwks_file"),
    ("algorithm: RS256\n      secret: " + "s" * 40 + "\n      public_key_file: k.pem\n"
     "      issuer: x", "not secret"),
    ("algorithm: none\n      issuer: x", "algorithm"),
])
def test_bad_user_assertion_settings_are_config_errors(block, message):
    with pytest.raises(ConfigError) as exc:
        config_with_assertion(f"    user_assertion:\n      {block}\n")
    assert message in str(exc.value)
