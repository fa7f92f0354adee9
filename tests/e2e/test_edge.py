"""The secure edge end to end (issue 21): the real engine, the real sandbox Asterisk, real
clients.

- A phone app over TLS with SRTP mandatory (baresip ``;mediaenc=srtp-mand`` on the TLS
  transport, endpoint ``dave``): its RFC 8599 push parameters, sent in a REGISTER over TLS,
  become the user's device; asleep, it is woken by the push (a local FCM server), registers
  over TLS, is rung at once and answers; Asterisk reports SRTP media and TLS signalling on
  its channel. A plain-RTP offer from the same endpoint is refused (488). A client that
  verifies Asterisk's certificate against a CA that did not sign it fails to register.
- A browser (headless Chromium, trusting the sandbox's CA) opens the app's web widget,
  clicks an entry: the WebRTC call (DTLS-SRTP, ICE) lands on that node, the keypad's RFC 4733
  key takes it to the queue — asserted on what Asterisk did (an ARI observer of the
  ``webvisitor`` endpoint)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from ivr_engine.testing.browser import Browser
from ivr_engine.testing.sipp import TrunkObserver
from tests.integration.conftest import next_event
from tests.integration.engine_proc import local_call
from tests.support.sip_register import register_tls

from .baresip_ua import Baresip
from .conftest import fcm_engine, hang_up

pytestmark = [pytest.mark.sandbox, pytest.mark.e2e]

CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "edge.yaml"
TOKEN = "fcm-dana-" + "d" * 40
CA = os.environ.get("IVR_TLS_CA_FILE", "/var/cache/ivr-engine/state/tls/ca.crt")


@pytest.fixture(scope="module")
async def engine(sandbox, fcm, tmp_path_factory):
    async with fcm_engine(sandbox, fcm, tmp_path_factory.mktemp("edge"), CONFIG) as eng:
        yield eng


async def _state(ari, endpoint: str) -> str | None:
    ep = await ari.get_endpoint("PJSIP", endpoint)
    return ep.get("state") if ep else None


async def _until(probe, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await probe()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s")


async def test_tls_srtp_app_is_woken_by_push_rung_and_answers(ari, fcm, engine, sandbox,
                                                              tmp_path):
    # the app's REGISTER over TLS carries its RFC 8599 push parameters: the user's device
    params = f"pn-provider=fcm;pn-prid={TOKEN};pn-param=edge"
    assert await register_tls("dave", sandbox.sip_password, params, CA) == 200

    async def device():
        rows = sqlite3.connect(engine.db_path).execute(
            "select user, platform, push_token, source from devices").fetchall()
        return rows if rows == [("dana", "android", TOKEN, "rfc8599")] else None
    await _until(device, 5, "the RFC 8599 device")
    assert await register_tls("dave", sandbox.sip_password, "", CA, expires=0) == 200
    await _until(lambda: _is(ari, "dave", "offline"), 5, "dave asleep")

    phone = Baresip("dave", sandbox.sip_password, tmp_path, tls=True, cafile=CA,
                    mediaenc="srtp-mand")

    def on_message(msg) -> None:  # the phone wakes 0.3 s after the push
        if msg.data.get("type") == "incoming_call" and msg.token == TOKEN:
            asyncio.get_running_loop().call_later(0.3, phone.start)

    fcm.on_message = on_message
    try:
        a, b = await local_call(ari, "210", "tls")
        await next_event(ari.events, "ChannelVarset", timeout=10,
                         predicate=lambda e: e.variable == "IVR_AWAITING")
        await ari.send_dtmf(a, "1")  # user:dana

        async def bridged():
            for br in await ari.request("GET", "/bridges") or []:
                if br["id"] == f"{b}-bridge" and len(br["channels"]) == 2:
                    return br["channels"]
        channels = await _until(bridged, 10, "the woken phone answering")
        leg = next(c for c in channels if c.startswith(f"{b}-mobile"))
        assert await ari.get_variable(leg, "CHANNEL(rtp,secure)") == "1"  # SRTP media
        assert await ari.get_variable(leg, "CHANNEL(pjsip,secure)") == "1"  # TLS signalling
        assert "SRTP is Enabled" in phone.log_text()
        assert "registered, dialled in" in engine.log()
        await hang_up(ari, a, b)
    finally:
        fcm.on_message = None
        await phone.stop()
    await _until(lambda: _is(ari, "dave", "offline"), 5, "dave unregistered")


async def _is(ari, endpoint: str, state: str) -> bool:
    got = await _state(ari, endpoint)
    return got == state if state == "online" else got != "online"


async def test_a_plain_rtp_offer_is_refused(ari, engine, sandbox, tmp_path):
    watch = TrunkObserver(sandbox.ari_url, sandbox.ari_username, sandbox.ari_password,
                          trunk="dave")
    async with watch:
        call = watch.expect("dave")  # the caller number of dave's calls
        phone = Baresip("dave", sandbox.sip_password, tmp_path, tls=True, cafile=CA)
        phone.start()  # no media encryption: offers RTP/AVP
        try:
            await _until(lambda: _is(ari, "dave", "online"), 5, "dave registered")
            await phone.command("dial", "sip:app-edgeapp@127.0.0.1")
            await _until(lambda: _text(phone, "488 Not Acceptable Here"), 5, "the refusal")
        finally:
            await phone.stop()
    assert "SRTP is Enabled" not in phone.log_text()
    assert not call.channel and not call.dialplan, call.timeline  # nothing reached the dialplan


async def _text(phone: Baresip, text: str) -> bool:
    return text in phone.log_text()


async def test_a_certificate_the_client_does_not_trust_fails_registration(ari, sandbox,
                                                                          tmp_path, caplog):
    other = tmp_path / "other-ca.crt"
    subprocess.run(["openssl", "req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes",
                    "-days", "2", "-subj", "/CN=not the sandbox CA",
                    "-keyout", str(tmp_path / "other.key"), "-out", str(other)],
                   check=True, capture_output=True)
    with pytest.raises(ssl.SSLCertVerificationError) as err:
        await register_tls("dave", sandbox.sip_password, "", str(other))
    assert "certificate verify failed" in str(err.value)
    assert await _state(ari, "dave") != "online"


async def test_widget_webrtc_call_lands_on_its_node_and_dtmf_reaches_the_queue(
        ari, engine, sandbox, tmp_path):
    watch = TrunkObserver(sandbox.ari_url, sandbox.ari_username, sandbox.ari_password,
                          trunk="webvisitor")
    async with watch:
        call = watch.expect("webvisitor")
        try:
            t = await _widget_call(browser_dir=tmp_path, call=call, ari=ari, engine=engine)
        finally:
            if call.channel and not call.ended:  # never leave a call behind in the sandbox
                await ari.hangup(call.channel)
    figures = {"click_to_confirmed_ms": round(t["confirmed"] - t["click"], 1),
               "ice_dtls_handshake_ms": round(t["pc_connected"] - t["ice_checking"], 1)}
    print("\nwidget call:", json.dumps(figures))
    assert figures["ice_dtls_handshake_ms"] < 5000, figures


async def _widget_call(browser_dir, call, ari, engine) -> dict:
    """Open the widget, call its Billing entry, press 1; the browser's timings."""
    with Browser(browser_dir, CA) as browser:
        browser.driver.get(f"{engine.api_url}/w/edgeapp?lang=fr")
        page = browser.driver.page_source
        assert "Facturation" in page and "Factures" in page  # the visitor's language
        browser.wait("window.ivrWidget && window.JsSIP", 10, "the widget's scripts")
        browser.click('button[data-target="edge-billing"]')
        await asyncio.to_thread(browser.wait, "window.ivrWidget.status !== 'calling'",
                                15, "the WebRTC call")
        widget = browser.script("return window.ivrWidget;")
        assert widget["status"] == "connected", (widget, browser.console()[-20:])
        await _until(lambda: _done(call.path), 5, "the call in the IVR")
        assert call.path[0] == "@edge-billing", call.path  # landed on the clicked node
        assert await ari.get_variable(call.channel, "CHANNEL(rtp,secure)") == "1"
        assert call.variables.get("IVR_APP") == "edgeapp"
        await _until(lambda: _done(call.prompts), 5, "the node's prompt")
        browser.click('button.ivr-key[data-key="1"]')  # RFC 4733 via RTCDTMFSender
        try:
            await _until(lambda: _done("Queue" in [app for app, _ in call.dialplan]), 10,
                         "the queue")
        except AssertionError:
            raise AssertionError((browser.script("return window.ivrWidget;"), call.keys,
                                  browser.console()[-15:])) from None
        assert call.keys == ["1"], call.keys
        assert ("Queue", "billing") in call.dialplan, call.dialplan
        browser.click("button.ivr-hangup")
        await _until(lambda: _done(call.ended), 5, "the hang-up")
        return browser.script("return window.ivrWidget.timings;")




async def _done(value) -> bool:
    return bool(value)
