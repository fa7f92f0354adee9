"""Each provider adapter against a local server speaking that provider's API: the exact
request (method, path, auth, fields), the message id it reports, how a refusal reads, what a
5xx or an unreachable provider means, Infobip's lookup; the rate cap counts segments."""

from __future__ import annotations

import asyncio
import base64
import time

import aiohttp
import pytest

from ivr_engine.config.model_sms import SmsProvider
from ivr_engine.sms.providers import Outbound
from ivr_engine.sms.urlproviders import make_provider
from tests.support.sms_providers import (
    GW_PASSWORD,
    GW_USER,
    INFOBIP_KEY,
    TWILIO_SID,
    TWILIO_TOKEN,
    VONAGE_KEY,
    VONAGE_SECRET,
    LocalProviders,
    start,
)

OUT = Outbound("k" * 32, "+59899635199", "Hola €", "gsm7", 1, channel=2)


@pytest.fixture
async def local():
    providers = LocalProviders()
    runner, url = await start(providers)
    async with aiohttp.ClientSession() as http:
        yield providers, url, http
    await runner.cleanup()


CB = "callback-token-" + "0" * 24  # a callback token (32 characters at least)


def spec(url: str, **kw) -> SmsProvider:
    return SmsProvider(name=kw.pop("name", "p"), url=url, **kw)


def basic(user: str, pw: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()


async def test_twilio(local):
    providers, url, http = local
    p = make_provider(spec(url, type="twilio", user=TWILIO_SID, password=TWILIO_TOKEN,
                           sender="+15005550006", status_callback_url="https://ivr.example",
                           callback_token=CB), http)
    r = await p.send(OUT)
    assert (r.outcome, r.answer) == ("sent", "queued") and r.message_id.startswith("SM")
    seen = providers.requests[-1]
    assert (seen.method, seen.path) == ("POST",
                                        f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json")
    assert seen.headers["Authorization"] == basic(TWILIO_SID, TWILIO_TOKEN)
    assert seen.form == {"To": "+59899635199", "From": "+15005550006", "Body": "Hola €",
                         "StatusCallback": f"https://ivr.example/v1/sms/reports/p/{CB}"}
    providers.refuse.add("+59899635199")
    r = await p.send(OUT)
    assert r.outcome == "failed" and r.answer.startswith("HTTP 400 21211: The 'To' number")
    bad = make_provider(spec(url, type="twilio", user=TWILIO_SID, password="wrong"), http)
    r = await bad.send(OUT)
    assert (r.outcome, r.answer) == ("failed", "HTTP 401 20003: Authenticate")
    assert "wrong" not in r.answer and TWILIO_TOKEN not in r.answer
    providers.fail_status = 503
    assert (await p.send(OUT)).outcome == "unknown"  # it may have been taken
    assert await p.lookup(OUT.key) is None  # Twilio cannot be asked


async def test_vonage(local):
    providers, url, http = local
    p = make_provider(spec(url, type="vonage", user=VONAGE_KEY, password=VONAGE_SECRET,
                           sender="ACME"), http)
    r = await p.send(Outbound("key1", "+59899635199", "привет", "ucs2", 1))
    assert r.outcome == "sent" and r.message_id and r.answer == "accepted (1 part)"
    seen = providers.requests[-1]
    assert (seen.method, seen.path) == ("POST", "/sms/json")
    assert seen.form == {"api_key": VONAGE_KEY, "api_secret": VONAGE_SECRET, "from": "ACME",
                         "to": "59899635199", "text": "привет", "type": "unicode",
                         "client-ref": "key1"}
    assert "Authorization" not in seen.headers
    providers.refuse.add("59899635199")
    r = await p.send(OUT)
    assert (r.outcome, r.answer) == ("failed", "status 3: Invalid to number")
    assert providers.requests[-1].form["type"] == "text"


async def test_infobip_and_its_lookup(local):
    providers, url, http = local
    p = make_provider(spec(url, type="infobip", password=INFOBIP_KEY, sender="ACME",
                           status_callback_url="https://ivr.example", callback_token=CB), http)
    r = await p.send(OUT)
    assert (r.outcome, r.message_id, r.answer) == ("sent", OUT.key, "PENDING")
    seen = providers.requests[-1]
    assert (seen.method, seen.path) == ("POST", "/sms/2/text/advanced")
    assert seen.headers["Authorization"] == f"App {INFOBIP_KEY}"
    assert seen.json == {"messages": [{
        "destinations": [{"to": "59899635199", "messageId": OUT.key}], "from": "ACME",
        "text": "Hola €", "notifyUrl": f"https://ivr.example/v1/sms/reports/p/{CB}",
        "notifyContentType": "application/json"}]}
    found = await p.lookup(OUT.key)
    assert found.outcome == "sent" and found.message_id == OUT.key
    assert (await p.lookup("never-sent")).outcome == "not-sent"
    providers.refuse.add("59899635199")
    r = await p.send(OUT)
    assert r.outcome == "failed" and r.answer.startswith("REJECTED: MISSING_TO")
    bad = make_provider(spec(url, type="infobip", password="nope"), http)
    r = await bad.send(OUT)
    assert (r.outcome, r.answer) == ("failed", "HTTP 401 UNAUTHORIZED: Invalid login details")


@pytest.mark.parametrize("kind", ["url-get", "url-get-auth", "url-post", "url-post-auth"])
async def test_url_types(local, kind):
    providers, url, http = local
    auth = kind.endswith("-auth")
    p = make_provider(spec(f"{url}/gw" + ("?auth=1" if auth else ""), type=kind,
                           user=GW_USER if auth else None, password=GW_PASSWORD if auth else None,
                           sender="ACME", message_id_field="id",
                           params={"dest": "{to_digits}", "msg": "{text}", "port": "{channel}",
                                   "ref": "{id}", "from": "{from}", "coding": "{encoding}"}),
                      http)
    r = await p.send(OUT)
    assert r.outcome == "sent" and r.message_id.startswith("gw-")
    seen = providers.requests[-1]
    fields = {"dest": "59899635199", "msg": "Hola €", "port": "2", "ref": OUT.key,
              "from": "ACME", "coding": "gsm7"}
    assert seen.method == ("POST" if "post" in kind else "GET") and seen.path == "/gw"
    if "post" in kind:
        assert seen.form == fields
    else:
        assert {k: v for k, v in seen.query.items() if k != "auth"} == fields
    assert (seen.headers.get("Authorization") == basic(GW_USER, GW_PASSWORD)) is auth
    assert await p.lookup(OUT.key) is None


async def test_an_unreachable_provider_means_not_sent(local):
    _, _, http = local
    p = make_provider(spec("http://127.0.0.1:9", type="infobip", password="x"), http)
    assert (await p.send(OUT)).outcome == "not-sent"


async def test_the_rate_cap_counts_segments_and_single_sends_go_first(local):
    _, url, http = local
    p = make_provider(spec(url, type="infobip", password=INFOBIP_KEY, rate=20), http)
    t0 = time.monotonic()
    for _ in range(3):  # 3 × 10 segments at 20 segments/s: the bucket (20) holds 2 of them
        await p.cap.take(10, single=False)
    assert 0.4 < time.monotonic() - t0 < 0.9
    msgs = make_provider(spec(url, type="infobip", password=INFOBIP_KEY, rate=20,
                              rate_unit="messages"), http)
    t0 = time.monotonic()
    for _ in range(3):
        await msgs.cap.take(10, single=False)  # counted as 3 messages: no wait
    assert time.monotonic() - t0 < 0.1
    # 20 bulk sends of 10 segments queue for the cap (10 s of it); a single send overtakes
    order: list[str] = []

    async def bulk(i: int) -> None:
        await p.cap.take(10, single=False)
        order.append(f"b{i}")

    async def single() -> None:
        await asyncio.sleep(0.05)
        await p.cap.take(1, single=True)
        order.append("single")

    tasks = [asyncio.create_task(bulk(i)) for i in range(20)]
    await single()
    for t in tasks:
        t.cancel()
    assert order.index("single") <= 2, order
