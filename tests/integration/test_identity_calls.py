"""Identity on real calls (issue 16), SIPp callers on the carrier trunk dialling an app's
fallback number with their post-dial DTMF:

- a plan made with a user's session gives the call its verified user (``IVR_USER``,
  ``IVR_VERIFIED=1``, ``GET /v1/calls/{id}``, the ``call.queued`` webhook);
- an offline code (no data path: no plan at all) is accepted once and refused on replay;
- 60 callers at once presenting wrong tokens: no more tries are looked up than the app's
  limit (30), the app hardens, and a user's plan made then still gets in (a long token)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import pytest

from ivr_engine.lifecycle.offline import code_at
from ivr_engine.testing.rtp_pcap import Key, keys_at
from tests.support.identity import open_session

from .engine_proc import start_engine

pytestmark = pytest.mark.sandbox

APPS = Path(__file__).resolve().parents[1] / "fixtures" / "apps.yaml"
KEY = "customer-key-000000000000000000000000000"
ADMIN = {"Authorization": "Bearer admin-secret-000000000000000000000000000"}
NUMBER = "+17144505656"
BLOCKED = "message-then-hangup:outside-blocked"


@pytest.fixture(scope="module")
async def engine(sandbox, tmp_path_factory):
    work = tmp_path_factory.mktemp("identity")
    config = work / "apps.yaml"
    # the figures: 30 tries per app and 3 per caller in 600 s
    config.write_text(APPS.read_text().replace(
        "guessing: {per_caller: 2, per_app: 50, window_seconds: 60}",
        "guessing: {per_caller: 3, per_app: 30, window_seconds: 600}"))
    eng = await start_engine(sandbox, work, config=config)
    yield eng
    assert await eng.stop() == 0, eng.log()


def post_dial(digits: str, then: str = "") -> list[Key]:
    keys = keys_at(digits, 400, 220, duration_ms=100)
    return keys + [Key(k, 4500 + i * 700) for i, k in enumerate(then.split())]


async def plan(engine, credential: str, **body) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{engine.api_url}/v1/apps/customer/calls",
                             headers={"Authorization": f"Bearer {credential}"},
                             json={"connectivity": 0.1, **body}) as r:
            out = await r.json()
            assert r.status == 201, out
    return out


async def login(engine, user: str) -> dict:
    async with aiohttp.ClientSession() as http:
        token = await open_session(http, engine.api_url, "customer", KEY, user)
        async with http.post(f"{engine.api_url}/v1/apps/customer/calls",
                             headers={"Authorization": f"Bearer {token}"},
                             json={"connectivity": 0.9}) as r:
            assert r.status == 201
    return {"token": token}


async def metric(engine, name: str, **labels: str) -> float:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{engine.api_url}/metrics") as r:
            text = await r.text()
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line
                                               for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0 if want else 0.0


async def test_a_users_plan_gives_the_call_its_verified_user(engine, sipp):
    async with aiohttp.ClientSession() as http:
        session = await open_session(http, engine.api_url, "customer", KEY, "alice")
    p = await plan(engine, session, custom_data={"order": "A-42"})
    run = await sipp.call(NUMBER, post_dial(p["token"] + "#", then="1"))
    call = run.calls[0]
    assert call.variables.get("IVR_USER") == "alice"
    assert call.variables.get("IVR_VERIFIED") == "1"
    assert call.variables.get("IVR_DATA_order") == "A-42"
    assert call.destination == {"type": "queue", "target": "sales"}, call.dialplan
    # an anonymous plan (the app's key): the call carries no user
    anon = await plan(engine, KEY, custom_data={"order": "B-7"})
    run = await sipp.call(NUMBER, post_dial(anon["token"] + "#", then="1"))
    assert "IVR_USER" not in run.calls[0].variables
    assert "IVR_VERIFIED" not in run.calls[0].variables
    # what the agent's screen pop reads
    m = re.search(r"call (\S+) from '\+1555\d+' \(pstn \+17144505656\) → app:customer via app "
                  r"\(verified user 'alice'\)", engine.log())
    assert m, engine.log()[-3000:]
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{engine.api_url}/v1/calls/{m.group(1)}", headers=ADMIN) as r:
            ctx = await r.json()
    assert (ctx["user"], ctx["verified"], ctx["custom_data"]) == ("alice", True,
                                                                  {"order": "A-42"})


async def test_an_offline_code_is_accepted_once_and_refused_on_replay(engine, sipp):
    body = {"device_id": "offline-phone", "platform": "mobile", "app_type": "Mobile",
            "app_version": "2.0.0", "os": "android", "os_version": "14"}
    from tests.support.identity import assertion
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{engine.api_url}/v1/apps/customer/sessions",
                             headers={"Authorization": f"Bearer {KEY}"},
                             json={**body, "assertion": assertion("customer", "bob")}) as r:
            login_body = await r.json()
            assert r.status == 201, login_body
    offline, sid = login_body["offline"], login_body["session_id"]
    code = code_at(offline["secret"], offline["counter"] + 1, offline["digits"])
    dial = offline["dial"].format(code=code)
    assert dial.startswith(NUMBER + ",,")
    presented = dial.split(",,", 1)[1]  # what the phone sends once answered
    assert presented == f"{sid}*{code}#"
    run = await sipp.call(NUMBER, post_dial(presented, then="1"))
    call = run.calls[0]
    assert call.keys[:len(presented)] == list(presented)
    assert call.variables.get("IVR_USER") == "bob" and call.variables.get("IVR_VERIFIED") == "1"
    assert call.destination == {"type": "queue", "target": "sales"}, call.dialplan
    # the same code again (a replay): an outside caller on this blocking app
    run = await sipp.call(NUMBER, post_dial(presented), hold_ms=12000)
    again = run.calls[0]
    assert again.variables.get("IVR_DESTINATION") == BLOCKED, again.variables
    assert "IVR_USER" not in again.variables
    assert await metric(engine, "ivr_token_tries_total", app="customer", kind="code",
                        outcome="matched") == 1


async def test_sixty_parallel_wrong_tokens_look_up_no_more_than_the_limit(engine, sipp):
    """Issue 16: the guard was checked, the lookup awaited, only then the failure counted:
    60 calls from 60 numbers at once had 60 tokens looked up against a limit of 30."""
    early = await plan(engine, KEY)  # a short token issued before the attack
    before = await metric(engine, "ivr_token_tries_total", app="customer", kind="token",
                          outcome="wrong")
    run = await sipp.call(NUMBER, post_dial("999999#"), calls=60, concurrency=60, rate=200,
                          hold_ms=9000, timeout=90)
    assert len(run.calls) == 60
    await asyncio.sleep(1)
    wrong = await metric(engine, "ivr_token_tries_total", app="customer", kind="token",
                         outcome="wrong") - before
    refused = await metric(engine, "ivr_token_tries_total", app="customer", kind="token",
                           outcome="refused")
    print(f"\n60 parallel wrong tokens: {wrong:g} looked up, {refused:g} refused")
    assert wrong <= 30 and wrong + refused >= 60
    assert all(c.variables.get("IVR_DESTINATION") == BLOCKED for c in run.calls)
    # the app is hardened: a plan made now gets a long token, which gets in
    late = await plan(engine, KEY)
    assert len(late["token"]) == len(early["token"]) + 4
    run = await sipp.call(NUMBER, post_dial(late["token"] + "#", then="1"))
    assert run.calls[0].destination == {"type": "queue", "target": "sales"}
    # a short token from before the attack is not looked up while the attack lasts
    run = await sipp.call(NUMBER, post_dial(early["token"] + "#"), hold_ms=12000)
    assert run.calls[0].variables.get("IVR_DESTINATION") == BLOCKED
