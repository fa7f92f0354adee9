"""Issue 19 item 11, the sent-message search on SQLite and PostgreSQL: filters by date range,
campaign, number, status and provider; JSON paged by id; the CSV streamed a page at a time,
formula-escaped like the login report's; refusals naming the parameter."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from pathlib import Path

import pytest
import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from ivr_engine.config import parse_config
from ivr_engine.repositories import Store
from ivr_engine.server import ApiParts, build_app
from ivr_engine.sms import searchhttp
from ivr_engine.sms.models import BLOCKED, FAILED, SENT, TO_PROCESS
from ivr_engine.sms.search import COLUMNS
from ivr_engine.sms.spool import spool_row

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sms.yaml"
AUTH = {"Authorization": "Bearer sms-admin-token-000000000000000000000000"}
NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.timezone.utc)


@pytest.fixture
async def api(db_url):
    cfg = parse_config(FIXTURE.read_text(), "sms.yaml", {"IVR_DATABASE_URL": db_url})
    store = await Store.open(db_url)
    rows = []
    # 12 rows an hour apart ending at NOW - 1h: campaigns, states, providers, numbers mixed
    for i in range(12):
        r = spool_row(destination=f"0996351{i % 3:02d}", message=f"m{i}", region="UY",
                      encoding="auto", now=NOW - dt.timedelta(hours=12 - i),
                      campaign=("promo", "reminders", None)[i % 3], position=i,
                      lane="bulk")
        r["state"] = (SENT, FAILED, TO_PROCESS, BLOCKED)[i % 4]
        r["provider"] = ("infobip", "twilio")[i % 2]
        r["provider_answer"] = None
        rows.append(r)
    rows[-1]["message"] = '=HYPERLINK("http://x","click")'
    rows[-1]["agent"] = "@ana"
    rows[-1]["provider_answer"] = "-1 credit left"
    await store.sms.enqueue(rows)
    client = TestClient(TestServer(build_app(ApiParts(config=lambda: cfg, store=store,
                                                      clock=lambda: NOW))))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        await store.close()


async def get(client, query: str) -> dict:
    r = await client.get("/v1/sms/messages" + query, headers=AUTH)
    body = await r.json()
    assert r.status == 200, body
    return body


async def test_search_filters_and_pages(api):
    body = await get(api, "")  # the last 24 hours
    assert [m["id"] for m in body["messages"]] == list(range(1, 13))
    assert body["next_after"] is None
    body = await get(api, "?from=2026-12-01T05:30:00&to=2026-12-01T09:00:00Z")
    assert [m["id"] for m in body["messages"]] == [7, 8, 9]  # created 06:00, 07:00, 08:00
    body = await get(api, "?campaign=promo&status=sent,failed")
    assert [(m["id"], m["campaign"], m["status"]) for m in body["messages"]] == [
        (1, "promo", "sent"), (10, "promo", "failed")]
    body = await get(api, "?campaign=-")
    assert {m["campaign"] for m in body["messages"]} == {None} and len(body["messages"]) == 4
    body = await get(api, "?number=099%20635%20101&provider=twilio")  # normalised like a send
    assert [(m["id"], m["destination"]) for m in body["messages"]] == [
        (2, "+59899635101"), (8, "+59899635101")]
    body = await get(api, "?status=queued")
    assert {m["status"] for m in body["messages"]} == {"queued"}
    assert [m["id"] for m in body["messages"]] == [3, 7, 11]
    pages, after = [], 0
    while after is not None:
        body = await get(api, f"?limit=5&after={after}")
        pages.append([m["id"] for m in body["messages"]])
        after = body["next_after"]
    assert pages == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12]]
    for query, field in [("?status=lost", "status"), ("?from=yesterday", "from"),
                         ("?from=2026-12-02T00:00:00", "from"), ("?number=hello", "number"),
                         ("?limit=0", "limit"), ("?limit=1001", "limit"),
                         ("?campaign=promo&campaign=x", "campaign"), ("?state=1", "state")]:
        r = await api.get("/v1/sms/messages" + query, headers=AUTH)
        problem = await r.json()
        assert (r.status, r.content_type, problem.get("field")) == (
            422, "application/problem+json", field), (query, problem)


async def test_the_csv_streams_every_row_formula_escaped(api, monkeypatch):
    monkeypatch.setattr(searchhttp, "PAGE_ROWS", 5)  # three reads: 5, 5, 2
    r = await api.get("/v1/sms/messages.csv", headers=AUTH)
    assert r.status == 200 and r.content_type == "text/csv"
    assert r.headers.get("Transfer-Encoding") == "chunked"
    raw = await r.read()
    assert raw.startswith("\ufeff".encode()) and b"\r\n" in raw
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert table[0] == list(COLUMNS) and len(table) == 13
    last = dict(zip(COLUMNS, table[-1]))
    assert last["message"] == '\'=HYPERLINK("http://x","click")'
    assert (last["agent"], last["answer"], last["destination"]) == (
        "'@ana", "'-1 credit left", "'+59899635102")
    assert last["created_at"] == "2026-12-01T11:00:00+00:00" and last["status"] == "blocked"
    r = await api.get("/v1/sms/messages.csv?status=failed&provider=twilio", headers=AUTH)
    ids = [line[0] for line in csv.reader(io.StringIO((await r.text()).lstrip("\ufeff")))]
    assert ids == ["id", "2", "6", "10"]
    r = await api.get("/v1/sms/messages.csv?to=2026-13-01", headers=AUTH)
    assert r.status == 422 and (await r.json())["field"] == "to"


async def test_the_cli_search_and_a_disabled_dialer(db_url, tmp_path, capsysbinary,
                                                    monkeypatch):
    from ivr_engine.cli import main

    config = tmp_path / "sms.yaml"
    config.write_text(FIXTURE.read_text().replace(
        "  campaigns:\n", "    idle:\n      provider: gateway\n      enabled: false\n"
        "  campaigns:\n", 1))
    monkeypatch.setenv("IVR_DATABASE_URL", db_url)
    store = await Store.open(db_url)
    now = dt.datetime.now(dt.timezone.utc)
    r = spool_row(destination="099635199", message="-10% hoy", region="UY", encoding="auto",
                  now=now - dt.timedelta(minutes=5), campaign="promo", lane="bulk")
    await store.sms.enqueue([r, {**r, "idem_key": "k2", "campaign": "reminders"}])
    await store.close()

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["sms", argv[0], "-c", str(config), *argv[1:]])
        out, err = capsysbinary.readouterr()
        return code, out.decode("utf-8"), err.decode()

    code, out, err = await asyncio.to_thread(run, "messages", "--campaign", "promo",
                                             "--number", "+59899635199")
    table = list(csv.reader(io.StringIO(out.lstrip("\ufeff"), newline="")))
    assert code == 0 and table[0] == list(COLUMNS) and len(table) == 2, err
    assert dict(zip(COLUMNS, table[1]))["message"] == "'-10% hoy"
    code, out, err = await asyncio.to_thread(run, "messages", "--status", "lost")
    assert (code, out) == (2, "") and "status: 'lost' is not one of" in err
    code, out, err = await asyncio.to_thread(run, "start", "idle")
    assert (code, out) == (2, "") and "enabled: false" in err
    code, out, err = await asyncio.to_thread(run, "start", "bulk")
    assert (code, out) == (0, "dialer bulk: started\n"), err


async def test_a_csv_cut_short_never_ends_as_a_whole_file(api, monkeypatch, caplog):
    monkeypatch.setattr(searchhttp, "PAGE_ROWS", 5)
    from ivr_engine.sms.repo import SmsRepo

    calls = 0
    real = SmsRepo.search

    async def failing(self, f, **kw):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionResetError("database gone")  # asyncpg's dropped connection
        return await real(self, f, **kw)

    monkeypatch.setattr(SmsRepo, "search", failing)
    r = await api.get("/v1/sms/messages.csv", headers=AUTH)
    assert r.status == 200  # the answer had begun
    with pytest.raises(aiohttp.ClientPayloadError):
        await r.read()  # the chunked body never ends: no client takes it for the whole file
    logged = [rec for rec in caplog.records if rec.name.startswith("ivr_engine")]
    assert [rec.getMessage()[:38] for rec in logged] == [
        "the SMS messages CSV failed after it b"]
