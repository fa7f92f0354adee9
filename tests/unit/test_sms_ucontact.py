"""Issue 19 item 10, the uContact drop-in, in process against the local provider server on
SQLite and PostgreSQL: SendSMS form-encoded and by GET (query string, and the parameters as
the last path segment, as uContact's manual writes it) behind the door (Bearer or Basic,
never a credential in the URL, the segment never in a log line), number regexps matched on
the national format, the ``(0.3)`` dial string, ``start`` refused on a disabled dialer."""

from __future__ import annotations

import asyncio
import base64
import logging
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from ivr_engine.config import ConfigError, parse_config
from ivr_engine.repositories import Store
from ivr_engine.server import ApiParts, build_app
from ivr_engine.sms.dialer import SmsService
from ivr_engine.sms.numbers import NumberError, check_regexp, dialled, parse_channels
from tests.support.sms_providers import LocalProviders, start

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sms.yaml"
TOKEN = "sms-admin-token-000000000000000000000000"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASIC = {"Authorization": "Basic " + base64.b64encode(f"integra:{TOKEN}".encode()).decode()}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SEND = "/Integra/resources/SMS/SendSMS"
# uContact's own provider rule: a Uruguayan mobile as dialled there (09XXXXXXX)
EXTRA_PROVIDER = """    - name: dongle
      type: url-post
      url: ${SMS_PROVIDER_URL:-http://127.0.0.1:9}/gw
      params: {to: "{to_digits}", text: "{text}", id: "{id}", port: "{channel}"}
      message_id_field: id
      number_regexp: '^(09\\d{7})$'
      match_on: national
"""
EXTRA_DIALER = """    idle:
      provider: dongle
      enabled: false
      dial_string: (0.3)
"""


def config_text() -> str:
    text = FIXTURE.read_text()
    text = text.replace("  dialers:\n", EXTRA_PROVIDER + "  dialers:\n", 1)
    return text.replace("  campaigns:\n", EXTRA_DIALER + "  campaigns:\n", 1)


@pytest.fixture
async def api(db_url):
    providers = LocalProviders()
    runner, url = await start(providers)
    cfg = parse_config(config_text(), "sms.yaml",
                       {"IVR_DATABASE_URL": db_url, "SMS_PROVIDER_URL": url})
    store = await Store.open(db_url)
    async with SmsService(lambda: cfg, store.sms, worker="ucontact-test") as svc, \
            asyncio.TaskGroup() as tg:
        lane = tg.create_task(svc.run_single())
        client = TestClient(TestServer(build_app(ApiParts(config=lambda: cfg, store=store,
                                                          sms=svc))))
        await client.start_server()
        try:
            yield client, providers
        finally:
            await client.close()
            lane.cancel()
    await store.close()
    await runner.cleanup()


def raw_url(client, path: str) -> URL:
    """The URL as written (yarl would decode the path's %26 to &, as a browser may not)."""
    return URL(str(client.make_url("")).rstrip("/") + path, encoded=True)


def ivr_logs(caplog) -> str:
    """What the engine logged (not aiohttp's access log: the test server keeps one, the
    engine's listener, listener.ApiRunner, has none)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("ivr_engine"))


async def sent(r) -> dict:
    body = await r.json()
    assert r.status == 200 and body["status"] == "sent", (r.status, body)
    return body


async def test_sendsms_form_and_get_forms_as_ucontact_sends_them(api, caplog):
    client, providers = api
    caplog.set_level(logging.DEBUG)
    # the form of uContact's @FormParam, on /v1/sms and at uContact's path (Basic auth)
    body = await sent(await client.post("/v1/sms", headers={**AUTH, **FORM}, data=(
        "destination=099635199&message=Hola+mundo%0Ados&campaign=promo&agent=ana"
        "&wait_seconds=5")))
    assert (body["destination"], body["campaign"], body["provider"]) == (
        "+59899635199", "promo", "infobip")
    assert providers.requests[-1].json["messages"][0]["text"] == "Hola mundo\ndos"
    body = await sent(await client.post(SEND, headers={**BASIC, **FORM}, data=(
        "destination=099635198&message=Por+Integra&api=dongle&wait_seconds=5")))
    assert body["provider"] == "dongle"
    assert providers.requests[-1].form["to"] == "59899635198"
    # GET with a query string; an unencoded + arrives as a space and is read back as +
    body = await sent(await client.get(
        SEND + "?destination=+59899635197&message=Por%20GET&wait_seconds=5", headers=BASIC))
    assert body["destination"] == "+59899635197"
    # the manual's form: the parameters as the last path segment; its %26 and %2F stay text
    body = await sent(await client.session.get(raw_url(
        client, SEND + "/destination=099635196&message=Mensaje%20de%20prueba2%26%2Fmas"
        "&api=dongle&wait_seconds=5"), headers=AUTH))
    assert (body["provider"], providers.requests[-1].form["text"]) == (
        "dongle", "Mensaje de prueba2&/mas")
    # refusals name the field, as problem documents
    for method, url, data, field in [
        ("POST", "/v1/sms", "destination=hello&message=x", "destination"),
        ("POST", "/v1/sms", "destination=099635199", "message"),
        ("POST", "/v1/sms", "destination=099635199&message=x&message=y", "message"),
        ("POST", SEND, "destination=099635199&message=x&api=dongle&provider=x", "api"),
        ("GET", SEND + "?destination=099635199&message=x&nope=1", None, "nope"),
        ("GET", SEND + "/destination=099635199&message=x&nope=1", None, "nope"),
        ("GET", SEND + "/destination=099635199", None, "message"),
    ]:
        r = await client.request(method, url, headers={**AUTH, **FORM}, data=data)
        problem = await r.json()
        assert (r.status, r.content_type, problem.get("field")) == (
            422, "application/problem+json", field), (url, data, problem)
    r = await client.post("/v1/sms", headers={**AUTH, **FORM}, data=b"message=%FF")
    assert r.status == 400 and r.content_type == "application/problem+json"
    r = await client.post("/v1/sms", headers={**AUTH, "Content-Type": "text/plain"}, data="x")
    assert r.status == 415


async def test_a_credential_in_the_url_opens_nothing_and_is_never_logged(api, caplog):
    client, providers = api
    caplog.set_level(logging.DEBUG)
    secret = "url-secret-0123456789abcdef0123456789abcdef"
    before = len(providers.requests)
    wrong = {"Authorization": "Basic " + base64.b64encode(f"u:{secret}".encode()).decode()}
    for url, headers in [
        (f"{SEND}?destination=099635199&message=x&token={TOKEN}", {}),
        (f"{SEND}/destination=099635199&message=x&token={TOKEN}", {}),
        (f"{SEND}/destination=099635199&message=x&password={secret}", wrong),
        (f"{SEND}?destination=099635199&message=x", wrong),
        (f"{SEND}?destination=099635199&message=x&key={secret}", {"Authorization": "Bearer "
                                                                  + secret}),
    ]:
        r = await client.get(url, headers=headers)
        assert r.status == 401, url
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert 'Basic realm="ivr-engine"' in r.headers["WWW-Authenticate"]
    # with the right header, a credential-looking parameter is refused, by name only
    r = await client.get(f"{SEND}/destination=099635199&message=x&token={secret}",
                         headers=AUTH)
    problem = await r.json()
    assert r.status == 422 and problem["field"] == "token" and secret not in problem["detail"]
    for url in (f"{SEND}?destination=099635199&message=x",
                f"{SEND}/destination=099635199&message=x"):
        r = await client.head(url, headers=AUTH)
        assert (r.status, r.headers["Allow"]) == (405, "GET")  # HEAD never sends
    # nothing was spooled (so nothing can ever leave), nothing reached the provider
    spooled = await (await client.get("/v1/sms/messages", headers=AUTH)).json()
    assert spooled["messages"] == [] and len(providers.requests) == before
    logged = ivr_logs(caplog)
    assert "refused" in logged and f"{SEND}/***" in logged
    assert secret not in logged and TOKEN not in logged and "099635199" not in logged


def test_number_regexp_on_the_national_format_and_the_dial_string():
    import re

    rule = re.compile(r"^(09\d{7})$")
    assert dialled("+59899635199", "UY") == "099635199"
    assert dialled("+33612345678", "UY") == "0033612345678"
    check_regexp("+59899635199", rule, "dongle", "national", "UY")
    with pytest.raises(NumberError, match=r"dialled 0033612345678.*match_on: national"):
        check_regexp("+33612345678", rule, "dongle", "national", "UY")
    with pytest.raises(NumberError):  # on E.164 the uContact rule matches nothing
        check_regexp("+59899635199", rule, "dongle", "e164", "UY")
    assert parse_channels("(0.3)") == (0, 1, 2, 3) == parse_channels("0-3")
    assert parse_channels("(2), (5.6)") == (2, 5, 6)
    with pytest.raises(ValueError, match="ends before it starts"):
        parse_channels("(3.0)")
    with pytest.raises(ValueError, match=r"like 0-3 or \(0\.3\)"):
        parse_channels("(0;3)")
    cfg = parse_config(config_text(), "sms.yaml", {"IVR_DATABASE_URL": "sqlite:///x.db"})
    assert cfg.model.sms.dialers["idle"].dial_string == "(0.3)"
    without_region = config_text().replace("  default_region: UY\n", "")
    with pytest.raises(ConfigError, match=r"match_on.*default_region"):
        parse_config(without_region, "sms.yaml", {"IVR_DATABASE_URL": "sqlite:///x.db"})


async def test_national_regexp_when_sending_and_a_disabled_dialer(api):
    client, providers = api
    r = await client.post("/v1/sms", headers=AUTH, json={
        "destination": "+59899635199", "message": "x", "provider": "dongle",
        "wait_seconds": 5})
    assert (await sent(r))["provider"] == "dongle"
    r = await client.post("/v1/sms", headers=AUTH, json={
        "destination": "+33612345678", "message": "x", "provider": "dongle"})
    problem = await r.json()
    assert r.status == 422 and problem["field"] == "destination"
    assert "dialled 0033612345678" in problem["detail"]
    # start on a disabled dialer: 409, and the monitor never shows it running
    r = await client.post("/v1/sms/dialers/idle/start", headers=AUTH)
    problem = await r.json()
    assert (r.status, r.content_type, problem["field"]) == (409, "application/problem+json",
                                                            "name")
    assert "enabled: false" in problem["detail"]
    assert (await client.post("/v1/sms/dialers/idle/stop", headers=AUTH)).status == 200
    assert (await client.post("/v1/sms/dialers/bulk/start", headers=AUTH)).status == 200
    dialers = {d["name"]: d for d in (await (await client.get(
        "/v1/sms/monitor", headers=AUTH)).json())["dialers"]}
    assert (dialers["idle"]["enabled"], dialers["idle"]["running"]) == (False, False)
    assert dialers["bulk"]["running"] is True
