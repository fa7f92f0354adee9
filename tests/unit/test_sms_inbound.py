"""Issue 19 item 12, the pure parts and the store of inbound SMS: each provider's inbound
format read (and refused with the reason), opt-out keywords per language, whose sends a reply
answers, the configuration's rules; then, on SQLite and PostgreSQL, the repository: one row
per provider message id even when the same message arrives twice at once, the reply window,
the opt-out scope, a long message whole once from parts arriving together, the webhook's
retries and giving up; the CLI's CSV."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import hmac
import io
import json
import re
from types import SimpleNamespace
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select, update

from ivr_engine.config import ConfigError, parse_config
from ivr_engine.config.model_sms import DEFAULT_STOP_WORDS
from ivr_engine.repositories import Store
from ivr_engine.sms.inbound import (
    InboundError,
    Part,
    Received,
    clean_text,
    parse_inbound,
    reply_providers,
    stop_word,
)
from ivr_engine.sms.inbound_repo import Policy
from ivr_engine.sms.inbound_webhook import InboundDelivery, retry_delay, signed_request
from ivr_engine.sms.models import (
    HOOK_DELIVERED,
    HOOK_FAILED,
    HOOK_PENDING,
    SENT,
    DncEntry,
    SpoolRow,
)
from ivr_engine.sms.search import Filters
from ivr_engine.sms.spool import spool_row
from tests.support.planner import nested_loops

NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.timezone.utc)
FORM = "application/x-www-form-urlencoded"
TOKEN = "inbound-token-00000000000000000000000000"


def spec(kind: str, **kw) -> SimpleNamespace:
    return SimpleNamespace(type=kind, inbound_fields=kw.get("fields", {}),
                           inbound_numbers=kw.get("numbers", "national"))


def parse(kind: str, body: bytes | dict, ctype: str = FORM, query=None, **kw):
    if isinstance(body, dict):
        body = (json.dumps(body) if ctype == "application/json" else urlencode(body)).encode()
    return parse_inbound(spec(kind, **kw), ctype, body, query or {}, "UY")


# ---------------------------------------------------------------- the providers' formats

def test_each_provider_format_is_read():
    [tw] = parse("twilio", {"MessageSid": "SM1", "SmsSid": "SM1", "From": "+59899635199",
                            "To": "+15005550006", "Body": "Hola\nqué tal", "NumSegments": "1"})
    assert tw == Received("SM1", "+59899635199", "+15005550006", "Hola\nqué tal")
    vg = parse("vonage", b"", "application/octet-stream", {
        "msisdn": "447700900001", "to": "447700900000", "messageId": "0A01",
        "text": "STOP", "type": "text", "keyword": "STOP"})  # a GET
    assert vg == [Received("0A01", "+447700900001", "+447700900000", "STOP")]
    [part] = parse("vonage", {"msisdn": "447700900001", "to": "447700900000",
                              "messageId": "0A02", "text": "a", "type": "unicode",
                              "concat": "true", "concat-ref": "12", "concat-total": "3",
                              "concat-part": "2"}, "application/json")
    assert part.part == Part("12", 3, 2)
    [binary] = parse("vonage", {"msisdn": "447700900001", "to": "447700900000",
                                "messageId": "0A03", "type": "binary", "data": "0102",
                                "udh": "0500"})
    assert binary.text == ""
    ib = parse("infobip", {"results": [
        {"messageId": "817", "from": "385916242493", "to": "385921004026",
         "text": "QUIZ Paris", "cleanText": "Paris", "keyword": "QUIZ", "smsCount": 1},
        {"messageId": "818", "from": "InfoSMS", "to": "385921004026", "text": "x"}]},
        "application/json")
    assert [(m.message_id, m.sender, m.e164) for m in ib] == [
        ("817", "+385916242493", True), ("818", "InfoSMS", False)]
    [gw] = parse("url-post", {"msisdn": "099635199", "dest": "2900", "msg": "ok",
                              "ref": "g1"}, fields={"from": "msisdn", "to": "dest",
                                                    "text": "msg", "id": "ref"})
    assert gw == Received("g1", "+59899635199", "2900", "ok")  # a short code as sent
    [intl] = parse("url-post", {"from": "59899635199", "to": "59829001234", "text": "x",
                                "id": "g2"}, "application/json", numbers="international")
    assert (intl.sender, intl.recipient) == ("+59899635199", "+59829001234")
    [noid] = parse("url-get", {"from": "099635199", "to": "2900", "text": "x"})
    assert noid.message_id.startswith("engine-")  # the gateway sends none: each is new


@pytest.mark.parametrize("kind,body,ctype,why", [
    ("twilio", {"From": "+59899635199", "Body": "x"}, FORM, "MessageSid is missing"),
    ("twilio", {"MessageSid": "SM\x01", "From": "+1", "To": "+1"}, FORM,
     "MessageSid is not printable"),
    ("vonage", {"msisdn": "1", "to": "2", "messageId": "m", "concat": "true",
                "concat-ref": "1", "concat-total": "2", "concat-part": "3"}, FORM,
     "concat-part must be between 1 and concat-total"),
    ("vonage", {"msisdn": "1", "to": "2", "messageId": "m", "concat": "true",
                "concat-ref": "1", "concat-total": "x", "concat-part": "1"}, FORM,
     "must be numbers"),
    ("infobip", {"results": []}, "application/json", "results is missing or empty"),
    ("infobip", {"results": ["x"]}, "application/json", "each result is an object"),
    ("infobip", b"[" * 40 + b"]" * 40, "application/json", "nests deeper than 32"),
    ("infobip", {"results": [{"messageId": "1", "from": "1", "to": "2",
                              "text": "x" * 10_001}]}, "application/json",
     "longer than 10000"),
    ("url-post", {"to": "2", "text": "x"}, FORM, "from is missing"),
])
def test_what_a_provider_does_not_send_is_refused_with_the_reason(kind, body, ctype, why):
    with pytest.raises(InboundError, match=why):
        parse(kind, body, ctype)


def test_text_keeps_line_breaks_and_loses_what_no_database_stores():
    assert clean_text("a\r\nb\tc") == "a\r\nb\tc"
    assert clean_text("a\x00b") == "a\ufffdb"
    assert "\ud800" not in clean_text("x\ud800y") and clean_text("x\ud800y")[0] == "x"


# ---------------------------------------------------------------- opt-out keywords

@pytest.mark.parametrize("text,found", [
    ("STOP", ("STOP", "en")), ("  stop  ", ("STOP", "en")), ("Stop.", ("STOP", "en")),
    ("unsubscribe me please", ("UNSUBSCRIBE", "en")), ("Baja!", ("BAJA", "es")),
    ("¡baja, gracias!", ("BAJA", "es")), ("Arrêt", ("ARRET", "fr")), ("SAIR", ("SAIR", "pt")),
    ("please stop", None), ("STOPPED", None), ("", None), ("   ", None), ("!!!", None),
])
def test_stop_words_match_the_first_word_without_case_accents_or_punctuation(text, found):
    got = stop_word(text, DEFAULT_STOP_WORDS)
    assert (None if got is None else (got.word, got.language)) == found


def test_configured_stop_words_replace_the_defaults():
    words = {"es": ("NOMAS",), "de": ("ABMELDEN",)}
    assert stop_word("stop", words) is None
    assert stop_word("Abmelden", words).language == "de"


def test_a_reply_answers_the_providers_sending_from_the_number_it_reached():
    sms = SimpleNamespace(default_region="UY", providers=[
        SimpleNamespace(name="tw", sender="+15005550006"),
        SimpleNamespace(name="tw2", sender="+1 500 555 0006"),
        SimpleNamespace(name="vg", sender="ACME"),
        SimpleNamespace(name="ib", sender="029001234"),
        SimpleNamespace(name="gw", sender=None)])
    assert reply_providers(sms, "tw", "+15005550006") == {"tw", "tw2"}
    assert reply_providers(sms, "vg", "+447700900000") == {"vg"}  # alphanumeric: itself
    assert reply_providers(sms, "ib", "+59829001234") == {"ib"}  # national sender, read in UY
    assert reply_providers(sms, "ib", "+59829009999") == set()  # another number of ours
    assert reply_providers(sms, "gw", "2900") == {"gw"}


# ---------------------------------------------------------------- configuration

BASE = """
engine: {ari: {password: x}}
sms:
  providers:
"""


@pytest.mark.parametrize("provider,why", [
    (f"{{name: a, type: infobip, url: 'http://x', password: k, inbound: true}}",
     "inbound: true needs callback_token"),
    (f"{{name: a, type: twilio, user: AC1, password: t, inbound: true, "
     f"callback_token: {TOKEN}}}", "needs verify_signature: true"),
    (f"{{name: a, type: vonage, user: k, password: s, inbound_fields: {{from: x}}}}",
     "inbound_fields and inbound_numbers are for url-\\* providers"),
    (f"{{name: a, type: url-post, url: 'http://x', params: {{t: x}}, "
     f"inbound_fields: {{sender: x}}}}", "inbound_fields.sender"),
])
def test_inbound_settings_that_cannot_work_are_config_errors(provider, why):
    with pytest.raises(ConfigError) as err:
        parse_config(BASE + f"    - {provider}\n", "sms.yaml", {})
    assert any(e.startswith("sms.yaml:5:") for e in map(str, err.value.issues)), \
        err.value.issues
    assert any(re.search(why, str(e)) for e in err.value.issues), \
        err.value.issues


# ---------------------------------------------------------------- the repository

def policy(**kw) -> Policy:
    base = dict(stop_words=DEFAULT_STOP_WORDS, stop_scope="all",
                reply_providers=frozenset({"tw"}), since=NOW - dt.timedelta(hours=1),
                webhook=True)
    return Policy(**{**base, **kw})


async def sent(store, minutes_ago: float, campaign: str | None, provider: str = "tw") -> int:
    """A message sent ``minutes_ago`` to the customer by ``provider``."""
    r = spool_row(destination="+59899635199", message="hola", region="UY", encoding="auto",
                  now=NOW - dt.timedelta(minutes=minutes_ago + 1), campaign=campaign,
                  lane="single", provider=provider)
    rid = await store.sms.enqueue_one(r)
    async with store.db.sessions() as s, s.begin():
        await s.execute(update(SpoolRow).where(SpoolRow.id == rid).values(
            state=SENT, done_at=NOW - dt.timedelta(minutes=minutes_ago)))
    return rid


def msg(mid: str, text: str = "gracias", sender: str = "+59899635199", part=None) -> Received:
    return Received(mid, sender, "+15005550006", text, part)


async def dnc(store) -> set:
    async with store.db.sessions() as s:
        return set((await s.execute(select(DncEntry.number, DncEntry.campaign,
                                           DncEntry.reason))).all())


async def test_a_reply_links_the_newest_send_in_its_window(store):
    await sent(store, 90, "old")  # outside the hour
    newest = await sent(store, 5, "promo")
    await sent(store, 30, "older")
    await sent(store, 1, "elsewhere", provider="ib")  # not a provider it answers
    got = await store.sms_inbound.receive("tw", msg("SM1"), policy(), NOW)
    assert (got.reply_to, got.campaign, got.duplicate) == (newest, "promo", False)
    alone = await store.sms_inbound.receive("tw", msg("SM2", sender="+59899000000"),
                                            policy(), NOW)
    assert (alone.reply_to, alone.campaign) == (None, None)
    again = await store.sms_inbound.receive("tw", msg("SM1", "otro texto"), policy(), NOW)
    assert (again.id, again.duplicate) == (got.id, True)
    row = await store.sms_inbound.get(got.id)
    assert (row.text, row.hook_state, row.hook_next_at) == ("gracias", HOOK_PENDING, NOW)


async def test_the_same_message_arriving_twice_at_once_is_one_row(store):
    results = await asyncio.gather(*(store.sms_inbound.receive("tw", msg("SM9", "STOP"),
                                                              policy(), NOW)
                                     for _ in range(6)))
    assert sum(not r.duplicate for r in results) == 1
    assert len(await store.sms_inbound.search(Filters(NOW - dt.timedelta(1), NOW
                                                      + dt.timedelta(1)))) == 1
    assert len(await dnc(store)) == 1


async def test_opt_out_scope_and_reason(store):
    await sent(store, 5, "promo")
    a = await store.sms_inbound.receive("tw", msg("SM1", "Baja"), policy(stop_scope="campaign"),
                                        NOW)
    b = await store.sms_inbound.receive("tw", msg("SM2", "stop", sender="+59899000000"),
                                        policy(stop_scope="campaign"), NOW)  # linked to none
    c = await store.sms_inbound.receive("tw", msg("SM3", "STOP", sender="ACME"), policy(), NOW)
    d = await store.sms_inbound.receive("tw", msg("SM4", "stop"), policy(), NOW)
    assert (a.stop.word, a.dnc_added, b.dnc_added, c.stop, d.dnc_added) == (
        "BAJA", True, True, None, True)
    assert await dnc(store) == {
        ("+59899635199", "promo", f"opt-out by SMS: BAJA (es) from +59899635199 to "
         f"+15005550006, inbound message {a.id}"),
        ("+59899000000", "", f"opt-out by SMS: STOP (en) from +59899000000 to +15005550006, "
         f"inbound message {b.id}"),
        ("+59899635199", "", f"opt-out by SMS: STOP (en) from +59899635199 to +15005550006, "
         f"inbound message {d.id}")}


async def test_a_long_message_is_whole_once_from_parts_arriving_together(store):
    parts = [msg(f"0A{g}{n}", f"<{n}>", sender=f"+5989963510{g}", part=Part("7f", 5, n))
             for g in range(4) for n in range(1, 6)]  # four messages of five parts
    results = await asyncio.gather(*(store.sms_inbound.receive("vg", p, policy(), NOW)
                                     for p in parts + parts))  # each part twice, at once
    whole = [r for r in results if r.id is not None and not r.duplicate]
    assert len(whole) == 4 and sum(r.duplicate for r in results) == 20
    rows = sorted([await store.sms_inbound.get(r.id) for r in whole], key=lambda r: r.sender)
    assert [(r.text, r.provider_message_id) for r in rows] == [
        ("<1><2><3><4><5>", f"0A{g}1") for g in range(4)]
    # the sender reuses the reference later: a new message
    again = [msg(f"0B{n}", f"[{n}]", part=Part("7f", 2, n)) for n in (2, 1)]
    first = await store.sms_inbound.receive("vg", again[0], policy(), NOW)
    second = await store.sms_inbound.receive("vg", again[1], policy(), NOW)
    assert first.id is None and not first.duplicate
    assert (await store.sms_inbound.get(second.id)).text == "[1][2]"


# ---------------------------------------------------------------- the webhook

def test_the_webhook_is_signed_like_the_context_webhook():
    row = SimpleNamespace(id=3, provider="tw", provider_message_id="SM1",
                          sender="+59899635199", recipient="+15005550006", text="hola",
                          received_at=NOW, campaign=None, reply_to=None, stop_word="STOP",
                          stop_language="en", event_id="e" * 32)
    body, headers = signed_request(row, "s" * 40)
    assert headers["X-IVR-Signature"] == "sha256=" + hmac.new(b"s" * 40, body,
                                                              hashlib.sha256).hexdigest()
    assert headers["X-IVR-Delivery"] == "e" * 32
    assert json.loads(body)["stop"] == {"word": "STOP", "language": "en"}
    assert "X-IVR-Signature" not in signed_request(row, None)[1]
    hook = SimpleNamespace(backoff_seconds=1.0, max_backoff_seconds=5.0)
    assert [retry_delay(hook, n) for n in (1, 2, 3, 4, 9)] == [1, 2, 4, 5, 5]


async def test_a_failing_receiver_is_retried_later_then_given_up(store):
    statuses = [500, 500, 200]

    async def hook(request):
        return web.Response(status=statuses.pop(0) if statuses else 500)

    app = web.Application()
    app.router.add_post("/h", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    hook_cfg = SimpleNamespace(url=f"http://127.0.0.1:{port}/h", secret=None,
                               timeout_seconds=2, backoff_seconds=10, max_backoff_seconds=60,
                               max_age_hours=1)
    cfg = SimpleNamespace(model=SimpleNamespace(sms=SimpleNamespace(inbound=SimpleNamespace(
        poll_seconds=0.05, webhook=hook_cfg))))
    clock = [NOW]
    d = InboundDelivery(lambda: cfg, store.sms_inbound, clock=lambda: clock[0])
    a = await store.sms_inbound.receive("tw", msg("SM1"), policy(), NOW)
    b = await store.sms_inbound.receive("tw", msg("SM2"), policy(), NOW)
    async with aiohttp.ClientSession() as http:
        assert not await d.deliver_due(http, hook_cfg)  # a fails: b waits with it
        row_a, row_b = await store.sms_inbound.get(a.id), await store.sms_inbound.get(b.id)
        assert (row_a.hook_attempts, row_a.hook_error, row_b.hook_attempts) == (1, "HTTP 500",
                                                                                0)
        assert row_a.hook_next_at == row_b.hook_next_at == NOW + dt.timedelta(seconds=10)
        assert not await d.deliver_due(http, hook_cfg)  # not due yet: nothing sent
        assert statuses == [500, 200]
        clock[0] = NOW + dt.timedelta(seconds=10)
        await d.deliver_due(http, hook_cfg)  # 500 again: next in 20 s
        clock[0] = NOW + dt.timedelta(seconds=30)
        await d.deliver_due(http, hook_cfg)  # delivered, then b: 500
        assert (await store.sms_inbound.get(a.id)).hook_state == HOOK_DELIVERED
        clock[0] = NOW + dt.timedelta(hours=2)  # b is older than max_age_hours
        await d.deliver_due(http, hook_cfg)
    await runner.cleanup()
    row_b = await store.sms_inbound.get(b.id)
    assert (row_b.hook_state, row_b.hook_attempts) == (HOOK_FAILED, 2)
    assert await store.sms_inbound.waiting() == 0


async def test_engines_claiming_webhooks_at_once_take_each_message_once(store, db_url):
    """Every engine claims due webhooks in small batches side by side: no message twice, no
    claim above its limit — also when PostgreSQL plans the claim with nested loops."""
    for i in range(40):
        await store.sms_inbound.receive("tw", msg(f"SM{i}", sender=f"+5989900{i:04d}"),
                                        policy(), NOW)
    others = [await Store.open(db_url, **nested_loops(db_url)) for _ in range(3)]
    until = NOW + dt.timedelta(minutes=1)

    async def engine(repo, limit: int) -> list[int]:
        mine: list[int] = []
        while True:
            got = await repo.claim_hooks(NOW, until, limit)
            assert len(got) <= limit, f"asked for {limit}, got {len(got)}"
            if not got:
                return mine
            mine += [r.id for r in got]

    try:
        repos = [store.sms_inbound] + [o.sms_inbound for o in others]
        results = await asyncio.gather(*(engine(repos[i % 4], 1 + i % 3) for i in range(8)))
    finally:
        for o in others:
            await o.close()
    ids = [i for r in results for i in r]
    assert len(ids) == len(set(ids)) == 40, "a message claimed twice or left behind"


# ---------------------------------------------------------------- the CLI

async def test_the_cli_writes_the_csv(db_url, tmp_path, capsysbinary, monkeypatch):
    from ivr_engine.cli import main

    config = tmp_path / "sms.yaml"
    config.write_text("engine:\n  ari: {password: x}\n  database_url: ${IVR_DATABASE_URL}\n"
                      "sms: {default_region: UY}\n")
    monkeypatch.setenv("IVR_DATABASE_URL", db_url)
    store = await Store.open(db_url)
    now = dt.datetime.now(dt.timezone.utc)
    await store.sms_inbound.receive("tw", msg("SM1", "-1 no"), policy(), now)
    await store.sms_inbound.receive("tw", msg("SM2", "otro", sender="+59899000000"),
                                    policy(), now)
    await store.close()

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["sms", "inbound", "-c", str(config), *argv])
        out, err = capsysbinary.readouterr()
        return code, out.decode("utf-8"), err.decode()

    code, out, err = await asyncio.to_thread(run, "--number", "099635199")
    table = list(csv.DictReader(io.StringIO(out.lstrip("\ufeff"), newline="")))
    assert code == 0 and [(r["sender"], r["text"], r["webhook"]) for r in table] == [
        ("'+59899635199", "'-1 no", "pending")], err
    code, out, err = await asyncio.to_thread(run, "--from", "yesterday")
    assert (code, out) == (2, "") and "from: not an ISO 8601 time" in err


async def test_opt_outs_of_one_number_at_once_list_it_once(store):
    results = await asyncio.gather(*(store.sms_inbound.receive(
        "tw", msg(f"SM{n}", "STOP"), policy(), NOW) for n in range(8)))
    assert all(r.id is not None and r.stop is not None for r in results)
    assert sum(r.dnc_added for r in results) >= 1
    assert [n for n, _, _ in await dnc(store)] == ["+59899635199"]


async def test_a_part_left_from_an_older_message_with_the_same_reference_is_not_used(store):
    stale = msg("0C1", "old ", part=Part("9", 2, 1))  # its part 2 never came
    assert (await store.sms_inbound.receive("vg", stale, policy(),
                                            NOW - dt.timedelta(days=2))).id is None
    last = await store.sms_inbound.receive("vg", msg("0D2", "text", part=Part("9", 2, 2)),
                                           policy(), NOW - dt.timedelta(seconds=1))
    assert last.id is None  # waits for its own part 1
    whole = await store.sms_inbound.receive("vg", msg("0D1", "new ", part=Part("9", 2, 1)),
                                            policy(), NOW)
    assert (await store.sms_inbound.get(whole.id)).text == "new text"
