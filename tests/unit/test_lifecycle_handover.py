"""Login hand-over (issue 19 item 8), in process on SQLite and PostgreSQL: with
``confirm_takeover`` on, a login that would end the user's open session on another device is
answered 409 (an RFC 9457 problem matching the document) naming that session's platform and
device, nothing changes, and the same assertion repeated with ``force: true`` ends it; the
same device, a per-app ``false`` and a replayed assertion are not asked."""

from __future__ import annotations

import pytest

from ivr_engine.config import parse_config
from ivr_engine.lifecycle.repo import HandoverNeeded
from ivr_engine.lifecycle.sessions import hash_token
from tests.support.identity import assertion

from .test_api_harness import (  # noqa: F401 - api_fixture: the api fixture
    ENV,
    FIXTURE,
    KEYS,
    USERS,
    api_fixture,
    assert_problem,
)
from .test_lifecycle_api import LOGIN, plan
from .test_openapi import Contract, fetch_document

DESKTOP = {"device_id": "desktop-1", "platform": "desktop", "os": "windows",
           "app_type": "Agent Desktop", "app_version": "5.1", "os_version": "11",
           "device_model": "", "push_token": None}


def config():
    text = FIXTURE.read_text().replace(  # the first "  staff:" is the app's
        "  staff:\n", "  staff:\n    login: {confirm_takeover: false}\n", 1)
    text += "lifecycle:\n  login: {confirm_takeover: true}\n"
    return parse_config(text + USERS, str(FIXTURE), ENV)


async def send(api, app="customer", token=None, user="alice", **changes):
    body = {**LOGIN, "user": user, **changes,
            "assertion": token or assertion(app, user)}
    return await api.post(f"/v1/apps/{app}/sessions", body, key=KEYS[app])


async def test_a_login_that_would_end_another_device_asks_first(api):
    cfg = config()
    await api.rebuild(config=lambda: cfg)
    contract = Contract(await fetch_document(api))
    first = (await send(api)).json()

    token = assertion("customer", "alice")
    r = await send(api, token=token, **DESKTOP)
    doc = assert_problem(r, 409)
    contract.check("POST", "/v1/apps/{app}/sessions", r)
    assert doc["reason"] == "session_takeover" and doc["field"] == "force"
    s = doc["session"]
    assert (s["platform"], s["os"], s["os_version"], s["device_model"], s["device_id"],
            s["app_type"]) == ("mobile", "ios", "14.8", "iPhone 8 Plus", "iphone-1", "Mobile")
    assert "iPhone 8 Plus" in doc["detail"] and "ivs_" not in r.body.decode()
    assert (await plan(api, first["token"])).status == 201  # nothing ended

    r = await send(api, token=token, force=True, **DESKTOP)  # the same assertion, forced
    assert r.status == 201, r.body
    second = r.json()
    assert [x["session_id"] for x in second["replaced"]] == [first["session_id"]]
    assert_problem(await plan(api, first["token"]), 401)
    # used up now: a replay is refused before any question (tells nothing of the session)
    replay = assert_problem(await send(api, token=token, force=True), 401)
    assert "session" not in replay

    # the same device logging in again is not asked
    r = await send(api, **DESKTOP)
    assert r.status == 201 and r.json()["replaced"][0]["notified"] == "same_device"

    # an app that says false keeps replacing at once
    assert (await send(api, app="staff", user="sam")).status == 201
    r = await send(api, app="staff", user="sam", **DESKTOP)
    assert r.status == 201 and len(r.json()["replaced"]) == 1

    # a login racing past the question still asks: checked again where the session opens
    repo = api.parts.store.lifecycle
    (open_one,) = await repo.open_sessions(app="customer", user="alice")
    with pytest.raises(HandoverNeeded) as raised:
        await repo.login(token_hash=hash_token("ivs_race"), app="customer", user="alice",
                         now=open_one.started_at, ask=True, **{
                             k: LOGIN[k] for k in ("device_id", "platform", "app_type",
                                                   "app_version", "os", "os_version")})
    assert raised.value.session.id == open_one.id
    assert [x.id for x in await repo.open_sessions(app="customer", user="alice")] == [
        open_one.id]
