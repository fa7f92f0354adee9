"""The lifecycle routes in process (tests/unit/test_api_harness.py: a real Config, a real
Store on SQLite and PostgreSQL, a real PushService whose credential files are missing, so a
push answers "provider_error" without sending): logins, one session per user, the session
token on the SDK routes, logout, releases and mandatory refusals, idle expiry, the report."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

from ivr_engine.config import parse_config
from ivr_engine.lifecycle.service import Lifecycle
from tests.support.identity import assertion

from .test_api_harness import (  # noqa: F401 - api_fixture: the api fixture
    ADMIN_TOKEN,
    ENV,
    FIXTURE,
    KEYS,
    USERS,
    api_fixture,
    assert_problem,
)

LOGIN = {"user": "alice", "device_id": "iphone-1", "platform": "mobile", "app_type": "Mobile",
         "app_version": "2.17.60 (2.62740)", "os": "ios", "os_version": "14.8",
         "device_model": "iPhone 8 Plus", "push_token": "ab" * 32}


async def login(api, app="customer", iat=None, **changes):
    """A login as the SDK sends it: the user's assertion from the app's backend (issued at
    ``iat``, default now) and the device."""
    body = {**LOGIN, **changes}
    body["assertion"] = assertion(app, body["user"], iat=iat)
    return await api.post(f"/v1/apps/{app}/sessions", body, key=KEYS[app])


async def with_auth(api, method, target, token, body=None):
    headers = [("Authorization", b"Bearer " + token.encode()),
               ("Content-Type", b"application/json")]
    return await api.raw(method, target, headers,
                         json.dumps(body).encode() if body is not None else None)


async def plan(api, token):
    return await with_auth(api, "POST", "/v1/apps/customer/calls", token,
                           {"connectivity": 0.9})


async def admin_get(api, target):
    return await api.raw("GET", target, [("Authorization", b"Bearer " + ADMIN_TOKEN.encode())])


async def publish(api, body, app="customer"):
    return await with_auth(api, "POST", f"/v1/admin/apps/{app}/releases", ADMIN_TOKEN, body)


async def test_login_gives_a_token_that_opens_the_sdk_routes(api):
    r = await login(api)
    assert r.status == 201, r.body
    body = r.json()
    token = body["token"]
    assert token.startswith("ivs_") and body["user"] == "alice" and body["replaced"] == []
    assert (await plan(api, token)).status == 201  # call plans accept the session token
    device = {"app": "customer", "user": "alice", "platform": "ios", "push_token": "cd" * 32,
              "app_version": "2.17.61"}
    assert (await with_auth(api, "POST", "/v1/devices", token, device)).status == 201
    # another user's device, another app: the session acts for its own user only
    assert_problem(await with_auth(api, "POST", "/v1/devices", token,
                                   {**device, "user": "sam", "app": "staff"}), 403)
    assert_problem(await with_auth(api, "POST", "/v1/apps/staff/calls", token,
                                   {"connectivity": 0.9}), 401)
    # only the hash is stored
    rows = await api.parts.store.lifecycle.open_sessions(app="customer")
    assert [s.user for s in rows] == ["alice"] and rows[0].token_hash != token
    assert token not in json.dumps([s.token_hash for s in rows])
    # Login Info
    info = (await admin_get(api, "/v1/admin/apps/customer/sessions?user=alice")).json()
    (s,) = info["sessions"]
    assert (s["app_type"], s["app_version"], s["os"], s["os_version"], s["device_model"],
            s["platform"]) == ("Mobile", "2.17.60 (2.62740)", "ios", "14.8", "iPhone 8 Plus",
                               "mobile")


async def test_a_second_login_ends_the_first_and_its_token_is_refused(api):
    first = (await login(api)).json()
    r = await login(api, device_id="desktop-1", platform="desktop", os="windows",
                    app_type="Agent Desktop", app_version="5.1", push_token=None)
    assert r.status == 201
    second = r.json()
    # the first device was told by push: the fixture's credentials are missing, so the
    # push service refused (nothing could be sent) and says so
    assert second["replaced"] == [{"session_id": first["session_id"], "device_id": "iphone-1",
                                   "platform": "mobile", "notified": "provider_error"}]
    doc = assert_problem(await plan(api, first["token"]), 401)
    assert "replaced" in doc["detail"]
    assert (await plan(api, second["token"])).status == 201
    third = (await login(api, device_id="desktop-1", platform="desktop", os="windows",
                         app_type="Agent Desktop", app_version="5.1")).json()
    assert third["replaced"][0]["notified"] == "same_device"
    info = (await admin_get(api, "/v1/admin/apps/customer/sessions")).json()
    assert [s["session_id"] for s in info["sessions"]] == [third["session_id"]]


async def test_logout(api):
    token = (await login(api)).json()["token"]
    # the app's key proves no session: 401 (the route takes the session token only)
    assert_problem(await with_auth(api, "DELETE", "/v1/apps/customer/sessions/current",
                                   KEYS["customer"]), 401)
    r = await with_auth(api, "DELETE", "/v1/apps/customer/sessions/current", token)
    assert r.status == 200 and r.json()["end_reason"] == "logout"
    assert "logout" in assert_problem(await plan(api, token), 401)["detail"]
    assert_problem(await with_auth(api, "DELETE", "/v1/apps/customer/sessions/current",
                                   token), 401)
    assert_problem(await with_auth(api, "DELETE", "/v1/apps/staff/sessions/current",
                                   "ivs_nope"), 401)


async def test_bad_versions_and_fields_are_422(api):
    doc = assert_problem(await login(api, app_version="2.x"), 422)
    assert doc["field"] == "app_version"
    doc = assert_problem(await login(api, platform="watch"), 422)
    assert doc["field"] == "platform"
    doc = assert_problem(await publish(api, {"platform": "ios", "version": "latest",
                                             "kind": "mandatory",
                                             "store_url": "https://x.example/a"}), 422)
    assert doc["field"] == "version"
    doc = assert_problem(await publish(api, {"platform": "ios", "version": "3",
                                             "kind": "mandatory",
                                             "store_url": "http://x.example/a"}), 422)
    assert doc["field"] == "store_url"
    assert_problem(await publish(api, {"platform": "ios", "version": "3", "kind": "optional",
                                       "store_url": "https://x.example/a"}), 422)
    assert_problem(await publish(api, {"platform": "ios", "version": "3",
                                       "kind": "mandatory",
                                       "store_url": "https://x.example/a"}, app="nope"), 404)


async def test_mandatory_release_ends_sessions_and_refuses_logins_calls(api):
    old = (await login(api)).json()
    sam = (await login(api, app="staff", user="sam")).json()
    r = await publish(api, {"platform": "ios", "version": "2.17.100", "kind": "mandatory",
                            "store_url": "https://apps.example/customer",
                            "messages": {"en": "Please update", "fr": "Mettez à jour"}})
    assert r.status == 200, r.body
    out = r.json()
    assert out["created"] and out["sessions_ended"] == 1
    # alice's iPhone (2.17.60 at login) was the one older device: its notice was attempted
    assert out["notified"] == {"sent": 0, "provider_error": 1, "token_removed": 0}
    refusal = assert_problem(await plan(api, old["token"]), 403)
    assert refusal["reason"] == "mandatory_update"
    assert refusal["minimum_version"] == "2.17.100"
    assert refusal["store_url"] == "https://apps.example/customer"
    refusal = assert_problem(await login(api), 403)
    assert refusal["minimum_version"] == "2.17.100" and refusal["platform"] == "ios"
    assert (await login(api, app_version="2.17.100")).status == 201
    assert (await login(api, os="android", app_version="1.0")).status == 201  # other platform
    assert (await with_auth(api, "POST", "/v1/apps/staff/calls", sam["token"],
                            {"connectivity": 0.9})).status == 201
    # a re-publication notifies only devices still older that were not sent (none sent)
    again = (await publish(api, {"platform": "ios", "version": "2.17.100",
                                 "kind": "mandatory",
                                 "store_url": "https://apps.example/customer"})).json()
    assert not again["created"] and again["release"]["republished_at"] is not None
    assert again["skipped_up_to_date"] == 1  # alice's iPhone reported 2.17.100 since
    listed = (await admin_get(api, "/v1/admin/apps/customer/releases")).json()["releases"]
    assert [(x["version"], x["kind"]) for x in listed] == [("2.17.100", "mandatory")]
    notices = (await admin_get(api, f"/v1/admin/releases/{listed[0]['id']}/notices")).json()
    assert [(n["user"], n["device_version"], n["result"]) for n in notices["notices"]] == [
        ("alice", "2.17.60 (2.62740)", "provider_error")]
    assert_problem(await admin_get(api, "/v1/admin/releases/99999999999/notices"), 404)

    # the report: replaced, mandatory_update, open
    report = (await admin_get(api, "/v1/reports/logins?app=customer")).json()
    ended = [(row["app_version"], row["os"], row["ended"]) for row in report["rows"]]
    assert ended == [("2.17.60 (2.62740)", "ios", "mandatory_update"),
                     ("2.17.100", "ios", "replaced"), ("1.0", "android", None)]


async def test_grace_period_then_idle_expiry(api, db_url):
    clock = {"now": dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.timezone.utc)}
    cfg = parse_config(FIXTURE.read_text() + USERS + "lifecycle: {idle_expiry_seconds: 600}\n",
                       str(FIXTURE), ENV)
    life = Lifecycle(lambda: cfg, api.parts.store, api.parts.push, lambda: clock["now"])
    await api.rebuild(lifecycle=life, clock=lambda: clock["now"])
    at = lambda: clock["now"].timestamp()  # noqa: E731 - the backend signs on the same clock
    token = (await login(api, iat=at())).json()["token"]
    r = await publish(api, {"platform": "ios", "version": "3.0", "kind": "mandatory",
                            "store_url": "https://apps.example/c", "grace_seconds": 300})
    assert r.json()["sessions_ended"] == 0
    clock["now"] += dt.timedelta(seconds=299)
    assert (await plan(api, token)).status == 201  # in its grace
    assert_problem(await login(api, iat=at(), device_id="other"), 403)  # no new login below it
    clock["now"] += dt.timedelta(seconds=1)
    assert await life.sessions.sweep() == 1  # the engine's sweeper records the end
    assert assert_problem(await plan(api, token), 403)["minimum_version"] == "3.0"
    fresh = (await login(api, iat=at(), app_version="3.0.1")).json()["token"]
    clock["now"] += dt.timedelta(seconds=599)
    assert (await plan(api, fresh)).status == 201  # used: its idle time starts again
    clock["now"] += dt.timedelta(seconds=599)
    assert (await plan(api, fresh)).status == 201
    clock["now"] += dt.timedelta(seconds=600)
    assert "expired" in assert_problem(await plan(api, fresh), 401)["detail"]
    rows = (await admin_get(api, "/v1/reports/logins?from=2026-12-01T00:00:00Z&to=2026-12-02"
                            "T00:00:00Z")).json()["rows"]
    assert [r["ended"] for r in rows] == ["mandatory_update", "expired"]
    assert rows[0]["logout_at"] == "2026-12-01T08:05:00+00:00"  # when the grace ran out


async def test_report_csv_and_query_errors(api):
    token = (await login(api)).json()["token"]
    await with_auth(api, "DELETE", "/v1/apps/customer/sessions/current", token)
    r = await admin_get(api, "/v1/reports/logins.csv?user=alice")
    assert r.status == 200 and r.headers["content-type"].startswith("text/csv")
    text = r.body.decode("utf-8")
    assert text.startswith("\ufeff") and "\r\n" in text
    rows = list(csv.DictReader(io.StringIO(text[1:])))
    assert len(rows) == 1 and rows[0]["ended"] == "logout" and rows[0]["user"] == "alice"
    assert rows[0]["login_at"].endswith("+00:00") and rows[0]["logout_at"].endswith("+00:00")
    assert (await admin_get(api, "/v1/reports/logins?user=bob")).json()["rows"] == []
    for query, field in (("from=yesterday", "from"), ("to=2026-13-01", "to"),
                         ("from=2026-12-02&to=2026-12-01", "from"), ("user=%00", "user")):
        doc = assert_problem(await admin_get(api, f"/v1/reports/logins?{query}"), 422)
        assert doc["field"] == field
    assert_problem(await api.raw("GET", "/v1/reports/logins"), 401)
