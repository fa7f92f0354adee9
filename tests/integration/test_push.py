"""Push wake-ups and cancels through the real senders and PushService, against local
providers speaking the real protocols (tests/support/push_servers.py): FCM HTTP v1 with its
OAuth2 token endpoint over HTTP, APNs over HTTP/2 + TLS with token (ES256 JWT) and
certificate auth.  No Asterisk, no internet: everything is on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid

import pytest

from ivr_engine.config.model import ConfigModel
from ivr_engine.push import (
    ApnsSender,
    FcmSender,
    PushError,
    PushService,
    WakePayload,
)
from ivr_engine.repositories import Store
from ivr_engine.store import Database
from tests.support import keys
from tests.support.push_servers import FakeApns, FakeFcm

BUNDLE = "com.example.ivrapp"
ANDROID = "com.example.ivrapp"
VOIP_TOKEN = "a1" * 32
ALERT_TOKEN = "b2" * 32
FCM_TOKEN = "fcm-token:" + "x" * 40
PAYLOAD = WakePayload("call-1", "+33612345678", "Alice", 20, "2025-01-02T03:04:05Z")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("push-keys")


@pytest.fixture(scope="module")
def pki(key_dir):
    return keys.make_pki(key_dir)


@pytest.fixture(scope="module")
def auth_key(key_dir):
    return keys.make_apns_auth_key(key_dir)


@pytest.fixture(scope="module")
def client_cert(pki, key_dir):
    return keys.make_apns_client_cert(pki, key_dir, BUNDLE)


@pytest.fixture
async def store(tmp_path):
    url = f"sqlite:///{tmp_path}/push.db"
    db = Database(url)
    await db.upgrade()
    await db.close()
    s = await Store.open(url)
    yield s
    await s.close()


@pytest.fixture
async def fcm(tmp_path):
    async with FakeFcm() as server:
        server.make_service_account(tmp_path)
        yield server
        assert server.hook_errors == []


@pytest.fixture
async def apns(pki, auth_key):
    async with FakeApns(pki, bundle_id=BUNDLE, auth_key=auth_key) as server:
        yield server
        assert server.hook_errors == []


def config(*, fcm: FakeFcm | None = None, apns: FakeApns | None = None, pki=None,
           auth_key=None, cert=None, fcm_file=None) -> ConfigModel:
    push: dict = {}
    if fcm is not None:
        push["fcm"] = {"service_account_file": str(fcm_file or fcm.account.path),
                       "url": fcm.url}
    if apns is not None:
        creds: dict = {"url": apns.url, "ca_file": str(pki.ca_file)}
        if cert is not None:
            creds["certificate_file"] = str(cert)
        else:
            creds.update(key_file=str(auth_key.path), key_id=auth_key.key_id,
                         team_id=auth_key.team_id)
        push["apns"] = creds
    return ConfigModel.model_validate({
        "engine": {"ari": {"password": "unused"}},
        "apps": {"demo": {"ios_id": BUNDLE, "android_id": ANDROID, "push": push}},
    })


@pytest.fixture
async def service(store):
    """A factory: ``await service(cfg, timeout=...)``; every service made is closed."""
    made: list[PushService] = []

    async def make(cfg: ConfigModel, timeout: float = 2.0) -> PushService:
        svc = PushService(lambda: cfg, store, timeout=timeout)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        await svc.close()


async def tokens(store: Store, user: str = "u1") -> list[tuple[str, str | None, str | None]]:
    return [(d.platform, d.push_token, d.voip_token) for d in await store.devices.for_user(user)]


# --------------------------------------------------------------------------- FCM


async def test_fcm_wake_exact_message_and_access_token_reuse(fcm, store, service):
    device = await store.devices.upsert(user="u1", app="demo", platform="android",
                                       push_token=FCM_TOKEN)
    svc = await service(config(fcm=fcm))
    r1 = await svc.wake(device, PAYLOAD, 15)
    r2 = await svc.wake(device, PAYLOAD, 15)

    assert r1.ok and r2.ok, (r1, r2)
    assert (r1.provider, r1.status, r1.reason, r1.token_invalid) == ("fcm", 200, "", False)
    assert r1.id.startswith("projects/ivr-test/messages/") and r1.id != r2.id
    assert len(fcm.messages) == 2
    assert fcm.messages[0].message == {
        "token": FCM_TOKEN,
        "data": {"type": "incoming_call", "call_id": "call-1", "caller_number": "+33612345678",
                 "caller_name": "Alice", "ring_timeout": "20",
                 "timestamp": "2025-01-02T03:04:05Z"},
        "android": {"priority": "HIGH", "ttl": "15s"},
    }
    # one OAuth exchange for both sends; the assertion was a proper service-account JWT
    assert len(fcm.token_requests) == 1
    claims = fcm.token_requests[0]
    assert claims["iss"] == claims["sub"] == fcm.account.client_email
    assert claims["aud"] == fcm.token_uri
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging"
    assert fcm.rejected == []
    assert await tokens(store) == [("android", FCM_TOKEN, None)]


async def test_fcm_cancel(fcm, store, service):
    device = await store.devices.upsert(user="u1", app="demo", platform="android",
                                       push_token=FCM_TOKEN)
    svc = await service(config(fcm=fcm))
    r = await svc.cancel(device, "call-9", "+33612345678")
    assert r.ok and r.provider == "fcm", r
    assert [m.message for m in fcm.messages] == [{
        "token": FCM_TOKEN,
        "data": {"type": "cancel_call", "call_id": "call-9"},
        "android": {"priority": "HIGH", "ttl": "30s"},
    }]


async def test_fcm_unregistered_token_is_forgotten(fcm, store, service):
    device = await store.devices.upsert(user="u1", app="demo", platform="android",
                                       push_token=FCM_TOKEN)
    other = await store.devices.upsert(user="u2", app="demo", platform="android",
                                      push_token="still-good")
    fcm.unregistered.add(FCM_TOKEN)
    svc = await service(config(fcm=fcm))
    r = await svc.wake(device, PAYLOAD, 15)
    assert (r.ok, r.status, r.reason, r.token_invalid) == (False, 404, "UNREGISTERED", True)
    assert fcm.messages == []
    assert await tokens(store) == []  # the device had no other token: deleted
    assert await tokens(store, "u2") == [("android", "still-good", None)]
    assert (await svc.wake(other, PAYLOAD, 15)).ok


async def test_fcm_invalid_registration_token_is_forgotten(fcm, store, service):
    device = await store.devices.upsert(user="u1", app="demo", platform="android",
                                       push_token=FCM_TOKEN)
    fcm.invalid.add(FCM_TOKEN)
    svc = await service(config(fcm=fcm))
    r = await svc.wake(device, PAYLOAD, 15)
    assert (r.ok, r.status, r.reason, r.token_invalid) == (False, 400, "INVALID_ARGUMENT", True)
    assert await tokens(store) == []


async def test_fcm_refreshes_access_token_once_on_401(fcm):
    async with FcmSender(str(fcm.account.path), base_url=fcm.url, timeout=2) as sender:
        assert (await sender.send_wake(FCM_TOKEN, PAYLOAD, 10)).ok
        fcm.revoke_access_tokens()
        r = await sender.send_wake(FCM_TOKEN, PAYLOAD, 10)
    assert r.ok, r
    assert len(fcm.token_requests) == 2
    assert [x.status for x in fcm.rejected] == [401]
    assert len(fcm.messages) == 2


async def test_fcm_timeout_is_bounded(fcm):
    fcm.delay = 3.0
    async with FcmSender(str(fcm.account.path), base_url=fcm.url, timeout=0.4) as sender:
        started = time.monotonic()
        r = await sender.send_wake(FCM_TOKEN, PAYLOAD, 10)
        took = time.monotonic() - started
    assert (r.ok, r.status, r.reason, r.token_invalid) == (False, None, "timeout", False)
    assert 0.35 < took < 0.7, took
    assert len(fcm.messages) == 1  # FCM got it; its answer came too late


async def test_fcm_connection_refused(fcm):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with FcmSender(str(fcm.account.path), base_url=f"http://127.0.0.1:{port}",
                         timeout=1) as sender:
        r = await sender.send_wake(FCM_TOKEN, PAYLOAD, 10)
    assert (r.ok, r.reason) == (False, "connection error"), r


async def test_fcm_hook_runs_after_accepting(fcm, store, service):
    """The wake-up tests start a SIP client from this hook, a while after the push."""
    seen: list[tuple[str, float]] = []
    done = asyncio.Event()

    async def hook(message):
        await asyncio.sleep(0.05)
        seen.append((message.data["call_id"], time.monotonic() - message.received_at))
        done.set()

    fcm.on_message = hook
    device = await store.devices.upsert(user="u1", app="demo", platform="android",
                                       push_token=FCM_TOKEN)
    svc = await service(config(fcm=fcm))
    assert (await svc.wake(device, PAYLOAD, 15)).ok
    await asyncio.wait_for(done.wait(), 2)
    assert seen[0][0] == "call-1" and seen[0][1] >= 0.05


# --------------------------------------------------------------------------- APNs


async def test_apns_token_auth_wake_is_a_voip_push(apns, pki, auth_key, store, service):
    device = await store.devices.upsert(user="u1", app="demo", platform="ios",
                                       push_token=ALERT_TOKEN, voip_token=VOIP_TOKEN)
    svc = await service(config(apns=apns, pki=pki, auth_key=auth_key))
    now = int(time.time())
    r = await svc.wake(device, PAYLOAD, 25)
    assert (r.ok, r.provider, r.status, r.reason) == (True, "apns", 200, ""), r

    [note] = apns.notifications
    assert note.token == VOIP_TOKEN  # the PushKit token, not the alert token
    assert note.push_type == "voip"
    assert note.topic == f"{BUNDLE}.voip"
    assert note.headers["apns-priority"] == "10"
    assert now + 25 - 1 <= int(note.headers["apns-expiration"]) <= int(time.time()) + 25
    assert note.body == {"aps": {}, **PAYLOAD.data()}
    assert note.auth == "token" and note.jwt_claims["iss"] == auth_key.team_id
    assert note.apns_id == r.id
    assert apns.http_versions == {"2"}
    # a second push reuses the HTTP/2 connection and the provider JWT
    assert (await svc.wake(device, PAYLOAD, 25)).ok
    assert apns.notifications[1].headers["authorization"] == note.headers["authorization"]


async def test_apns_certificate_auth(pki, client_cert, store, service):
    async with FakeApns(pki, bundle_id=BUNDLE, require_client_cert=True) as apns:
        device = await store.devices.upsert(user="u1", app="demo", platform="ios",
                                           voip_token=VOIP_TOKEN)
        svc = await service(config(apns=apns, pki=pki, cert=client_cert))
        r = await svc.wake(device, PAYLOAD, 10)
        assert r.ok, r
        [note] = apns.notifications
        assert note.auth == "certificate" and "authorization" not in note.headers
        assert (note.push_type, note.topic) == ("voip", f"{BUNDLE}.voip")

        # without a client certificate the TLS handshake is refused: nothing gets through
        key = keys.make_apns_auth_key(client_cert.parent, key_id="OTHERKEY01")
        async with ApnsSender(bundle_id=BUNDLE, key_file=str(key.path), key_id=key.key_id,
                              team_id=key.team_id, url=apns.url, ca_file=str(pki.ca_file),
                              timeout=0.5) as anonymous:
            r = await anonymous.send_wake(VOIP_TOKEN, PAYLOAD, 10)
        assert not r.ok and r.reason in ("connection error", "timeout"), r
        assert len(apns.notifications) == 1


async def test_apns_cancel_is_an_alert_push_on_the_bundle_topic(apns, pki, auth_key, store,
                                                                service):
    device = await store.devices.upsert(user="u1", app="demo", platform="ios",
                                       push_token=ALERT_TOKEN, voip_token=VOIP_TOKEN)
    svc = await service(config(apns=apns, pki=pki, auth_key=auth_key))
    r = await svc.cancel(device, "call-7", "+33612345678")
    assert r.ok, r
    [note] = apns.notifications
    assert note.token == ALERT_TOKEN  # never the VoIP token
    assert (note.push_type, note.topic) == ("alert", BUNDLE)
    assert note.headers["apns-priority"] == "10"
    assert note.body == {
        "aps": {"alert": {"title": "Missed call", "body": "+33612345678"},
                "thread-id": "call-7"},
        "type": "cancel_call", "call_id": "call-7",
    }


async def test_apns_cancel_needs_an_alert_token(apns, pki, auth_key, store, service):
    device = await store.devices.upsert(user="u1", app="demo", platform="ios",
                                       voip_token=VOIP_TOKEN)
    svc = await service(config(apns=apns, pki=pki, auth_key=auth_key))
    r = await svc.cancel(device, "call-7", "+33612345678")
    assert (r.ok, r.reason) == (False, "no alert token")
    assert apns.notifications == [] and apns.rejected == []


@pytest.mark.parametrize("answer,status,reason", [
    ("unregistered", 410, "Unregistered"),
    ("bad_tokens", 400, "BadDeviceToken"),
])
async def test_apns_dead_token_is_forgotten(apns, pki, auth_key, store, service,
                                            answer, status, reason):
    device = await store.devices.upsert(user="u1", app="demo", platform="ios",
                                       push_token=ALERT_TOKEN, voip_token=VOIP_TOKEN)
    getattr(apns, answer).add(VOIP_TOKEN)
    svc = await service(config(apns=apns, pki=pki, auth_key=auth_key))
    r = await svc.wake(device, PAYLOAD, 10)
    assert (r.ok, r.status, r.reason, r.token_invalid) == (False, status, reason, True)
    assert apns.notifications == []
    assert await tokens(store) == [("ios", ALERT_TOKEN, None)]  # the alert token stays


async def test_apns_voip_push_to_an_alert_token_keeps_it(apns, pki, auth_key, store, service):
    """No VoIP token: the wake goes to the alert token; APNs's DeviceTokenNotForTopic then
    says "wrong kind of token", not "dead token" — it must not be wiped."""
    device = await store.devices.upsert(user="u1", app="demo", platform="ios",
                                       push_token=ALERT_TOKEN)
    apns.wrong_topic_tokens.add(ALERT_TOKEN)
    svc = await service(config(apns=apns, pki=pki, auth_key=auth_key))
    r = await svc.wake(device, PAYLOAD, 10)
    assert (r.ok, r.status, r.reason, r.token_invalid) == (False, 400, "DeviceTokenNotForTopic",
                                                           False)
    assert await tokens(store) == [("ios", ALERT_TOKEN, None)]


async def test_apns_timeout_is_bounded_and_the_connection_survives(apns, pki, auth_key):
    async with ApnsSender(bundle_id=BUNDLE, key_file=str(auth_key.path),
                          key_id=auth_key.key_id, team_id=auth_key.team_id, url=apns.url,
                          ca_file=str(pki.ca_file), timeout=0.4) as sender:
        assert (await sender.send_wake(VOIP_TOKEN, PAYLOAD, 10)).ok  # connection up
        apns.delay = 0.6
        started = time.monotonic()
        r = await sender.send_wake(VOIP_TOKEN, PAYLOAD, 10)
        took = time.monotonic() - started
        assert (r.ok, r.status, r.reason, r.token_invalid) == (False, None, "timeout", False)
        assert 0.35 < took < 0.7, took
        # the late answer arrives for a request given up on; the connection stays usable
        await asyncio.sleep(0.4)
        apns.delay = 0
        r = await sender.send_wake(VOIP_TOKEN, PAYLOAD, 10)
        assert r.ok, r
    assert len(apns.notifications) == 3


async def test_push_test_sends_a_test_wake(apns, pki, auth_key, store, service):
    device = await store.devices.upsert(user="u1", app="demo", platform="ios",
                                       voip_token=VOIP_TOKEN)
    svc = await service(config(apns=apns, pki=pki, auth_key=auth_key))
    r = await svc.test("demo", device)
    assert r.ok, r
    [note] = apns.notifications
    assert note.body["call_id"].startswith("test-") and note.push_type == "voip"
    uuid.UUID(note.body["call_id"][5:])


# --------------------------------------------------------------------------- configuration


async def test_senders_are_kept_and_rebuilt_when_credentials_change(fcm, tmp_path, store):
    device = await store.devices.upsert(user="u1", app="demo", platform="android",
                                       push_token=FCM_TOKEN)
    current = config(fcm=fcm)
    svc = PushService(lambda: current, store, timeout=2)
    try:
        assert (await svc.wake(device, PAYLOAD, 10)).ok
        assert (await svc.cancel(device, "call-1")).ok
        assert len(fcm.token_requests) == 1  # one sender, one access token
        (tmp_path / "other").mkdir()
        async with FakeFcm() as other:
            other.make_service_account(tmp_path / "other")
            current = config(fcm=other)  # a reload pointing the app elsewhere
            assert (await svc.wake(device, PAYLOAD, 10)).ok
            assert len(other.messages) == 1 and len(fcm.messages) == 2
    finally:
        await svc.close()



async def test_configuration_problems_raise_push_error(tmp_path, store, service):
    svc = await service(config())
    device = await store.devices.upsert(user="u1", app="demo", platform="android",
                                       push_token=FCM_TOKEN)
    with pytest.raises(PushError, match="no push.fcm"):
        await svc.wake(device, PAYLOAD, 10)
    with pytest.raises(PushError, match="unknown app"):
        await svc.wake(device, PAYLOAD, 10, app="nope")
    with pytest.raises(PushError, match="absent.json"):
        await FcmSender(str(tmp_path / "absent.json")).open()
    bad = tmp_path / "bad.p8"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(PushError, match="not a PEM"):
        await ApnsSender(bundle_id=BUNDLE, key_file=str(bad), key_id="K", team_id="T").open()
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * (2 * 1024 * 1024))
    with pytest.raises(PushError, match="not a key file"):
        await FcmSender(str(huge)).open()
    with pytest.raises(PushError, match="key_id and team_id"):
        ApnsSender(bundle_id=BUNDLE, key_file=str(bad))


async def worst_loop_lag(stop: asyncio.Event, tick: float = 0.01) -> float:
    """The longest the event loop was late for a ``tick`` sleep until ``stop``."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    while not stop.is_set():
        t = loop.time()
        await asyncio.sleep(tick)
        worst = max(worst, loop.time() - t - tick)
    return worst


async def test_a_slow_credentials_file_does_not_stall_the_loop(fcm, tmp_path, store, service):
    """The service account (and the APNs key) was read and parsed on the event loop: a file
    slow to read (here a named pipe its writer fills a second later; a network mount in
    production) stalled every call in progress that long."""
    fifo = tmp_path / "slow-account.json"
    os.mkfifo(fifo)
    account = fcm.account.path.read_bytes()

    def writer() -> None:
        time.sleep(1.0)
        with open(fifo, "wb") as f:
            f.write(account)

    device = await store.devices.upsert(user="u1", app="demo", platform="android",
                                       push_token=FCM_TOKEN)
    svc = await service(config(fcm=fcm, fcm_file=fifo))
    stop = asyncio.Event()
    filler = threading.Thread(target=writer)  # running whatever the loop does
    async with asyncio.TaskGroup() as tg:
        lag = tg.create_task(worst_loop_lag(stop))
        await asyncio.sleep(0.05)  # the lag watch is running
        started = time.monotonic()
        filler.start()
        r = await svc.wake(device, PAYLOAD, 15)
        took = time.monotonic() - started
        stop.set()
    await asyncio.to_thread(filler.join, 5)
    assert r.ok, r
    assert took >= 0.9, took  # it did wait for the file
    assert lag.result() < 0.25, f"the loop stalled {lag.result():.3f} s"


async def test_a_rotated_credentials_file_is_reloaded(fcm, tmp_path, store, service, caplog):
    """A sender kept its key until the configuration changed: a key file replaced in place
    (a rotation) was never read again. A replacement that does not load keeps the old one."""
    caplog.set_level(logging.INFO, logger="ivr_engine.push.service")
    device = await store.devices.upsert(user="u1", app="demo", platform="android",
                                       push_token=FCM_TOKEN)
    path = fcm.account.path
    first = fcm.account.client_email
    svc = await service(config(fcm=fcm))
    assert (await svc.wake(device, PAYLOAD, 15)).ok
    assert [c["iss"] for c in fcm.token_requests] == [first]
    (tmp_path / "rotated").mkdir()
    rotated = fcm.make_service_account(tmp_path / "rotated", project_id="ivr-rotated")
    tmp = path.with_suffix(".new")
    tmp.write_bytes(rotated.path.read_bytes())
    os.replace(tmp, path)

    deadline = time.monotonic() + 10
    while fcm.token_requests[-1]["iss"] != rotated.client_email:
        assert time.monotonic() < deadline, "the rotated key file was never read"
        assert (await svc.wake(device, PAYLOAD, 15)).ok
        await asyncio.sleep(0.1)
    assert "credentials file of app demo changed, reloading" in caplog.text

    path.write_text("{ half written")
    deadline = time.monotonic() + 10
    while "keeps the fcm credentials it loaded before" not in caplog.text:
        assert time.monotonic() < deadline, "the bad file was not noticed"
        assert (await svc.wake(device, PAYLOAD, 15)).ok
        await asyncio.sleep(0.1)
    assert (await svc.wake(device, PAYLOAD, 15)).ok
    assert fcm.token_requests[-1]["iss"] == rotated.client_email
