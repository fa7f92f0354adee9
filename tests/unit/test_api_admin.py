"""Admin routes: apps with their status, live calls, config reload, test pushes."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from ivr_engine.calls.ivr import IvrPhase
from ivr_engine.calls.registry import CallInfo
from ivr_engine.config import load_config, parse_config
from ivr_engine.config.reloader import ConfigHolder
from ivr_engine.push import PushResult

from .test_api_harness import (  # noqa: F401 - api_fixture: the api fixture
    ADMIN_TOKEN,
    ENV,
    FIXTURE,
    KEYS,
    USERS,
    api_fixture,
    assert_problem,
)

ADMIN = [("Authorization", b"Bearer " + ADMIN_TOKEN.encode())]


def line_of(text: str, needle: str) -> int:
    return next(i for i, t in enumerate(text.splitlines(), 1) if needle in t)


async def get(api, path: str):
    return await api.raw("GET", path, ADMIN)


# ---------------------------------------------------------------- apps

async def test_apps_with_their_status(api):
    r = await get(api, "/v1/admin/apps")
    assert r.status == 200
    apps = {a["name"]: a for a in r.json()["apps"]}
    assert list(apps) == ["customer", "staff", "legacy"]  # config order
    text = FIXTURE.read_text()
    customer = apps["customer"]
    assert customer["status"] == "credential-problems"
    assert customer["problems"] == [
        f"{FIXTURE}:{line_of(text, 'IVR_TEST_APNS_KEY')}: apps.customer.push.apns.key_file: "
        "warning: file 'tests/fixtures/none.p8' not found (push to this platform will fail "
        "until it exists)",
        f"{FIXTURE}:{line_of(text, 'service_account_file')}: "
        "apps.customer.push.fcm.service_account_file: warning: file 'tests/fixtures/none.json' "
        "not found (push to this platform will fail until it exists)"]
    assert customer | {"problems": []} == {
        "name": "customer", "status": "credential-problems", "active": True, "reason": None,
        "problems": [], "menu": "cust", "in_app_menu": "cust-app",
        "app_links": {"sends": False, "reason": "app 'customer' has sms_links off"},
        "fallback_number": "+17144505656", "threshold": 0.6, "languages": ["en", "fr"],
        "api_key_configured": True, "push": {"apns": True, "fcm": True}}
    assert apps["staff"]["status"] == "credential-problems"
    legacy = apps["legacy"]
    assert legacy["status"] == "no-access-point" and legacy["menu"] is None
    assert (legacy["active"], legacy["reason"]) == (False, "no-in-app-access-point")
    assert any("apps.legacy: warning: app is inactive" in p for p in legacy["problems"])


async def test_apps_active_once_credentials_are_in_place(api, tmp_path):
    key, account = tmp_path / "key.p8", tmp_path / "sa.json"
    key.write_text("k")
    account.write_text("{}")
    env = {**ENV, "IVR_TEST_APNS_KEY": str(key), "IVR_TEST_FCM_SA": str(account),
           "IVR_STAFF_API_KEY": ""}
    cfg = parse_config(FIXTURE.read_text() + USERS, str(FIXTURE), env)
    await api.rebuild(config=lambda: cfg)
    apps = {a["name"]: a for a in (await get(api, "/v1/admin/apps")).json()["apps"]}
    assert apps["customer"]["status"] == "active" and apps["customer"]["problems"] == []
    staff = apps["staff"]
    assert staff["status"] == "credential-problems" and not staff["api_key_configured"]
    assert staff["problems"] == [f"{FIXTURE}: apps.staff.api_key: not set: every SDK request "
                                 "of this app is refused"]
    assert apps["legacy"]["status"] == "no-access-point"


# ---------------------------------------------------------------- live calls

class FakeCalls:
    def __init__(self, sessions):
        self.sessions = sessions

    def __len__(self) -> int:
        return len(self.sessions)


async def test_live_calls(api):
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    def info(cid: str, age: int, app: str | None) -> CallInfo:
        return CallInfo(id=cid, channel_name=f"PJSIP/trunk-{cid}", caller="+15550001111",
                        entry=f"app:{app}" if app else "did:+15550001000", via="app",
                        app=app, root_menu="cust", language="fr",
                        started_at=now - dt.timedelta(seconds=age))

    await api.rebuild(clock=lambda: now, calls=FakeCalls({
        "c1": SimpleNamespace(info=info("c1", 12, None), runtime=SimpleNamespace(path=["top"]),
                              phase=IvrPhase(None, None)),  # type: ignore[arg-type]
        "c2": SimpleNamespace(info=info("c2", 95, "customer"),
                              runtime=SimpleNamespace(path=["cust", "cust-sub"]),
                              phase=IvrPhase(None, None)),  # type: ignore[arg-type]
        "c3": SimpleNamespace(info=None, runtime=None, phase=None),  # not routed yet
    }))
    r = await get(api, "/v1/admin/calls")
    assert r.status == 200
    body = r.json()
    assert body["count"] == 2
    assert [c["id"] for c in body["calls"]] == ["c2", "c1"]  # longest waiting first
    assert body["calls"][0] == {
        "id": "c2", "app": "customer", "entry": "app:customer", "caller": "+15550001111",
        "language": "fr", "user": None, "verified": False, "phase": "ivr",
        "path": ["cust", "cust-sub"],
        "waiting_since": (now - dt.timedelta(seconds=95)).isoformat(), "waiting_seconds": 95.0,
        "node": None, "engine": None}
    assert (await get(api, "/v1/health")).json()["calls_in_ivr"] == 3


async def test_no_live_calls(api):
    assert (await get(api, "/v1/admin/calls")).json() == {"count": 0, "calls": [],
                                                         "unreachable": []}


# ---------------------------------------------------------------- reload

@pytest.fixture
async def reloadable(api, tmp_path, monkeypatch):
    """The API on a config file of its own (env from the process, as the engine's)."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "apps.yaml"
    path.write_text(FIXTURE.read_text() + USERS)
    holder = ConfigHolder(load_config(path))
    await api.rebuild(holder=holder, config=lambda: holder.current)
    return SimpleNamespace(path=path, holder=holder)


async def reload(api):
    return await api.raw("POST", "/v1/admin/reload", ADMIN)


async def test_reload_applies_a_good_file(api, reloadable, monkeypatch):
    old = reloadable.holder.current
    reloadable.path.write_text(reloadable.path.read_text().replace(
        "menus:\n", "menus:\n  extra:\n    prompt: m-top\n    options: {\"1\": queue:extra}\n"))
    r = await reload(api)
    assert r.status == 200, r.body
    summary = r.json()
    assert reloadable.holder.current is not old
    assert summary | {"warnings": []} == {
        "status": "reloaded", "path": str(reloadable.path), "menus": 7, "apps": 3,
        "access_points": 6, "users": 2, "warnings": [], "restart_needed": []}
    assert len(summary["warnings"]) == 6  # the fixture's 5, the new menu is unreachable
    assert summary["warnings"][-1].endswith("menus.extra: warning: top-level menu is not used "
                                            "by any access point (unreachable)")
    assert all(w.startswith(f"{reloadable.path}:") and ": warning: " in w
               for w in summary["warnings"])
    monkeypatch.setenv("IVR_ARI_URL", "http://127.0.0.1:9")
    assert (await reload(api)).json()["restart_needed"] == ["engine.ari"]


async def test_reload_refuses_a_bad_file_with_its_errors_and_keeps_the_config(api, reloadable):
    old = reloadable.holder.current
    text = reloadable.path.read_text()
    reloadable.path.write_text(text.replace("prompt: m-cust-sub", "prompt: m-typo").replace(
        "threshold: 0.6", "threshold: 6"))
    r = await reload(api)
    doc = assert_problem(r, 422)
    assert reloadable.holder.current is old
    path = reloadable.path
    assert doc["errors"] == [
        f"{path}:{line_of(text, 'threshold: 0.6')}: apps.customer.fallback.threshold: Input "
        "should be less than or equal to 1"]
    assert doc["title"] == "Configuration refused"
    assert doc["detail"].startswith(f"{path}: 1 error(s); the running config stays:\n")
    reloadable.path.write_text(text.replace("prompt: m-cust-sub", "prompt: m-typo"))
    doc = assert_problem(await reload(api), 422)
    assert doc["errors"] == [
        f"{path}:{line_of(text, 'prompt: m-cust-sub')}: menus.cust-sub.prompt: message "
        "'m-typo' is not defined under messages"]
    assert len(doc["warnings"]) == 5 and doc["detail"].endswith(":\n" + doc["errors"][0])
    assert (await get(api, "/v1/admin/apps")).status == 200  # the running config serves
    reloadable.path.write_bytes(b"engine: [\xff")
    doc = assert_problem(await reload(api), 422)
    assert doc["errors"][0].startswith(f"{path}:1: ")


async def test_reload_needs_the_admin_token(api, reloadable):
    r = await api.raw("POST", "/v1/admin/reload")
    assert_problem(r, 401)


# ---------------------------------------------------------------- test pushes

async def register(api, user="alice", app="customer", platform="android"):
    body = {"platform": platform, "push_token": "t" * 40}
    r = await api.post("/v1/devices", body, key=await api.login(app, user))
    assert r.status == 201, r.body
    return r.json()["id"]


async def push_test(api, body):
    return await api.post("/v1/admin/push-test", body, key=ADMIN_TOKEN)


async def test_push_test_without_credentials_says_why(api):
    device = await register(api)
    r = await push_test(api, {"app": "customer", "user": "alice"})
    assert r.status == 200
    body = r.json()
    assert body["app"] == "customer" and body["user"] == "alice"
    (result,) = body["results"]
    assert result["device_id"] == device and result["ok"] is False
    assert "FCM service account tests/fixtures/none.json" in result["reason"]


class FakePush:
    def __init__(self, result: PushResult):
        self.result = result
        self.sent: list[tuple[str, str]] = []

    async def test(self, app, device):
        self.sent.append((app, device.platform))
        return self.result


async def test_push_test_answers_each_providers_result(api):
    await register(api, platform="android")
    await register(api, platform="ios")
    push = FakePush(PushResult(True, "fcm", 200, "", False, 12.345, "projects/p/m/1"))
    await api.rebuild(push=push)
    body = (await push_test(api, {"app": "customer", "user": "alice"})).json()
    assert sorted(push.sent) == [("customer", "android"), ("customer", "ios")]
    assert sorted(r["platform"] for r in body["results"]) == ["android", "ios"]
    for result in body["results"]:
        assert result | {"device_id": 0, "platform": ""} == {
            "device_id": 0, "platform": "", "ok": True, "provider": "fcm", "status": 200,
            "reason": "", "token_removed": False, "elapsed_ms": 12.3}
    await api.rebuild(push=FakePush(PushResult(False, "fcm", 404, "UNREGISTERED", True, 3.0)))
    body = (await push_test(api, {"app": "customer", "user": "alice"})).json()
    assert all(r["token_removed"] and r["reason"] == "UNREGISTERED" for r in body["results"])


@pytest.mark.parametrize("body, status, field", [
    ({"app": "ghost", "user": "alice"}, 404, "app"),
    ({"app": "staff", "user": "alice"}, 404, "user"),  # no device for that app
    ({"app": "customer", "user": "nobody"}, 404, "user"),
    ({"app": 5, "user": "alice"}, 422, "app"),
    ({"app": "customer"}, 422, "user"),
])
async def test_push_test_refusals(api, body, status, field):
    await register(api)
    doc = assert_problem(await push_test(api, body), status)
    assert doc["field"] == field
