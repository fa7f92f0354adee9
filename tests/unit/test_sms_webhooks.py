"""Signed delivery reports (issue 16): with ``verify_signature``, a report must carry the
provider's signature — Twilio's ``X-Twilio-Signature``, Vonage's ``sig`` (md5hash or HMAC)
or signed JWT — over the URL the provider called (the engine's public base behind a proxy);
otherwise 403, counted, logged without a secret. The reports are signed by
``tests/support/sms_reports.py``, written apart from the engine's check, and both are held to
the providers' published examples."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import pytest

from ivr_engine import metrics
from ivr_engine.config import ConfigError, parse_config
from ivr_engine.sms.webhooks import twilio_signature, vonage_sig
from tests.support.sms_reports import twilio_signed, vonage_signed

from .test_api_harness import (  # noqa: F401 - api_fixture: the api fixture
    ENV,
    FIXTURE,
    USERS,
    api_fixture,
    assert_problem,
)

TW_TOKEN = "twilio-auth-token-5b0e0c2d9f"  # the account's auth token (provider password)
VG_SECRET = "vonage-signature-secret-7f1c-0123456789ab"
CB = {"tw": "cb-twilio-0123456789abcdef0123456789", "vg": "cb-vonage-0123456789abcdef012345678",
      "vj": "cb-vonagejwt-0123456789abcdef0123456", "vh": "cb-vonagehmac-0123456789abcdef01234",
      "plain": "cb-plain-0123456789abcdef0123456789ab"}
PUBLIC = "https://ivr.example/engine"  # the engine's public base: a proxy strips /engine


def sms_section(verify: bool = True) -> str:
    on = "true" if verify else "false"
    return f"""
sms:
  providers:
    - {{name: tw, type: twilio, user: AC0123456789abcdef0123456789abcdef, password: {TW_TOKEN},
       status_callback_url: "{PUBLIC}", callback_token: {CB['tw']}, verify_signature: {on}}}
    - {{name: vg, type: vonage, user: vonage-key, password: vonage-api-secret,
       status_callback_url: "{PUBLIC}", callback_token: {CB['vg']}, verify_signature: {on},
       signature_secret: {VG_SECRET}}}
    - {{name: vh, type: vonage, user: vonage-key, password: vonage-api-secret,
       status_callback_url: "{PUBLIC}", callback_token: {CB['vh']}, verify_signature: {on},
       signature_secret: {VG_SECRET}, signature_method: sha256}}
    - {{name: vj, type: vonage, user: vonage-key, password: vonage-api-secret,
       status_callback_url: "{PUBLIC}", callback_token: {CB['vj']}, verify_signature: {on},
       signature_secret: {VG_SECRET}, signature_method: jwt}}
    - {{name: plain, type: twilio, user: AC0123456789abcdef0123456789abcdef,
       password: {TW_TOKEN}, status_callback_url: "{PUBLIC}", callback_token: {CB['plain']}}}
"""


@pytest.fixture
async def signed_api(api):
    cfg = parse_config(FIXTURE.read_text() + USERS + sms_section(), str(FIXTURE), ENV)
    await api.rebuild(config=lambda: cfg)
    return api


def path(name: str) -> str:
    return f"/v1/sms/reports/{name}/{CB[name]}"


async def post(api, report, *, path_override: str | None = None):
    """Post a Report (signed for the public URL) to the engine's own path for it."""
    target = path_override or report.url.removeprefix(PUBLIC)
    return await api.raw("POST", target, list(
        (k, v.encode()) for k, v in report.headers.items()), report.body)


def failures(provider: str) -> float:
    return metrics.SMS_REPORT_SIGNATURE_FAILURES.labels(provider)._value.get()


TW_FORM = {"MessageSid": "SM1", "MessageStatus": "delivered", "AccountSid": "AC0123",
           "To": "+15550001111"}
VG_FIELDS = {"msisdn": "15550001111", "to": "ACME", "messageId": "0A1",
             "status": "delivered", "err-code": "0", "client-ref": "key-1"}


# ---------------------------------------------------------------- the providers' examples

def test_signatures_match_the_providers_published_examples():
    # Twilio's documented example (https://mycompany.com/myapp.php?foo=1&bar=2, token 12345)
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
              "From": "+12349013030", "To": "+18005551212"}
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, {k: [v] for k, v in params.items()}) == \
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert twilio_signed(url, "12345", params).headers["X-Twilio-Signature"] == \
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    # Vonage's SDK test vector (md5hash, secret "secret")
    assert vonage_sig("secret", "md5hash", {"a": "1", "b": "2", "timestamp": "1461605396"}) \
        == "6af838ef94998832dbfc29020b564830"


# ---------------------------------------------------------------- Twilio

async def test_twilio_reports_signed_for_the_public_url_are_accepted(signed_api):
    report = twilio_signed(PUBLIC + path("tw"), TW_TOKEN, TW_FORM)
    r = await post(signed_api, report)
    assert (r.status, r.json()) == (200, {"updated": 0})
    # Twilio may sign the URL with the scheme's default port
    report = twilio_signed(PUBLIC.replace("example/", "example:443/") + path("tw"), TW_TOKEN,
                           TW_FORM)
    assert (await post(signed_api, report, path_override=path("tw"))).status == 200


async def test_twilio_reports_without_a_valid_signature_are_403(signed_api, caplog):
    before = failures("tw")
    good = twilio_signed(PUBLIC + path("tw"), TW_TOKEN, TW_FORM)
    forged = twilio_signed(PUBLIC + path("tw"), "not-the-auth-token", TW_FORM)
    tampered = twilio_signed(PUBLIC + path("tw"), TW_TOKEN, TW_FORM)
    tampered.body = urlencode({**TW_FORM, "MessageStatus": "failed"}).encode()
    unsigned = twilio_signed(PUBLIC + path("tw"), TW_TOKEN, TW_FORM)
    del unsigned.headers["X-Twilio-Signature"]
    internal = twilio_signed("http://127.0.0.1:8080" + path("tw"), TW_TOKEN, TW_FORM)
    with caplog.at_level(logging.INFO):
        for report in (forged, tampered, unsigned):
            assert_problem(await post(signed_api, report), 403)
        # signed for the engine's own address, not the public URL the provider was given
        assert_problem(await post(signed_api, internal, path_override=path("tw")), 403)
    assert failures("tw") == before + 4
    assert "delivery report for provider tw from 127.0.0.1 refused" in caplog.text
    for secret in (TW_TOKEN, CB["tw"], good.headers["X-Twilio-Signature"]):
        assert secret not in caplog.text
    # a wrong path token is the door's 401, before any signature
    assert_problem(await post(signed_api, good, path_override="/v1/sms/reports/tw/" + "x" * 40),
                   401)


async def test_without_verify_signature_reports_need_only_the_path_token(signed_api):
    report = twilio_signed(PUBLIC + path("plain"), "any", TW_FORM)
    del report.headers["X-Twilio-Signature"]
    assert (await post(signed_api, report)).status == 200


# ---------------------------------------------------------------- Vonage

@pytest.mark.parametrize("name, method, as_json", [
    ("vg", "md5hash", False), ("vg", "md5hash", True), ("vh", "sha256", False),
    ("vj", "jwt", True)])
async def test_vonage_reports_signed_as_the_account_signs_are_accepted(
        signed_api, name, method, as_json):
    report = vonage_signed(PUBLIC + path(name), VG_FIELDS, VG_SECRET, method, as_json,
                           "vonage-key")
    r = await post(signed_api, report)
    assert (r.status, r.json()) == (200, {"updated": 0})


@pytest.mark.parametrize("name, method", [("vg", "md5hash"), ("vh", "sha256"),
                                          ("vj", "jwt")])
async def test_vonage_reports_forged_tampered_or_stale_are_403(signed_api, name, method,
                                                              monkeypatch):
    before = failures(name)
    forged = vonage_signed(PUBLIC + path(name), VG_FIELDS, "not-the-signature-secret-0123456789",
                           method, False, "vonage-key")
    tampered = vonage_signed(PUBLIC + path(name), VG_FIELDS, VG_SECRET, method, False,
                             "vonage-key")
    tampered.body = tampered.body.replace(b"delivered", b"failed")
    assert_problem(await post(signed_api, forged), 403)
    assert_problem(await post(signed_api, tampered), 403)
    import time as clock  # a report signed 10 minutes ago: replayed
    real = clock.time
    monkeypatch.setattr(clock, "time", lambda: real() - 600)
    stale = vonage_signed(PUBLIC + path(name), VG_FIELDS, VG_SECRET, method, False,
                          "vonage-key")
    monkeypatch.setattr(clock, "time", real)
    assert_problem(await post(signed_api, stale), 403)
    assert failures(name) == before + 3


async def test_vonage_jwt_method_needs_the_bearer(signed_api):
    report = vonage_signed(PUBLIC + path("vj"), VG_FIELDS, VG_SECRET, "jwt", True, "k")
    del report.headers["Authorization"]
    assert_problem(await post(signed_api, report), 403)


# ---------------------------------------------------------------- the settings

@pytest.mark.parametrize("provider, message", [
    ('{name: ib, type: infobip, url: "http://x", password: p, verify_signature: true, '
     'status_callback_url: "https://e", callback_token: ' + CB["tw"] + '}',
     "infobip does not sign its delivery reports"),
    ('{name: v, type: vonage, user: k, password: p, verify_signature: true, '
     'status_callback_url: "https://e", callback_token: ' + CB["tw"] + '}',
     "needs signature_secret"),
    ('{name: t, type: twilio, user: AC1, password: p, verify_signature: true}',
     "needs status_callback_url"),
    ('{name: t, type: twilio, user: AC1, password: p, signature_secret: s}',
     "a twilio provider has none"),
])
def test_signature_settings_are_checked_with_their_place(provider, message):
    text = FIXTURE.read_text() + USERS + f"\nsms:\n  providers:\n    - {provider}\n"
    with pytest.raises(ConfigError) as exc:
        parse_config(text, "ivr.yaml", ENV)
    assert message in str(exc.value) and "sms.providers.0" in str(exc.value), str(exc.value)
