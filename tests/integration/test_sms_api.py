"""The SMS routes in process, with the dialer's single lane running against a local Infobip:
SendSMS (queued, sent, refusals as problem+json naming the field), uploads (all or nothing,
every bad line listed, streamed), the monitor, start/stop, deleting a campaign's unprocessed
rows, and delivery reports from Infobip and Twilio."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import event

from ivr_engine.config import parse_config
from ivr_engine.sms.dialer import SmsService
from ivr_engine.repositories import Store
from ivr_engine.server import ApiParts, build_app
from ivr_engine.sms.models import TO_PROCESS
from tests.support.sms_providers import LocalProviders, start

FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "sms.yaml"
AUTH = {"Authorization": "Bearer sms-admin-token-000000000000000000000000"}


@pytest.fixture
async def api(db_url):
    providers = LocalProviders()
    runner, url = await start(providers)
    cfg = parse_config(FIXTURE.read_text(), "sms.yaml",
                       {"IVR_DATABASE_URL": db_url, "SMS_PROVIDER_URL": url})
    store = await Store.open(db_url)
    async with SmsService(lambda: cfg, store.sms, worker="api-test") as svc, \
            asyncio.TaskGroup() as tg:
        lane = tg.create_task(svc.run_single())
        parts = ApiParts(config=lambda: cfg, store=store, sms=svc)
        client = TestClient(TestServer(build_app(parts)))
        await client.start_server()
        try:
            yield client, providers, store
        finally:
            await client.close()
            lane.cancel()
    await store.close()
    await runner.cleanup()


async def test_send_sms(api):
    client, providers, store = api
    r = await client.post("/v1/sms", json={"destination": "099635199", "message": "hi"})
    assert r.status == 401 and r.content_type == "application/problem+json"
    r = await client.post("/v1/sms", headers=AUTH, json={
        "destination": "099 635 199", "message": "Hola €", "campaign": "promo",
        "agent": "ana", "wait_seconds": 5})
    body = await r.json()
    assert r.status == 200, body
    assert (body["status"], body["destination"], body["encoding"], body["segments"],
            body["provider"], body["campaign"]) == ("sent", "+59899635199", "gsm7", 1,
                                                     "infobip", "promo")
    assert body["message_id"] and providers.requests[-1].json["messages"][0]["text"] == "Hola €"
    r = await client.post("/v1/sms", headers=AUTH, json={"destination": "+59899635198",
                                                         "message": "я" * 71})
    queued = await r.json()
    assert r.status == 202 and queued["status"] == "queued" and queued["segments"] == 2
    for _ in range(100):
        got = await (await client.get(f"/v1/sms/messages/{queued['id']}", headers=AUTH)).json()
        if got["status"] == "sent":
            break
        await asyncio.sleep(0.05)
    assert got["status"] == "sent" and got["encoding"] == "ucs2"
    assert (await client.get("/v1/sms/messages/999999", headers=AUTH)).status == 404
    for payload, field, text in [
        ({"destination": "hello", "message": "x"}, "destination", "is not a phone number"),
        ({"destination": "099635199", "message": "x", "campaign": "nope"}, "campaign",
         "campaign 'nope' does not exist"),
        ({"destination": "+33612345678", "message": "x", "provider": "twilio"}, "destination",
         "of provider 'twilio'"),
        ({"destination": "099635199", "message": "x", "provider": "ghost"}, "provider",
         "provider 'ghost' is not configured"),
        ({"destination": "099635199"}, "message", ""),
    ]:
        r = await client.post("/v1/sms", headers=AUTH, json=payload)
        doc = await r.json()
        assert r.status in (409, 422) and r.content_type == "application/problem+json", doc
        assert doc["field"] == field and text in doc["detail"], doc


def row_reads(store):
    """Counts the statements that read one spool row by id (what a waiting SendSMS does)."""
    seen: list[str] = []

    def count(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "FROM sms_spool" in statement \
                and "WHERE sms_spool.id =" in statement:
            seen.append(statement)
    event.listen(store.db.engine.sync_engine, "before_cursor_execute", count)
    return seen, lambda: event.remove(store.db.engine.sync_engine, "before_cursor_execute",
                                      count)


async def test_send_sms_waits_for_the_outcome_without_polling(api):
    """``wait_seconds`` read the row every 50 ms until the outcome: with the lane in this
    process the wait is told when the lane records it (one read), with the dialer elsewhere
    it reads every 0.5 s."""
    client, providers, store = api
    providers.latency = 1.0  # the provider answers after a second
    reads, stop = row_reads(store)
    try:
        t0 = time.monotonic()
        r = await client.post("/v1/sms", headers=AUTH, json={
            "destination": "099635199", "message": "hi", "wait_seconds": 5})
        took = time.monotonic() - t0
        body = await r.json()
    finally:
        stop()
    assert r.status == 200 and body["status"] == "sent", body
    assert 1.0 <= took < 3.0, took
    assert len(reads) <= 2, f"{len(reads)} reads of the row in {took:.2f} s"

    # the dialer in another process: this API cannot be told, it reads now and then
    # (the same store and sms settings, no SmsService in the context)
    cfg = parse_config(FIXTURE.read_text(), "sms.yaml", {
        "IVR_DATABASE_URL": "sqlite:///unused.db", "SMS_PROVIDER_URL": "http://unused"})
    other = TestClient(TestServer(build_app(ApiParts(config=lambda: cfg, store=store))))
    await other.start_server()
    reads, stop = row_reads(store)
    try:
        t0 = time.monotonic()
        r = await other.post("/v1/sms", headers=AUTH, json={
            "destination": "099635198", "message": "hi", "wait_seconds": 5})
        took = time.monotonic() - t0
        body = await r.json()
    finally:
        stop()
        await other.close()
    # nobody woke the lane: its poll (0.1 s) found the row, the provider took a second
    assert r.status == 200 and body["status"] == "sent", body
    assert len(reads) <= took / 0.5 + 2, f"{len(reads)} reads of the row in {took:.2f} s"


async def test_uploads_monitor_and_campaign_controls(api):
    client, _, store = api
    csv = "".join(f"promo;0996{i:05d};Hello {i};9999;\n" for i in range(300))
    bad = csv + "nope;099600001;x;1\npromo;099600002;x @ y;1\n\n"
    r = await client.post("/v1/sms/uploads", headers={**AUTH, "Content-Type": "text/csv"},
                          data=bad.encode())
    doc = await r.json()
    assert r.status == 422 and doc["bad_lines"] == 3 and doc["errors"] == [
        {"line": 301, "reason": "campaign 'nope' does not exist (sms.campaigns)"},
        {"line": 302, "reason": "message: forbidden character '@'"},
        {"line": 303, "reason": "blank line (remove blank and trailing empty lines)"}]
    r = await client.post("/v1/sms/uploads", headers=AUTH, json={"a": 1})
    assert r.status == 415

    async def chunks():  # a streamed body: 20 000 lines
        for start_at in range(0, 20_000, 1000):
            yield "".join(f"reminders;0997{i:05d};Reminder {i};5\n"
                          for i in range(start_at, start_at + 1000)).encode()
    r = await client.post("/v1/sms/uploads", headers={**AUTH, "Content-Type": "text/csv"},
                          data=chunks())
    assert (r.status, await r.json()) == (200, {"imported": 20_000})
    r = await client.post("/v1/sms/dnc/uploads", headers={**AUTH, "Content-Type": "text/csv"},
                          data=b"23578408;promo;\n23113758;\n")
    assert (r.status, await r.json()) == (200, {"imported": 2})
    r = await client.post("/v1/sms/dialers/slow/stop", headers=AUTH)
    assert (await r.json()) == {"name": "slow", "running": False}
    assert (await client.post("/v1/sms/dialers/ghost/stop", headers=AUTH)).status == 404
    mon = await (await client.get("/v1/sms/monitor", headers=AUTH)).json()
    assert {d["name"]: (d["running"], d["in_schedule"]) for d in mon["dialers"]} == {
        "bulk": (True, True), "slow": (False, True), "closed": (True, False),
        "ports": (True, True)}
    reminders = next(c for c in mon["campaigns"] if c["campaign"] == "reminders")
    assert reminders["not_processed"] == 20_000 and reminders["processed"] == 0
    r = await client.delete("/v1/sms/campaigns/reminders/unprocessed", headers=AUTH)
    assert (await r.json()) == {"campaign": "reminders", "deleted": 20_000}


async def test_delivery_reports(api):
    client, providers, store = api
    r = await client.post("/v1/sms", headers=AUTH, json={"destination": "099635199",
                                                         "message": "hi", "wait_seconds": 5})
    sent = await r.json()
    key = providers.requests[-1].json["messages"][0]["destinations"][0]["messageId"]
    assert providers.requests[-1].json["messages"][0]["notifyUrl"] == \
        "http://127.0.0.1:8088/v1/sms/reports/infobip/report-token-000000000000000000000000000"
    report = {"results": [{"messageId": key, "status": {"groupName": "DELIVERED",
                                                         "name": "DELIVERED_TO_HANDSET"}}]}
    r = await client.post("/v1/sms/reports/infobip/wrong-token", json=report)
    assert r.status == 401  # the door's PROVIDER check: the same answer as any bad credential
    r = await client.post("/v1/sms/reports/infobip/report-token-000000000000000000000000000", json=report)
    assert (r.status, await r.json()) == (200, {"updated": 1})
    got = await (await client.get(f"/v1/sms/messages/{sent['id']}", headers=AUTH)).json()
    assert got["delivery_status"] == "DELIVERED"
    r = await client.post("/v1/sms/reports/infobip/report-token-000000000000000000000000000", json={"results": []})
    assert r.status == 422
    # Twilio posts a form with the message's sid
    r = await client.post("/v1/sms", headers=AUTH, json={
        "destination": "099635197", "message": "hi", "provider": "twilio", "wait_seconds": 5})
    tw = await r.json()
    assert tw["status"] == "sent" and providers.requests[-1].form["StatusCallback"] == \
        "http://127.0.0.1:8088/v1/sms/reports/twilio/twilio-report-token-00000000000000000000"
    r = await client.post("/v1/sms/reports/twilio/twilio-report-token-00000000000000000000",
                          data={"MessageSid": tw["message_id"], "MessageStatus": "delivered"})
    assert (await r.json()) == {"updated": 1}
    got = await (await client.get(f"/v1/sms/messages/{tw['id']}", headers=AUTH)).json()
    assert got["delivery_status"] == "delivered"


CSV = {**AUTH, "Content-Type": "text/csv"}


async def limited_client(store, **uploads):
    """An API over the same store whose config has these ``sms.uploads`` limits."""
    text = FIXTURE.read_text().replace("sms:\n", "sms:\n  uploads: {%s}\n" % ", ".join(
        f"{k}: {v}" for k, v in uploads.items()), 1)
    cfg = parse_config(text, "sms.yaml", {"IVR_DATABASE_URL": "sqlite:///unused.db",
                                          "SMS_PROVIDER_URL": "http://unused"})
    client = TestClient(TestServer(build_app(ApiParts(config=lambda: cfg, store=store))))
    await client.start_server()
    return client


async def test_upload_limits(api):
    """No limit was applied: any size was read (and imported), and a line longer than
    aiohttp's line buffer answered 500."""
    client, _, store = api
    line = "promo;099600001;Hello;1\n"
    r = await client.post("/v1/sms/uploads", headers=CSV,
                          data=(line + "promo;099600002;" + "x" * (2 << 20) + ";1\n" + line)
                          .encode())
    doc = await r.json()
    assert r.status == 422 and r.content_type == "application/problem+json", doc
    assert doc["errors"] == [{"line": 2, "reason": "longer than 16384 bytes "
                              "(sms.uploads.max_line_bytes)"}]
    small = await limited_client(store, max_bytes=4096, max_rows=20, max_line_bytes=200)
    try:
        async def streamed(n: int):  # no Content-Length: the limit is met while reading
            for _ in range(n):
                yield line.encode() * 10
        r = await small.post("/v1/sms/uploads", headers=CSV, data=streamed(40))
        doc = await r.json()
        assert r.status == 413 and r.content_type == "application/problem+json", doc
        assert doc["detail"] == ("the file is larger than 4096 bytes (sms.uploads.max_bytes); "
                                 "nothing was imported")
        r = await small.post("/v1/sms/uploads", headers=CSV, data=(line * 400).encode())
        assert r.status == 413  # the declared length, refused before reading
        r = await small.post("/v1/sms/uploads", headers=CSV, data=(line * 21).encode())
        doc = await r.json()
        assert r.status == 413 and "more than 20 rows (sms.uploads.max_rows)" in doc["detail"]
        r = await small.post("/v1/sms/dnc/uploads", headers=CSV,
                             data=("23578408;promo;" + "x" * 300 + "\n").encode())
        doc = await r.json()
        assert r.status == 422 and doc["errors"][0]["line"] == 1, doc
        r = await small.post("/v1/sms/uploads", headers=CSV, data=(line * 20).encode())
        assert (r.status, await r.json()) == (200, {"imported": 20})
    finally:
        await small.close()
    assert (await store.sms.counts(dt.datetime.now(dt.timezone.utc)))["promo"]["states"] == \
        {TO_PROCESS: 20}


async def test_a_slow_upload_holds_no_lock(api):
    """The upload's transaction was open while its body streamed in: on SQLite, from its
    first 1 000 rows on, every other writer (here a SendSMS) waited for the end of the body,
    or failed with "database is locked"."""
    client, _, store = api
    rows = 4000

    async def trickle():  # 4 000 rows over about 4 s
        for start_at in range(0, rows, 100):
            yield "".join(f"promo;0996{i:05d};Slow {i};5\n"
                          for i in range(start_at, start_at + 100)).encode()
            await asyncio.sleep(0.1)

    async def upload():
        r = await client.post("/v1/sms/uploads", headers=CSV, data=trickle())
        return r.status, await r.json()

    async with asyncio.TaskGroup() as tg:
        up = tg.create_task(upload())
        await asyncio.sleep(1.5)  # 1 500 rows are in
        assert not up.done()
        t0 = time.monotonic()
        r = await client.post("/v1/sms", headers=AUTH, json={
            "destination": "099635199", "message": "meanwhile", "wait_seconds": 4})
        took = time.monotonic() - t0
        body = await r.json()
        still_uploading = not up.done()
    assert r.status == 200 and body["status"] == "sent", body
    assert still_uploading and took < 1.0, took
    assert up.result() == (200, {"imported": rows})
