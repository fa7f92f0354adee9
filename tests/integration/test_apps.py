"""Mobile apps end to end through the real engine and the real sandbox Asterisk:
call plans over HTTP, PSTN fallback calls carrying good / bad / expired / reused tokens,
outside-app blocking, per-app and per-language prompts, dial-0 containment, transfers
(inside the IVR over ARI, after the hand-off over AMI, refused across apps) and the
context webhook received by a local HTTP server."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import sqlite3
from pathlib import Path

import pytest
from aiohttp import web

from .conftest import next_event, start_client, stop_client
from .engine_proc import local_call, start_engine

pytestmark = pytest.mark.sandbox

APPS = Path(__file__).resolve().parents[1] / "fixtures" / "apps.yaml"
ADMIN = {"Authorization": "Bearer admin-secret-000000000000000000000000000"}
KEYS = {"customer": {"Authorization": "Bearer customer-key-000000000000000000000000000"},
        "staff": {"Authorization": "Bearer staff-key-000000000000000000000000000000"},
        "legacy": {"Authorization": "Bearer legacy-key-00000000000000000000000000000"}}


class Hook:
    """A local webhook receiver speaking plain HTTP; can fail its first N deliveries."""

    def __init__(self) -> None:
        self.received: list[tuple[dict, dict, bytes]] = []
        self.fail_first = 0
        self.event = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append((dict(request.headers), json.loads(body), body))
        if self.fail_first > 0:
            self.fail_first -= 1
            return web.Response(status=503)
        self.event.set()
        return web.Response(status=204)


@pytest.fixture(scope="module")
async def hook():
    h = Hook()
    app = web.Application()
    app.router.add_post("/hook", h.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    h.url = f"http://127.0.0.1:{port}/hook"  # type: ignore[attr-defined]
    yield h
    await runner.cleanup()


@pytest.fixture(scope="module")
async def engine(sandbox, hook, tmp_path_factory):
    eng = await start_engine(sandbox, tmp_path_factory.mktemp("apps"), config=APPS, extra_env={
        "IVR_WEBHOOK_URL": hook.url, "IVR_AMI_PASSWORD": sandbox.ami_password})
    yield eng
    assert await eng.stop() == 0, eng.log()


async def plan(http, app="customer", headers=None, **body):
    """A call plan with the app's own key unless ``headers`` says otherwise."""
    body.setdefault("connectivity", 0.2)
    headers = KEYS.get(app, {}) if headers is None else headers
    async with http.post(f"/v1/apps/{app}/calls", json=body, headers=headers) as r:
        return r.status, r.headers.get("Content-Type", ""), await r.json()


# ---------------------------------------------------------------------------- call plans

async def test_plan_voip_or_pstn(http):
    status, _, voip = await plan(http, connectivity=0.9)
    assert status == 201 and voip["mode"] == "voip"
    assert voip["sip"]["headers"]["X-IVR-Token"] == voip["token"]
    status, _, pstn = await plan(http, connectivity=0.6, language="fr")
    assert pstn["mode"] == "pstn" and pstn["number"] == "+17144505656"
    assert pstn["dial"] == f"+17144505656,,{pstn['token']}#" and len(pstn["token"]) == 6
    assert pstn["language"] == "fr"
    _, _, nodata = await plan(http, connectivity=1.0, data_path=False)
    assert nodata["mode"] == "pstn" and nodata["reason"] == "no usable data path"


async def test_plan_errors_are_problem_documents(http):
    # authentication first: an unknown app looks exactly like a wrong key
    status, ctype, body = await plan(http, app="nope", headers=KEYS["customer"])
    assert (status, ctype.split(";")[0], body["title"]) == (401, "application/problem+json",
                                                          "Unauthorized")
    _, _, wrong = await plan(http, app="customer", headers={"Authorization": "Bearer nope"})
    assert wrong == {**body, "instance": wrong["instance"]}
    status, _, body = await plan(http, app="legacy")
    assert status == 409 and "no mobile-app access point" in body["detail"]
    status, _, body = await plan(http, app="staff", headers={})
    assert status == 401
    status, _, body = await plan(http, app="staff")
    assert status == 201 and body["mode"] == "pstn"  # threshold 1: always PSTN
    status, _, body = await plan(http, connectivity="high")
    assert status == 422 and body["field"] == "connectivity"
    status, _, body = await plan(http, custom_data={"bad key": 1})
    assert status == 422 and body["field"] == "custom_data"
    async with http.post("/v1/apps/customer/calls", data=b"{nope", headers={
            **KEYS["customer"], "Content-Type": "application/json"}) as r:
        assert r.status == 400 and (await r.json())["title"] == "Malformed JSON"


# ---------------------------------------------------------------------------- fallback calls

async def test_good_token_enters_app_tree_with_language_and_custom_data(http, caller, sandbox,
                                                                        hook):
    _, _, p = await plan(http, connectivity=0.1, language="fr", caller="+33611223344",
                         custom_data={"order": "A-42", "vip": True})
    hook.event.clear()
    call = caller.start(p["number"], caller="+33611223344", keys=["1"], timeout=30,
                        post_dial=p["token"] + "#", hold=3)  # stays in the queue 3 s
    for _ in range(300):
        if call.record.destination:
            break
        await asyncio.sleep(0.02)
    # the agent's view of the call while it waits in the queue
    async with http.get(f"/v1/calls/{call.record.channel}", headers=ADMIN) as resp:
        info = await resp.json()
    assert info["app"] == "customer" and info["language"] == "fr"
    assert info["custom_data"] == {"order": "A-42", "vip": "true"}
    assert info["via"] == "app" and info["state"] == "handed-off"
    r = (await call.finished()).as_dict()
    assert r["path"] == ["cust"]
    assert r["prompts"] == ["sound:digits/5"]  # the app's own French prompt
    assert r["destination"] == {"type": "queue", "target": "sales"}
    async with http.get(f"/v1/calls/{r['channel']}") as resp:
        assert resp.status == 401
    # the context webhook got it, signed
    await asyncio.wait_for(hook.event.wait(), 10)
    headers, payload, raw = [x for x in hook.received if x[1]["call_id"] == r["channel"]][-1]
    assert payload["app"] == "customer" and payload["queue"] == "sales"
    assert payload["custom_data"] == {"order": "A-42", "vip": "true"}
    assert payload["path"] == ["cust"] and payload["language"] == "fr"
    sig = hmac.new(b"hook-secret-0000000000000000000000000000", raw, hashlib.sha256).hexdigest()
    assert headers["X-IVR-Signature"] == f"sha256={sig}"


async def test_voip_call_from_inside_the_app_lands_on_its_menu(http, caller):
    _, _, p = await plan(http, connectivity=0.95, language="fr", custom_data={"screen": "cart"})
    assert p["mode"] == "voip" and p["sip"]["extension"] == "app-customer"
    r = await caller.call(did=p["sip"]["extension"], caller="+33600000001", keys=["1"],
                          timeout=30, context="from-app",
                          variables={"__IVR_TOKEN": p["sip"]["headers"]["X-IVR-Token"]})
    assert r["path"] == ["cust"] and r["prompts"] == ["sound:digits/5"]
    assert r["destination"] == {"type": "queue", "target": "sales"}
    async with http.get(f"/v1/calls/{r['channel']}", headers=ADMIN) as resp:
        assert (await resp.json())["custom_data"] == {"screen": "cart"}


async def test_reused_token_is_refused_and_blocked_app_hangs_up(http, caller):
    _, _, p = await plan(http, connectivity=0.1)
    first = await caller.call(did=p["number"], caller="+15551230001", keys=["1"], timeout=30,
                              post_dial=p["token"] + "#")
    assert first["destination"] == {"type": "queue", "target": "sales"}
    again = await caller.call(did=p["number"], caller="+15551230001", keys=[], timeout=30,
                              post_dial=p["token"] + "#")
    assert again["prompts"] == ["sound:ss-noservice"]
    assert again["destination"] == {"type": "message-then-hangup", "target": "outside-blocked"}
    assert again["path"] == []


async def test_wrong_token_and_no_token_are_blocked(caller):
    for post_dial in ("000000#", ""):
        r = await caller.call(did="+17144505656", caller="+15551230002", keys=[], timeout=30,
                              post_dial=post_dial)
        assert r["prompts"] == ["sound:ss-noservice"], post_dial
        assert r["destination"] == {"type": "message-then-hangup", "target": "outside-blocked"}


async def test_expired_token_is_refused(http, caller, engine):
    _, _, p = await plan(http, connectivity=0.1)
    past = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)).isoformat(" ")
    with sqlite3.connect(engine.db_path) as db:
        db.execute("update call_intents set expires_at = ? where token = ?", (past, p["token"]))
    r = await caller.call(did=p["number"], caller="+15551230003", keys=[], timeout=30,
                          post_dial=p["token"] + "#")
    assert r["destination"] == {"type": "message-then-hangup", "target": "outside-blocked"}


async def test_spoofed_caller_id_alone_never_passes_when_tokens_are_required(http, caller):
    _, _, p = await plan(http, connectivity=0.1, caller="+15557770000")
    r = await caller.call(did=p["number"], caller="+15557770000", keys=[], timeout=30)
    assert r["destination"] == {"type": "message-then-hangup", "target": "outside-blocked"}


async def test_caller_match_and_ordinary_caller_on_non_blocking_app(http, caller):
    _, _, p = await plan(http, app="staff", caller="+15558880000", custom_data={"ticket": "7"})
    # token-or-caller: no token sent, the fresh intent for this caller number matches
    r = await caller.call(did=p["number"], caller="+15558880000", keys=["1"], timeout=30)
    assert r["path"] == ["staff"] and r["destination"] == {"type": "queue", "target": "support"}
    # anybody else: the app's menu as an ordinary caller (not blocked)
    r = await caller.call(did=p["number"], caller="+15550009999", keys=["1"], timeout=30)
    assert r["path"] == ["staff"] and r["destination"] == {"type": "queue", "target": "support"}


async def test_dial0_never_leaves_the_app_tree(http, caller):
    _, _, p = await plan(http, connectivity=0.1)
    r = await caller.call(did=p["number"], caller="+15551230004", keys=["2", "0", "0", "1"],
                          timeout=30, post_dial=p["token"] + "#")
    # cust-sub (dial0 top) → cust; cust (dial0 parent at its top level) → stays in cust
    assert r["path"] == ["cust", "cust-sub", "cust"]
    assert r["prompts"] == ["sound:digits/2", "sound:digits/4", "sound:digits/2",
                            "sound:digits/2"]
    assert r["destination"] == {"type": "queue", "target": "sales"}


# ---------------------------------------------------------------------------- transfers

async def _call_waiting_in_menu(sandbox, http, prefix):
    ari = await start_client(sandbox)
    _, _, p = await plan(http, connectivity=0.1)
    a, b = await local_call(ari, p["number"], prefix)
    await next_event(ari.events, "ChannelStateChange", timeout=10,
                     predicate=lambda e: e.channel_id == a and e.channel.state == "Up")
    await ari.send_dtmf(a, p["token"] + "#", between=80, duration=80)
    await next_event(ari.events, "ChannelVarset", timeout=15,
                     predicate=lambda e: e.variable == "IVR_AWAITING")
    return ari, a, b


async def test_transfer_refused_across_apps_allowed_inside(sandbox, http):
    ari, a, b = await _call_waiting_in_menu(sandbox, http, "xfer")
    try:
        async with http.post(f"/v1/calls/{b}/transfer", json={"to": "queue:support"},
                             headers=ADMIN) as r:
            body = await r.json()
            assert r.status == 403 and body["title"] == "Transfer refused"
            assert "outside app 'customer'" in body["detail"]
        async with http.post(f"/v1/calls/{b}/transfer", json={"to": "voicemail:1000"},
                             headers=ADMIN) as r:
            assert r.status == 422
        async with http.post(f"/v1/calls/{b}/transfer", json={"to": "queue:billing"},
                             headers=ADMIN) as r:
            assert r.status == 202 and (await r.json())["via"] == "ivr"
        ev = await next_event(ari.events, "ChannelDialplan", timeout=10,
                              predicate=lambda e: e.dialplan_app == "Queue")
        assert ev.dialplan_app_data.startswith("billing")
        # follow-on transfer after the hand-off: AMI redirect, still under the app's rules
        async with http.post(f"/v1/calls/{b}/transfer", json={"to": "queue:operator"},
                             headers=ADMIN) as r:
            assert r.status == 403
        async with http.post(f"/v1/calls/{b}/transfer", json={"to": "queue:sales"},
                             headers=ADMIN) as r:
            assert r.status == 202, await r.text()
            assert (await r.json())["via"] == "ami"
        ev = await next_event(ari.events, "ChannelDialplan", timeout=10,
                              predicate=lambda e: e.dialplan_app == "Queue"
                              and e.dialplan_app_data.startswith("sales"))
        # an agent (endpoint) is allowed from anywhere
        async with http.post(f"/v1/calls/{b}/transfer", json={"to": "endpoint:bob"},
                             headers=ADMIN) as r:
            assert r.status == 202
        await next_event(ari.events, "ChannelDialplan", timeout=10,
                         predicate=lambda e: e.dialplan_app == "Dial")
    finally:
        await ari.hangup(a)
        await stop_client(ari)


async def test_webhook_retries_then_delivers_with_one_delivery_id(http, caller, hook):
    hook.fail_first = 2
    hook.event.clear()
    before = len(hook.received)
    _, _, p = await plan(http, connectivity=0.1)
    r = await caller.call(did=p["number"], caller="+15551230005", keys=["1"], timeout=30,
                          post_dial=p["token"] + "#")
    assert r["destination"] == {"type": "queue", "target": "sales"}
    await asyncio.wait_for(hook.event.wait(), 10)
    mine = [x for x in hook.received[before:] if x[1]["call_id"] == r["channel"]]
    assert len(mine) == 3  # 503, 503, then 204
    assert len({h["X-IVR-Delivery"] for h, _, _ in mine}) == 1
    async with http.get("/v1/health") as resp:
        health = await resp.json()
    assert health["ari_connected"] is True
    assert health["context_webhook"]["delivered"] >= 2 and health["context_webhook"]["failed"] == 0


async def test_a_handed_off_call_that_ends_is_marked_ended_and_cannot_be_transferred(http,
                                                                                    caller):
    _, _, p = await plan(http, connectivity=0.1)
    r = await caller.call(did=p["number"], caller="+15551230006", keys=["1"], timeout=30,
                          post_dial=p["token"] + "#")
    assert r["destination"] == {"type": "queue", "target": "sales"}  # then the caller hangs up
    for _ in range(100):
        async with http.get(f"/v1/calls/{r['channel']}", headers=ADMIN) as resp:
            state = (await resp.json())["state"]
        if state == "ended":
            break
        await asyncio.sleep(0.05)
    assert state == "ended"
    async with http.post(f"/v1/calls/{r['channel']}/transfer", json={"to": "queue:billing"},
                         headers=ADMIN) as resp:
        body = await resp.json()
        assert resp.status == 409 and body["title"] == "Call ended", body
