"""The app lifecycle against the real engine process (on SQLite and on PostgreSQL) and the
local push servers the wake-up tests use (APNs over HTTP/2 + TLS with an ES256 provider JWT,
FCM HTTP v1 with its OAuth2 endpoint): release notices reach only the older devices, as alert
pushes; a mandatory release ends sessions and refuses logins and call plans until a newer
version logs in; a second login ends the first (its device is told, its token refused); the
login report has a row for each way a session ends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests.support import keys
from tests.support.identity import assertion
from tests.support.push_servers import FakeApns, FakeFcm

from .engine_proc import start_engine

pytestmark = pytest.mark.sandbox

CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "lifecycle.yaml"
BUNDLE = "com.acme.field"
ADMIN = {"Authorization": "Bearer admin-secret-000000000000000000000000000"}
KEY = {"Authorization": "Bearer field-key-000000000000000000000000000000"}
STORE = "https://apps.example/field"


def token(n: int) -> str:
    return f"{n:02x}" * 32  # an APNs device token (hex)


@pytest.fixture
async def push(tmp_path):
    pki = keys.make_pki(tmp_path / "pki")
    auth_key = keys.make_apns_auth_key(tmp_path)
    async with FakeApns(pki, bundle_id=BUNDLE, auth_key=auth_key) as apns, FakeFcm() as fcm:
        fcm.make_service_account(tmp_path)
        env = {"IVR_TEST_APNS_KEY": str(auth_key.path), "IVR_TEST_APNS_KEY_ID": auth_key.key_id,
               "IVR_TEST_APNS_TEAM": auth_key.team_id, "IVR_TEST_APNS_URL": apns.url,
               "IVR_TEST_APNS_CA": str(pki.ca_file), "IVR_TEST_FCM_SA": str(fcm.account.path),
               "IVR_TEST_FCM_URL": fcm.url}
        yield apns, fcm, env


class Client:
    def __init__(self, http: aiohttp.ClientSession, url: str):
        self.http, self.url = http, url

    async def call(self, method: str, path: str, headers: dict, body: dict | None = None):
        async with self.http.request(method, self.url + path, headers=headers,
                                     json=body) as r:
            ctype = r.headers.get("Content-Type", "")
            return r.status, (await r.json(content_type=None) if "json" in ctype
                              else await r.text())

    async def login(self, user: str, version: str, n: int, **more):
        body = {"assertion": assertion("field", user), "device_id": f"dev-{n}",
                "platform": "mobile",
                "app_type": "Mobile", "app_version": version, "os": "ios",
                "os_version": "17.1", "device_model": "iPhone 15", "push_token": token(n),
                **more}
        return await self.call("POST", "/v1/apps/field/sessions", KEY, body)

    async def plan(self, session_token: str):
        return await self.call("POST", "/v1/apps/field/calls",
                               {"Authorization": f"Bearer {session_token}"},
                               {"connectivity": 0.9})

    async def publish(self, **body):
        return await self.call("POST", "/v1/admin/apps/field/releases", ADMIN,
                               {"store_url": STORE, **body})


async def test_notices_mandatory_sessions_and_report(sandbox, tmp_path, empty_db_url, push):
    apns, fcm, env = push
    eng = await start_engine(sandbox, tmp_path / "eng", config=CONFIG,
                             extra_env={**env, "IVR_DATABASE_URL": empty_db_url})
    try:
        async with aiohttp.ClientSession() as http:
            c = Client(http, eng.api_url)
            # three iPhones below / equal to / above the release, an Android phone below
            sessions = {}
            for n, (user, version) in enumerate([("below", "2.17.60"), ("equal", "2.17.100"),
                                                 ("above", "2.18.0")], start=1):
                status, body = await c.login(user, version, n)
                assert status == 201, body
                sessions[user] = body["token"]
            status, body = await c.login("droid", "2.17.0", 4, os="android",
                                         push_token="fcm-token-4")
            assert status == 201, body

            # recommended 2.17.100 for iOS: only the older iPhone hears of it, by alert push
            status, out = await c.publish(platform="ios", version="2.17.100",
                                          kind="recommended",
                                          messages={"en": "A new version", "fr": "Nouvelle"})
            assert status == 200, out
            assert out["notified"] == {"sent": 1, "provider_error": 0, "token_removed": 0}
            assert out["skipped_up_to_date"] == 2
            (note,) = apns.notifications
            assert note.token == token(1)
            assert (note.push_type, note.topic) == ("alert", BUNDLE)  # never VoIP
            assert note.body["aps"]["alert"] == {"title": "Update available",
                                                 "body": "A new version"}
            assert note.body["type"] == "app_update" and note.body["store_url"] == STORE
            assert fcm.messages == []  # an iOS release: the Android phone is not told
            # re-publication: the older device was sent already, nothing goes out
            status, again = await c.publish(platform="ios", version="2.17.100",
                                            kind="recommended")
            assert not again["created"] and again["notified"]["sent"] == 0
            assert again["skipped_already_sent"] == 1 and len(apns.notifications) == 1

            # an Android release goes out as an FCM data message
            status, out = await c.publish(platform="android", version="2.17.1",
                                          kind="recommended")
            assert out["notified"]["sent"] == 1
            (msg,) = fcm.messages
            assert msg.token == "fcm-token-4" and msg.data["type"] == "app_update"

            # mandatory 2.18.0: "below" and "equal" are notified and their sessions end
            status, out = await c.publish(platform="ios", version="2.18.0", kind="mandatory")
            assert status == 200, out
            assert out["notified"]["sent"] == 2 and out["sessions_ended"] == 2
            assert sorted(n.token for n in apns.notifications[1:]) == [token(1), token(2)]
            assert apns.notifications[-1].body["aps"]["alert"]["title"] == "Update required"
            status, problem = await c.plan(sessions["below"])
            assert status == 403 and problem["reason"] == "mandatory_update"
            assert (problem["minimum_version"], problem["store_url"]) == ("2.18.0", STORE)
            status, problem = await c.login("below", "2.17.60", 1)
            assert status == 403 and problem["minimum_version"] == "2.18.0"
            status, _ = await c.plan(sessions["above"])
            assert status == 201
            status, body = await c.login("below", "2.18.1", 1)  # updated: welcome back
            assert status == 201 and body["replaced"] == []
            assert (await c.plan(body["token"]))[0] == 201

            # a second login of "above" ends the first: its device is told, its token refused
            before = len(apns.notifications)
            status, body = await c.login("above", "2.18.0", 5)
            assert status == 201
            assert body["replaced"][0]["notified"] == "sent"
            told = apns.notifications[before]
            assert told.token == token(3) and told.push_type == "alert"
            assert told.body["type"] == "session_ended" and told.body["reason"] == "replaced"
            status, problem = await c.plan(sessions["above"])
            assert status == 401 and "replaced" in problem["detail"]
            status, _ = await c.call("DELETE", "/v1/apps/field/sessions/current",
                                     {"Authorization": f"Bearer {body['token']}"})
            assert status == 200

            # a dead token is recorded as removed; logged-out users are not reachable
            apns.unregistered.add(token(6))
            assert (await c.login("gone", "2.18.0", 6))[0] == 201
            status, out = await c.publish(platform="ios", version="2.19", kind="recommended")
            assert out["notified"] == {"sent": 1, "provider_error": 0, "token_removed": 1}
            assert out["skipped_logged_out"] == 2  # "equal" (mandatory), "above" (logout)
            status, notices = await c.call(
                "GET", f"/v1/admin/releases/{out['release']['id']}/notices", ADMIN)
            results = {n["user"]: n["result"] for n in notices["notices"]}
            assert results == {"gone": "token_removed", "below": "sent"}

            status, info = await c.call("GET", "/v1/admin/apps/field/sessions", ADMIN)
            assert sorted(s["user"] for s in info["sessions"]) == ["below", "droid", "gone"]
            status, report = await c.call("GET", "/v1/reports/logins?app=field", ADMIN)
            rows = [(r["user"], r["app_version"], r["ended"]) for r in report["rows"]]
            assert rows == [("below", "2.17.60", "mandatory_update"),
                            ("equal", "2.17.100", "mandatory_update"),
                            ("above", "2.18.0", "replaced"),
                            ("droid", "2.17.0", None),
                            ("below", "2.18.1", None),
                            ("above", "2.18.0", "logout"),
                            ("gone", "2.18.0", None)]
            status, text = await c.call("GET", "/v1/reports/logins.csv?user=above", ADMIN)
            assert status == 200 and text.count("\r\n") == 3
            assert ",replaced\r\n" in text and ",logout\r\n" in text
    finally:
        assert await eng.stop() == 0, eng.log()
    assert "ivs_" not in eng.log()  # no session token in the log


async def test_grace_period_sweeper_and_a_log_upload(sandbox, tmp_path, empty_db_url, push):
    apns, fcm, env = push
    eng = await start_engine(sandbox, tmp_path / "eng", config=CONFIG,
                             extra_env={**env, "IVR_DATABASE_URL": empty_db_url})
    try:
        async with aiohttp.ClientSession() as http:
            c = Client(http, eng.api_url)
            status, body = await c.login("late", "1.0", 1)
            status, out = await c.publish(platform="ios", version="2.0", kind="mandatory",
                                          grace_seconds=2)
            assert out["sessions_ended"] == 0 and out["notified"]["sent"] == 1
            assert (await c.plan(body["token"]))[0] == 201  # still in its grace
            for _ in range(60):  # the sweeper runs every second: ended without any request
                _, report = await c.call("GET", "/v1/reports/logins", ADMIN)
                if report["rows"][0]["ended"]:
                    break
                await asyncio.sleep(0.1)
            assert report["rows"][0]["ended"] == "mandatory_update"
            assert (await c.plan(body["token"]))[0] == 403

            # app logs on request: the device is asked by alert push, with the request id
            status, out = await c.call("POST", "/v1/admin/apps/field/log-requests", ADMIN,
                                       {"user": "late"})
            assert status == 201, out
            (req,) = out["requests"]
            assert req["push"] == "sent"
            asked = apns.notifications[-1]
            assert asked.push_type == "alert" and asked.body["type"] == "log_request"
            assert asked.body["request_id"] == req["id"]
            url = f"{eng.api_url}{asked.body['upload']}"
            # the device updated and logged in again: it uploads with its new session (the
            # app's key alone proves no user)
            status, fresh = await c.login("late", "2.0", 1)
            assert status == 201, fresh
            session = {"Authorization": f"Bearer {fresh['token']}"}
            async with http.put(url, data=b"x", headers={**KEY, "Content-Type": "text/plain"}) \
                    as r:
                assert r.status == 401
            for data, ctype, expected in ((b"x" * 2000, "text/plain", 413),
                                          (b"{}", "application/json", 415),
                                          (b"line 1\nline 2\n", "text/plain", 201),
                                          (b"again", "text/plain", 409)):
                async with http.put(url, data=data,
                                    headers={**session, "Content-Type": ctype}) \
                        as r:
                    assert r.status == expected, await r.text()
            async with http.get(f"{eng.api_url}/v1/admin/log-requests/{req['id']}/log",
                                headers=ADMIN) as r:
                assert r.status == 200 and await r.read() == b"line 1\nline 2\n"
    finally:
        assert await eng.stop() == 0, eng.log()
