#!/usr/bin/env python3
"""The secure edge's costs (issue 21), each against its baseline in the same run:

    python bench/edge.py [--wakeups 20] [--webrtc 20] [--concurrent 50] [--only NAME]

* ``wakeup``: a sleeping app's REGISTER → the INVITE that rings it, through the real engine
  (push to a local FakeFcm, baresip started on the push), alternated call by call: phone app
  over **TLS with SRTP** (endpoint ``dave``) vs **UDP** (endpoint ``alice``). TLS cannot be
  read on the wire, so both are timed where Asterisk reads them: its PJSIP logger (``pjsip
  set logger on`` for the run; log times in ms): t_register = the REGISTER with credentials
  received, t_invite = the INVITE sent to that user. (bench/wakeup_latency.py times UDP on
  the wire with the same flow.)
* ``webrtc``: ``--webrtc`` calls from the web widget in headless Chromium (click → call
  confirmed, ICE+DTLS handshake, the plan request), vs the baseline: a TLS+SRTP phone
  (baresip, ``dave``) calling the same app, dial → answered (INVITE received → 200 sent,
  Asterisk's log, for both).
* ``cpu``: Asterisk's CPU with ``--concurrent`` calls up at once into ``Echo()`` (media both
  ways), one baresip per call: TLS + SDES-SRTP (``dave``) vs UDP + RTP (``alice``). SIPp
  (Debian's 3.6) has no SRTP, hence baresip. Asterisk's utime+stime from /proc over the set-up
  and over a steady window.

Prints ONE JSON object on stdout; progress on stderr. Needs root and the sandbox (run it under
the live lock); talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from common import make_log, percentiles, sandbox, sandbox_env

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ivr_engine.testing.browser import Browser  # noqa: E402
from tests.e2e.baresip_ua import Baresip  # noqa: E402
from tests.integration.conftest import Sandbox, start_client, stop_client  # noqa: E402
from tests.integration.engine_proc import local_call, start_engine  # noqa: E402
from tests.support.push_servers import FakeFcm  # noqa: E402
from tests.support.sip_register import register, register_tls  # noqa: E402

log = make_log("edge")
CONFIG = REPO / "bench" / "edge.yaml"
MESSAGES = Path(os.environ.get("IVR_SANDBOX_ROOT", "/var/cache/ivr-engine/asterisk-sid")) \
    / "var/log/asterisk/messages"
STATE = Path(os.environ.get("IVR_SANDBOX_STATE", "/var/cache/ivr-engine/state"))
PHONES = {"tls": ("dave", "dana", "2"), "udp": ("alice", "ana", "1")}  # endpoint, user, key
TOKENS = {"dana": "fcm-dana-" + "d" * 40, "ana": "fcm-ana-" + "a" * 40}
HEAD = re.compile(r"^\[(\S+ \S+)\] VERBOSE\[\d+\] res_pjsip_logger\.c: <--- (Received|"
                  r"Transmitting) SIP (request|response)")


def _ts(stamp: str) -> float:
    return time.mktime(time.strptime(stamp[:19], "%Y-%m-%d %H:%M:%S")) + float(stamp[19:])


def sip_log(offset: int) -> list[tuple[float, str, str]]:
    """(time, direction, message text) of every SIP message Asterisk logged since ``offset``."""
    out: list[tuple[float, str, str]] = []
    with open(MESSAGES, errors="replace") as f:
        f.seek(offset)
        cur: list | None = None
        for line in f:
            m = HEAD.match(line)
            if m:
                cur = [_ts(m.group(1)), m.group(2), ""]
                out.append(cur)  # type: ignore[arg-type]
            elif line.startswith("[") and cur is not None:
                cur = None
            elif cur is not None:
                cur[2] += line
    return [tuple(x) for x in out]  # type: ignore[misc]


def first(msgs, after: float, pred) -> float | None:
    return next((t for t, d, text in msgs if t >= after and pred(d, text)), None)


async def _until(probe, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await probe()
        if got:
            return got
        await asyncio.sleep(0.02)
    raise TimeoutError(what)


async def bridged(ari, b: str):
    async def probe():
        for br in await ari.request("GET", "/bridges") or []:
            if br["id"] == f"{b}-bridge" and len(br["channels"]) == 2:
                return True
    return await _until(probe, 15, "answered")


async def offline(ari, endpoint: str) -> None:
    async def probe():
        ep = await ari.get_endpoint("PJSIP", endpoint)
        return not ep or ep.get("state") != "online"
    await _until(probe, 10, f"{endpoint} offline")


# ------------------------------------------------------------------------------ wake-ups

async def wakeups(sb: Sandbox, eng, fcm: FakeFcm, ari, ca: str, n: int, tmp: Path) -> dict:
    phones: dict[str, Baresip] = {}

    def on_push(msg) -> None:
        user = next((u for u, t in TOKENS.items() if t == msg.token), None)
        if msg.data.get("type") == "incoming_call" and user in phones:
            asyncio.get_running_loop().call_later(0.2, phones[user].start)

    fcm.on_message = on_push
    windows: list[tuple[str, float, float]] = []
    for i in range(n):
        for mode in (("tls", "udp") if i % 2 == 0 else ("udp", "tls")):
            endpoint, user, key = PHONES[mode]
            phones[user] = Baresip(endpoint, sb.sip_password, tmp, tls=mode == "tls", cafile=ca,
                                   mediaenc="srtp-mand" if mode == "tls" else None)
            await offline(ari, endpoint)
            t0 = time.time()
            a, b = await local_call(ari, "310", f"w{i}{mode}")
            await _until(lambda: _awaiting(ari, b), 10, "menu")
            await ari.send_dtmf(a, key)
            await bridged(ari, b)
            windows.append((mode, t0, time.time()))
            await ari.hangup(a)
            await phones.pop(user).stop()
    fcm.on_message = None
    return windows


async def _awaiting(ari, b: str) -> bool:
    return bool(await ari.get_variable(b, "IVR_AWAITING"))


def wake_figures(msgs, windows) -> dict:
    out: dict[str, list[float]] = {"tls": [], "udp": []}
    for mode, t0, t1 in windows:
        endpoint = PHONES[mode][0]
        reg = first(msgs, t0, lambda d, x, e=endpoint: d == "Received" and x.startswith(
            "REGISTER") and f"From: <sip:{e}@" in x and "Authorization:" in x)
        inv = reg and first(msgs, reg, lambda d, x, e=endpoint: d == "Transmitting" and
                            x.startswith(f"INVITE sip:{e}"))
        if reg and inv and inv <= t1 + 1:
            out[mode].append((inv - reg) * 1000)
    return {"tls_srtp": percentiles(out["tls"]), "udp_baseline": percentiles(out["udp"]),
            "method": "Asterisk's PJSIP logger: REGISTER with credentials received -> INVITE "
                      "sent to the user (ms, log resolution 1 ms)"}


# ------------------------------------------------------------------------------ WebRTC set-up

async def webrtc(sb: Sandbox, eng, ari, ca: str, n: int, tmp: Path) -> dict:
    clicks, handshakes, plans, invites = [], [], [], []
    with Browser(tmp / "chromium", ca) as browser:
        for i in range(n):
            browser.driver.get(f"{eng.api_url}/w/edgeapp")
            await asyncio.to_thread(browser.wait, "window.ivrWidget && window.JsSIP", 10,
                                    "widget")
            t0 = time.time()
            browser.click('button[data-target="edge-billing"]')
            await asyncio.to_thread(browser.wait, "window.ivrWidget.status !== 'calling'", 20,
                                    "call")
            w = browser.script("return window.ivrWidget;")
            if w["status"] != "connected":
                log(f"webrtc call {i}: {w}")
                continue
            await asyncio.to_thread(browser.wait, "window.ivrWidget.timings.pc_connected", 5,
                                    "DTLS")
            t = browser.script("return window.ivrWidget.timings;")
            clicks.append(t["confirmed"] - t["click"])
            handshakes.append(t["pc_connected"] - t["ice_checking"])
            plans.append(t["plan"] - t["click"])
            invites.append((t0, time.time()))
            await asyncio.sleep(0.3)
            browser.click("button.ivr-hangup")
            await asyncio.to_thread(browser.wait, "window.ivrWidget.status === 'ended'", 10,
                                    "hang-up")
    return {"click_to_confirmed": percentiles(clicks),
            "ice_dtls_handshake": percentiles(handshakes),
            "plan_request": percentiles(plans), "_windows": invites}


async def phone_calls(sb: Sandbox, ari, ca: str, n: int, tmp: Path) -> list:
    """The baseline: a TLS+SRTP phone calling the same app (answered by the engine)."""
    phone = Baresip("dave", sb.sip_password, tmp, tls=True, cafile=ca, mediaenc="srtp-mand")
    phone.start()
    windows = []
    try:
        await _until(lambda: _online(ari, "dave"), 10, "dave")
        for _ in range(n):
            t0 = time.time()
            await phone.command("dial", "sip:app-edgeapp@127.0.0.1")
            await asyncio.sleep(1.5)
            await phone.command("hangup")
            windows.append((t0, time.time()))
            await asyncio.sleep(0.3)
    finally:
        await phone.stop()
    return windows


async def _online(ari, endpoint: str) -> bool:
    ep = await ari.get_endpoint("PJSIP", endpoint)
    return bool(ep) and ep.get("state") == "online"


def answer_times(msgs, windows, who: str) -> dict:
    out = []
    for t0, t1 in windows:
        inv = first(msgs, t0, lambda d, x: d == "Received" and x.startswith(
            "INVITE sip:app-edgeapp") and f"sip:{who}@" in x)
        ok = inv and first(msgs, inv, lambda d, x: d == "Transmitting" and x.startswith(
            "SIP/2.0 200 OK") and "CSeq: " in x and " INVITE" in x.split("CSeq:")[1][:20])
        if inv and ok and ok <= t1:
            out.append((ok - inv) * 1000)
    return percentiles(out)


# ------------------------------------------------------------------------------ CPU

def asterisk_cpu() -> float:
    pid = int((STATE / "asterisk.pid").read_text())
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def cpu(sb: Sandbox, ari, ca: str, mode: str, n: int, tmp: Path, steady: float) -> dict:
    endpoint = PHONES[mode][0]
    phones = []
    for _ in range(n):
        p = Baresip(endpoint, sb.sip_password, tmp, tls=mode == "tls", cafile=ca,
                    mediaenc="srtp-mand" if mode == "tls" else None)
        acc = p.dir / "accounts"
        acc.write_text(acc.read_text().replace("regint=60", "regint=0"))  # no REGISTER
        p.start()
        phones.append(p)
    try:
        await asyncio.sleep(2)  # the baresips are up
        c0, w0 = asterisk_cpu(), time.monotonic()
        for p in phones:
            await p.command("dial", "sip:bench-echo@127.0.0.1")

        async def up():
            chans = [c for c in await ari.request("GET", "/channels") or []
                     if c["name"].startswith(f"PJSIP/{endpoint}-") and c["state"] == "Up"]
            return chans if len(chans) >= n else None
        chans = await _until(up, 60, f"{n} {mode} calls up")
        c1, w1 = asterisk_cpu(), time.monotonic()
        secure = await ari.get_variable(chans[0]["id"], "CHANNEL(rtp,secure)")
        await asyncio.sleep(steady)
        c2, w2 = asterisk_cpu(), time.monotonic()
        live = len(await up() or [])
    finally:
        for p in phones:
            await p.stop()
    return {"calls_up": live, "srtp": secure == "1", "setup_seconds": round(w1 - w0, 2),
            "cpu_ms_per_call_setup": round((c1 - c0) * 1000 / n, 2),
            "cpu_percent_of_a_core_steady": round((c2 - c1) * 100 / (w2 - w1), 1),
            "cpu_ms_per_call_second": round((c2 - c1) * 1000 / n / (w2 - w1), 3)}


# ------------------------------------------------------------------------------ main

async def amain(args: argparse.Namespace, env: dict[str, str], tmp: Path) -> dict:
    sb = Sandbox(env["IVR_ARI_URL"], env["IVR_ARI_USERNAME"], env["IVR_ARI_PASSWORD"],
                 "127.0.0.1", 5038, "ivr-engine", env.get("IVR_AMI_PASSWORD", ""),
                 env["IVR_SIP_PASSWORD"])
    ca = env["IVR_TLS_CA_FILE"]
    out: dict = {"machine": {"cpus": os.cpu_count(), "load": os.getloadavg()[0]}}
    fcm = FakeFcm()
    await fcm.start()
    (tmp / "fcm").mkdir()
    fcm.make_service_account(tmp / "fcm")
    eng = await start_engine(sb, tmp / "engine", config=CONFIG, extra_env={
        "IVR_TEST_FCM_SA": str(fcm.account.path), "IVR_TEST_FCM_URL": fcm.url})
    ari = await start_client(sb)
    offset = MESSAGES.stat().st_size
    sandbox("cli", "-rx", "pjsip set logger on")
    try:
        for user, (endpoint, tls) in {"dana": ("dave", True), "ana": ("alice", False)}.items():
            params = f"pn-provider=fcm;pn-prid={TOKENS[user]};pn-param=bench"
            if tls:
                assert await register_tls(endpoint, sb.sip_password, params, ca) == 200
                await register_tls(endpoint, sb.sip_password, "", ca, expires=0)
            else:
                assert await register(endpoint, sb.sip_password, params) == 200
                await register(endpoint, sb.sip_password, params, expires=0)
        await asyncio.sleep(1)
        if args.only in (None, "wakeup"):
            log(f"wake-ups: {args.wakeups} per mode")
            windows = await wakeups(sb, eng, fcm, ari, ca, args.wakeups, tmp)
            out["wakeup"] = wake_figures(sip_log(offset), windows)
        if args.only in (None, "webrtc"):
            log(f"WebRTC: {args.webrtc} widget calls, then the TLS phone baseline")
            web = await webrtc(sb, eng, ari, ca, args.webrtc, tmp)
            phone = await phone_calls(sb, ari, ca, args.webrtc, tmp)
            msgs = sip_log(offset)
            out["webrtc"] = {**{k: v for k, v in web.items() if not k.startswith("_")},
                             "invite_to_200_webrtc": answer_times(msgs, web["_windows"],
                                                                  "webvisitor"),
                             "invite_to_200_tls_phone_baseline": answer_times(msgs, phone,
                                                                              "dave")}
    finally:
        sandbox("cli", "-rx", "pjsip set logger off")
        await stop_client(ari)
        await eng.stop()
        await fcm.stop()
    if args.only in (None, "cpu"):
        ari = await start_client(sb)
        try:
            out["cpu"] = {}
            for mode in ("udp", "tls", "udp", "tls")[:4 if args.rounds == 2 else 2]:
                log(f"CPU: {args.concurrent} {mode} calls")
                got = await cpu(sb, ari, ca, mode, args.concurrent, tmp, args.steady)
                key = "tls_srtp" if mode == "tls" else "udp_rtp_baseline"
                out["cpu"].setdefault(key, []).append(got)
                await asyncio.sleep(2)
        finally:
            await stop_client(ari)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wakeups", type=int, default=20, help="wake-ups per mode")
    ap.add_argument("--webrtc", type=int, default=20, help="widget calls (and phone calls)")
    ap.add_argument("--concurrent", type=int, default=50, help="calls up at once (cpu)")
    ap.add_argument("--steady", type=float, default=20.0, help="steady window, seconds")
    ap.add_argument("--rounds", type=int, default=1, choices=(1, 2), help="cpu rounds per mode")
    ap.add_argument("--only", choices=("wakeup", "webrtc", "cpu"))
    args = ap.parse_args()
    env = sandbox_env(("IVR_ARI_URL", "IVR_ARI_USERNAME", "IVR_ARI_PASSWORD",
                       "IVR_SIP_PASSWORD", "IVR_TLS_CA_FILE"))
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        out = asyncio.run(amain(args, env, Path(tmp)))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
