"""The SMS routes in process, with the dialer's single lane running against a local Infobip:
SendSMS (queued, sent, refusals as problem+json naming the field), uploads (all or nothing,
every bad line listed, streamed), the monitor, start/stop, deleting a campaign's unprocessed
rows, and delivery reports from Infobip and Twilio."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import event

from ivr_engine.api.app import build_app
from ivr_engine.api.context import ApiContext
from ivr_engine.config import parse_config
from ivr_engine.sms.dialer import SmsService
from ivr_engine.store import Store
from tests.support.sms_providers import LocalProviders, start

FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "sms.yaml"
AUTH = {"Authorization": "Bearer sms-admin-token"}


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
        ctx = ApiContext(config=lambda: cfg, store=store, registry=None, sms=svc)
        client = TestClient(TestServer(build_app(ctx)))
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
    ctx = ApiContext(config=lambda: cfg, store=store, registry=None, sms=None)
    other = TestClient(TestServer(build_app(ctx)))
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
        "http://127.0.0.1:8088/v1/sms/reports/infobip/report-token"
    report = {"results": [{"messageId": key, "status": {"groupName": "DELIVERED",
                                                         "name": "DELIVERED_TO_HANDSET"}}]}
    r = await client.post("/v1/sms/reports/infobip/wrong-token", json=report)
    assert r.status == 404
    r = await client.post("/v1/sms/reports/infobip/report-token", json=report)
    assert (r.status, await r.json()) == (200, {"updated": 1})
    got = await (await client.get(f"/v1/sms/messages/{sent['id']}", headers=AUTH)).json()
    assert got["delivery_status"] == "DELIVERED"
    r = await client.post("/v1/sms/reports/infobip/report-token", json={"results": []})
    assert r.status == 422
    # Twilio posts a form with the message's sid
    r = await client.post("/v1/sms", headers=AUTH, json={
        "destination": "099635197", "message": "hi", "provider": "twilio", "wait_seconds": 5})
    tw = await r.json()
    assert tw["status"] == "sent" and providers.requests[-1].form["StatusCallback"] == \
        "http://127.0.0.1:8088/v1/sms/reports/twilio/twilio-report-token"
    r = await client.post("/v1/sms/reports/twilio/twilio-report-token",
                          data={"MessageSid": tw["message_id"], "MessageStatus": "delivered"})
    assert (await r.json()) == {"updated": 1}
    got = await (await client.get(f"/v1/sms/messages/{tw['id']}", headers=AUTH)).json()
    assert got["delivery_status"] == "delivered"
