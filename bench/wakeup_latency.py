#!/usr/bin/env python3
"""Wake-up latency benchmark: a sleeping mobile app's REGISTER -> the INVITE that rings it.

    python bench/wakeup_latency.py [--calls 50] [--poll-interval 0.25] [--delay 0.2]
    python bench/wakeup_latency.py --cluster [--calls 50]   # bench/wakeup_cluster.py

Prints ONE JSON object on stdout (progress goes to stderr). See bench/README.md for what each
figure means. Needs root (raw AF_PACKET capture on the loopback interface, and the sandbox
Asterisk runs in a chroot) and talks to 127.0.0.1 only.

Two modes, alternated call by call in the same run (engine/baseline, baseline/engine, ...):

* **engine**: the real engine (``bench/wakeup.yaml``, ARI application ``ivr-wbench``) gets a
  call to an unknown number (``Local/999@bench-wake``), which goes to ``user:alice``; alice
  is not registered, so the engine pushes her app through FCM (a local ``FakeFcm``), waits
  for the registration event (ContactStatusChange) and rings ``PJSIP/alice``. When the
  FakeFcm receives the ``incoming_call`` push, the benchmark starts a baresip as alice after
  ``--delay`` (+ jitter, see below): the woken app, which REGISTERs and auto-answers.
* **baseline**: a polling waiter in this process (ARI application ``ivr-wbench-poll``,
  ``Local/999@bench-poll``): it answers, starts music on hold, checks
  ``GET /endpoints/PJSIP/alice`` every ``--poll-interval`` seconds until it is online, then
  rings ``PJSIP/alice`` exactly like the engine (``POST /channels/create`` + ``dial``,
  bridge on answer). The "push" is simulated: baresip starts ``--delay`` (+ jitter) after
  the call enters Stasis.

Measured on the wire: a raw ``AF_PACKET`` socket on ``lo`` with kernel timestamps
(``SO_TIMESTAMPNS``) and a BPF filter for UDP port 5060. Per call: t_register = the REGISTER
from the baresip's port that Asterisk answers with 200 (the one with the Authorization header
after the 401 challenge), t_200 = that 200 OK, t_invite = the first INVITE Asterisk sends to the
baresip's port after t_register.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import ctypes
import itertools
import json
import math
import os
import platform
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import aiohttp

from common import (  # noqa: E402
    connected_apps,
    make_log,
    parse_ts,
    percentiles,
    sandbox,
    sandbox_env,
    stop_engine,
)

log = make_log("wbench")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ivr_engine.ari import (  # noqa: E402
    AriError,
    ChannelDestroyed,
    ChannelStateChange,
    ContactStatusChange,
    Event,
    StasisEnd,
    StasisStart,
)
from ivr_engine.testing.caller import CallerPool, LocalCall, dialplan_side  # noqa: E402
from ivr_engine.testing.record import AriListener  # noqa: E402
from tests.e2e import baresip_ua  # noqa: E402
from tests.support import identity  # noqa: E402
from tests.support.identity import open_session  # noqa: E402

WBENCH_KEY = "wbench-key-0000000000000000000000000000"  # bench/wakeup.yaml's app api_key
identity.SECRETS.setdefault("wbenchapp", "wbench-backend-secret-00000000000000000")
from tests.e2e.baresip_ua import Baresip  # noqa: E402
from tests.support.push_servers import FakeFcm  # noqa: E402

SANDBOX = REPO / "scripts" / "asterisk-sandbox"
CONFIG = REPO / "bench" / "wakeup.yaml"
ENGINE_APP = "ivr-wbench"
POLL_APP = "ivr-wbench-poll"
USER = "alice"                    # sandbox SIP user = the engine's user = her mobile endpoint
APP = "wbenchapp"                 # bench/wakeup.yaml
PUSH_TOKEN = "fcm-wbench-" + "w" * 40
DID = "999"                       # Local/999@bench-wake (engine), Local/999@bench-poll
CONTEXTS = {"engine": "bench-wake", "baseline": "bench-poll"}
SIP_PORT = 5060
ENGINE_READY_TIMEOUT = 30
SANDBOX_UP_TIMEOUT = 1800         # a first `up` builds a Debian chroot (debootstrap)
RING_SECONDS = 10                 # bench/wakeup.yaml wakeup.ring_seconds (baseline: the same)
WAIT_BUDGET = 15.0                # bench/wakeup.yaml: 3 loops x 5 s (baseline: the same)
AVAILABLE = {"Created", "Reachable", "NonQualified", "Updated"}  # ivr_engine/wakeup/contacts.py




# ------------------------------------------------------------------------------ helpers












def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# ------------------------------------------------------------------------------ wire capture

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
PACKET_OUTGOING = 4
# BPF (what `tcpdump -dd 'ip and udp port 5060'` compiles to): IPv4, UDP, not a fragment,
# source or destination port 5060 -> keep; anything else -> drop in the kernel.
SIP_BPF = [
    (0x28, 0, 0, 12), (0x15, 0, 10, 0x0800),          # ldh [12]; jeq IPv4
    (0x30, 0, 0, 23), (0x15, 0, 8, 17),               # ldb [23]; jeq UDP
    (0x28, 0, 0, 20), (0x45, 6, 0, 0x1FFF),           # ldh [20]; jset fragment offset -> drop
    (0xB1, 0, 0, 14),                                 # ldxb 4*([14]&0xf)
    (0x48, 0, 0, 14), (0x15, 2, 0, SIP_PORT),         # ldh [x+14]; jeq 5060 -> keep
    (0x48, 0, 0, 16), (0x15, 0, 1, SIP_PORT),         # ldh [x+16]; jeq 5060 -> keep
    (0x06, 0, 0, 0x40000), (0x06, 0, 0, 0),           # keep / drop
]
_COMPACT = {"i": "call-id", "t": "to", "f": "from", "m": "contact", "l": "content-length"}


@dataclass(slots=True)
class SipPacket:
    ts_ns: int                   # kernel receive timestamp on lo (CLOCK_REALTIME)
    sport: int
    dport: int
    method: str | None           # request method, or None for a response
    status: int | None           # response status, or None for a request
    cseq_num: int
    cseq_method: str
    call_id: str
    auth: bool                   # carries an Authorization header
    expires: int | None          # Expires header, or the Contact's expires= parameter
    to_user: str


def parse_sip(payload: bytes) -> dict[str, Any] | None:
    head = payload.split(b"\r\n\r\n", 1)[0].decode("latin-1", "replace")
    lines = head.split("\r\n")
    if not lines:
        return None
    first = lines[0]
    method = status = None
    if first.startswith("SIP/2.0 "):
        try:
            status = int(first.split()[1])
        except (IndexError, ValueError):
            return None
    else:
        parts = first.split()
        if len(parts) != 3 or not parts[2].startswith("SIP/"):
            return None
        method = parts[0]
    hdr: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        name = name.strip().lower()
        name = _COMPACT.get(name, name)
        hdr.setdefault(name, value.strip())
    cseq = hdr.get("cseq", "0 ?").split()
    expires: int | None = None
    if hdr.get("expires", "").isdigit():
        expires = int(hdr["expires"])
    m = re.search(r";\s*expires=(\d+)", hdr.get("contact", ""))
    if m:
        expires = int(m.group(1))
    to = re.search(r"sips?:([^@;>]+)@", hdr.get("to", ""))
    return {"method": method, "status": status,
            "cseq_num": int(cseq[0]) if cseq and cseq[0].isdigit() else 0,
            "cseq_method": cseq[1] if len(cseq) > 1 else "",
            "call_id": hdr.get("call-id", ""), "auth": "authorization" in hdr,
            "expires": expires, "to_user": to.group(1) if to else ""}


class WireCapture:
    """SIP (UDP 5060) packets on the loopback interface, with kernel timestamps, read by a
    thread this object owns. Only the received copy of each packet is kept (lo shows every
    packet twice: outgoing, then host)."""

    def __init__(self) -> None:
        self.packets: list[SipPacket] = []
        self.received = 0
        self.dropped_unparsed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._prog = ctypes.create_string_buffer(
            b"".join(struct.pack("HBBI", *ins) for ins in SIP_BPF))
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                         struct.pack("HL", len(SIP_BPF), ctypes.addressof(self._prog)))
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.bind(("lo", ETH_P_ALL))
            s.settimeout(0.2)
        except BaseException:
            s.close()
            raise
        self.sock = s

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="wire-capture", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sock.close()

    def _run(self) -> None:
        space = socket.CMSG_SPACE(16)
        while not self._stop.is_set():
            try:
                data, anc, _flags, addr = self.sock.recvmsg(65535, space)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            if addr[0] != "lo" or addr[2] == PACKET_OUTGOING or len(data) < 42:
                continue
            ts_ns = None
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(cdata) >= 16:
                    sec, nsec = struct.unpack("qq", cdata[:16])
                    ts_ns = sec * 1_000_000_000 + nsec
            if ts_ns is None:
                ts_ns = time.time_ns()
            ihl = (data[14] & 0x0F) * 4
            off = 14 + ihl
            sport, dport = struct.unpack("!HH", data[off:off + 4])
            self.received += 1
            info = parse_sip(data[off + 8:])
            if info is None:
                self.dropped_unparsed += 1
                continue
            self.packets.append(SipPacket(ts_ns, sport, dport, **info))

    def window(self, port: int, since_ns: int) -> list[SipPacket]:
        return [p for p in list(self.packets)
                if p.ts_ns >= since_ns and port in (p.sport, p.dport)]


@dataclass
class WireTimes:
    t_register: int | None = None
    t_200: int | None = None
    t_invite: int | None = None
    t_answer: int | None = None    # the app's 200 OK to that INVITE
    register_had_auth: bool | None = None
    registers: int = 0             # REGISTERs (expires != 0) the app sent before the 200
    error: str = ""


def analyse(pkts: list[SipPacket], port: int) -> WireTimes:
    w = WireTimes()
    sent = {(p.call_id, p.cseq_num): p for p in reversed(pkts)     # first copy wins
            if p.sport == port and p.dport == SIP_PORT and p.method == "REGISTER"}
    for p in pkts:
        if (p.sport == SIP_PORT and p.dport == port and p.status == 200
                and p.cseq_method == "REGISTER"):
            req = sent.get((p.call_id, p.cseq_num))
            if req is None or req.expires == 0:
                continue          # an un-REGISTER (or a REGISTER we did not see)
            w.t_register, w.t_200, w.register_had_auth = req.ts_ns, p.ts_ns, req.auth
            w.registers = sum(1 for r in sent.values()
                              if r.ts_ns <= req.ts_ns and r.expires != 0)
            break
    if w.t_register is None:
        w.error = "no REGISTER answered 200 on the wire"
        return w
    invite = None
    for p in pkts:
        if (p.sport == SIP_PORT and p.dport == port and p.method == "INVITE"
                and p.ts_ns > w.t_register):
            invite = p
            break
    if invite is None:
        w.error = "no INVITE to the app on the wire"
        return w
    w.t_invite = invite.ts_ns
    for p in pkts:
        if (p.sport == port and p.dport == SIP_PORT and p.status == 200
                and p.cseq_method == "INVITE" and p.call_id == invite.call_id):
            w.t_answer = p.ts_ns
            break
    return w


# ------------------------------------------------------------------------------ engine


class EngineProcess:
    """The engine under test (bench/wakeup.yaml), with its own temp DB and log."""

    def __init__(self, env: dict[str, str], tmp: Path, extra: dict[str, str]):
        self.env = env
        self.tmp = tmp
        self.extra = extra
        self.log_path = tmp / "engine.log"
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        env = dict(os.environ)
        env.update({k: v for k, v in self.env.items() if k.startswith("IVR_")})
        env.update(self.extra)
        env["IVR_DATABASE_URL"] = f"sqlite:///{self.tmp / 'wbench.db'}"
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        subprocess.run([sys.executable, "-m", "ivr_engine.cli", "db", "upgrade", "-c",
                        str(CONFIG)], cwd=REPO, env=env, stdin=subprocess.DEVNULL, check=True,
                       stdout=subprocess.DEVNULL)  # the engine refuses a database not upgraded
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ivr_engine.cli", "run", "-c", str(CONFIG)], cwd=REPO,
            env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.text().splitlines()[-n:])

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + ENGINE_READY_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited ({self.proc.returncode}) during start-up:\n"
                                   + self.tail())
            # logged once the calls and the registrations applications are both up
            # (GET /applications/<app> answers 200 for a stale application too)
            if "engine ready" in self.text():
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"engine not ready within {ENGINE_READY_TIMEOUT} s:\n{self.tail()}")

    def stop(self) -> int | None:
        code = stop_engine(self.proc, log)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code


# ------------------------------------------------------------------------------ ARI apps


class App(AriListener):
    """One ARI application in this process (``ivr_engine/testing/record.py``): events routed
    per channel to queues (:meth:`follow`); a StasisStart nobody follows goes to
    ``on_stasis``."""

    def __init__(self, url: str, user: str, password: str, name: str,
                 on_stasis: Callable[[StasisStart], None] | None = None):
        super().__init__(url, user, password, name, request_timeout=10.0, max_connections=8)
        self.name = name
        self.on_stasis = on_stasis

    def follow(self, cid: str, q: asyncio.Queue) -> None:
        self.routes[cid] = lambda _now, ev: q.put_nowait(ev)

    def unrouted(self, now: float, ev: Event) -> None:
        if isinstance(ev, StasisStart) and self.on_stasis is not None:
            self.on_stasis(ev)


async def next_event(q: asyncio.Queue, pred: Callable[[Event], bool], timeout: float) -> Event:
    async with asyncio.timeout(timeout):
        while True:
            ev = await q.get()
            if pred(ev):
                return ev


class PollingWaiter:
    """The baseline: a XiVO/Wazo-style waiter that polls the endpoint's state.

    On StasisStart: answer, music on hold, then GET /endpoints/PJSIP/alice every
    ``interval`` seconds (first check at once) until it is online; then ring it exactly like
    the engine's ringer (POST /channels/create PJSIP/alice + dial, caller = the call), and on
    the leg's ChannelStateChange Up: MOH off, mixing bridge ``<call>-bridge`` with both."""

    def __init__(self, app: App, interval: float, on_call: Callable[[str], None]):
        self.app = app
        self.interval = interval
        self.on_call = on_call       # the benchmark's "push": starts baresip after the delay
        self.tasks: set[asyncio.Task] = set()
        self.polls: dict[str, int] = {}
        self.errors: list[str] = []
        self.dial_races = 0          # dial -> 409 right after create (see _call)

    def on_stasis(self, ev: StasisStart) -> None:
        if ev.args and ev.args[0] == "leg":
            return
        cid = ev.channel.id
        q: asyncio.Queue = asyncio.Queue()
        self.app.follow(cid, q)
        self.on_call(cid)
        task = asyncio.get_running_loop().create_task(self._call(cid, q), name=f"poll-{cid}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _call(self, cid: str, q: asyncio.Queue) -> None:
        ari = self.app.ari
        leg = f"{cid}-mobile1"
        bridge = f"{cid}-bridge"
        gone = False

        def caller_gone(ev: Event) -> bool:
            return ev.channel_id == cid and isinstance(ev, (StasisEnd, ChannelDestroyed))

        try:
            await ari.answer(cid)
            await ari.start_moh(cid, "default")
            deadline = time.monotonic() + WAIT_BUDGET
            polls = 0
            while True:
                polls += 1
                ep = await ari.get_endpoint("PJSIP", USER)
                if ep and ep.get("state") == "online":
                    break
                if time.monotonic() >= deadline:
                    self.polls[cid] = polls
                    await ari.hangup(cid)
                    return
                try:  # the wait: sleep one interval, unless the caller leaves
                    await next_event(q, caller_gone, self.interval)
                    gone = True
                    return
                except TimeoutError:
                    pass
            self.polls[cid] = polls
            self.app.follow(leg, q)
            await ari.create_channel(f"PJSIP/{USER}", app=self.app.name,
                                     app_args=["leg", cid], channel_id=leg, originator=cid)
            try:
                await ari.dial(leg, caller=cid, timeout=RING_SECONDS)
            except AriError as exc:
                # POST /channels/create answers before the new channel has entered Stasis
                # (Asterisk runs Stasis in a thread it starts): a dial right after it can
                # get 409 "Channel not in Stasis application". Then dial on its StasisStart.
                if exc.status != 409:
                    raise
                self.dial_races += 1
                await next_event(q, lambda e: isinstance(e, StasisStart)
                                 and e.channel_id == leg, 2)
                await ari.dial(leg, caller=cid, timeout=RING_SECONDS)
            ev = await next_event(q, lambda e: caller_gone(e) or (
                e.channel_id == leg and (
                    (isinstance(e, ChannelStateChange) and e.channel.state == "Up")
                    or isinstance(e, (StasisEnd, ChannelDestroyed)))), RING_SECONDS + 5)
            if ev.channel_id != leg or not isinstance(ev, ChannelStateChange):
                gone = ev.channel_id == cid
                return
            await ari.stop_moh(cid)
            await ari.create_bridge("mixing", bridge_id=bridge)
            await ari.add_channel_to_bridge(bridge, [cid, leg])
            ev = await next_event(q, lambda e: isinstance(e, (StasisEnd, ChannelDestroyed))
                                  and e.channel_id in (cid, leg), 3600)
            gone = ev.channel_id == cid
        except (AriError, TimeoutError) as exc:
            self.errors.append(f"{cid}: {type(exc).__name__}: {exc}")
        finally:
            for ch in ((leg,) if gone else (leg, cid)):
                try:
                    await ari.hangup(ch)
                except AriError:
                    pass
            try:
                await ari.destroy_bridge(bridge)
            except AriError:
                pass
            self.app.routes.pop(cid, None)
            self.app.routes.pop(leg, None)


# ------------------------------------------------------------------------------ the bench


@dataclass
class CallResult:
    mode: str
    ok: bool = False
    reason: str = ""
    wire: WireTimes | None = None
    contact_event_ts: float | None = None    # Asterisk's timestamp of ContactStatusChange
    engine_rung_ms: float | None = None      # the engine's own log: event -> dial returned
    polls: int | None = None
    wake_delay_s: float = 0.0

    def ms(self, a: str, b: str) -> float | None:
        w = self.wire
        if w is None:
            return None
        x, y = getattr(w, a), getattr(w, b)
        return (y - x) / 1e6 if x is not None and y is not None else None


class Bench:
    def __init__(self, args: argparse.Namespace, env: dict[str, str], tmp: Path):
        self.args = args
        self.env = env
        self.tmp = tmp
        self.url = env["IVR_ARI_URL"]
        self.prefix = f"wb-{uuid.uuid4().hex[:6]}-"
        self.caller_app = f"ivr-wbench-caller-{uuid.uuid4().hex[:8]}"
        self.capture: WireCapture | None = None
        self.fcm: FakeFcm | None = None
        self.engine: EngineProcess | None = None
        self.caller: CallerPool | None = None
        self.poll_app: App | None = None
        self.waiter: PollingWaiter | None = None
        self.wake: dict[str, Callable[[], None]] = {}    # call id -> "the push arrived"
        self.contact_events: list[tuple[float, float, str]] = []   # (ast ts, local, status)
        self.subscribed = False
        self.closing = False
        self.baresips: list[Baresip] = []
        self._ports = itertools.count(random.randrange(60, 160))
        self.pushes = 0
        self.unmatched_pushes = 0

    # -------------------------------------------------------------- set-up / tear-down

    async def setup(self) -> None:
        a = self.args
        log("wire capture on lo (AF_PACKET, SO_TIMESTAMPNS, BPF udp port 5060)")
        self.capture = WireCapture()
        self.capture.start()
        self.fcm = FakeFcm(on_message=self._on_push)
        await self.fcm.start()
        (self.tmp / "fcm").mkdir()
        account = self.fcm.make_service_account(self.tmp / "fcm")
        api_port = free_port()
        self.api_url = f"http://127.0.0.1:{api_port}"
        self.engine = EngineProcess(self.env, self.tmp, {
            "IVR_API_LISTEN": f"127.0.0.1:{api_port}",
            "IVR_WBENCH_FCM_SA": str(account.path), "IVR_WBENCH_FCM_URL": self.fcm.url})
        self.engine.start()
        await self.engine.wait_ready()
        log(f"engine up (pid {self.engine.pid}), API {self.api_url}, FakeFcm {self.fcm.url}")
        async with aiohttp.ClientSession() as http:  # the app logs in, registers its token
            session = await open_session(http, self.api_url, APP, WBENCH_KEY, USER)
            async with http.post(f"{self.api_url}/v1/devices", json={
                    "platform": "android", "push_token": PUSH_TOKEN, "model": "wbench"},
                    headers={"Authorization": f"Bearer {session}"}) as r:
                if r.status != 201:
                    raise RuntimeError(f"POST /v1/devices -> {r.status}: {await r.text()}")
        user, pw = self.env["IVR_ARI_USERNAME"], self.env["IVR_ARI_PASSWORD"]
        self.caller = CallerPool(self.url, user, pw, self.caller_app, request_timeout=10.0,
                                 max_connections=8)
        self.caller.on_unrouted = self._on_contact
        await self.caller.open()
        # Asterisk's own timestamp of the registration event, for the breakdown only
        await self.caller.ari.subscribe(f"endpoint:PJSIP/{USER}")
        self.subscribed = True
        self.poll_app = App(self.url, user, pw, POLL_APP)
        self.waiter = PollingWaiter(self.poll_app, a.poll_interval, self._baseline_push)
        self.poll_app.on_stasis = self.waiter.on_stasis
        await self.poll_app.open()

    async def teardown(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        self.closing = True       # no phone starts from now on
        for b in self.baresips:
            try:
                await b.stop()
            except Exception as exc:  # noqa: BLE001
                log(f"baresip stop failed: {exc}")
        if self.caller is not None:
            try:
                out["channels_left_after_run"] = await self._leftovers()
            except Exception as exc:  # noqa: BLE001
                log(f"could not list channels at the end: {exc}")
            if self.subscribed:
                try:
                    await self.caller.ari.unsubscribe(f"endpoint:PJSIP/{USER}")
                except (AriError, OSError):
                    pass
        if self.waiter is not None:
            for t in list(self.waiter.tasks):
                t.cancel()
            if self.waiter.tasks:
                await asyncio.wait(self.waiter.tasks, timeout=5)
        if self.engine is not None:
            out["engine_exit_code"] = self.engine.stop()
            text = self.engine.text()
            errors = [ln for ln in text.splitlines() if " ERROR " in ln or "Traceback" in ln]
            out["engine_log_errors"] = len(errors)
            if errors:
                log("engine log errors, first: " + errors[0])
        # our applications go last: Asterisk forgets finished applications (the engine's,
        # once it has dropped its endpoint subscription) when another one unregisters
        for app in (self.poll_app, self.caller):
            if app is not None:
                await app.close()
        if self.fcm is not None:
            await self.fcm.stop()
            out["fcm_hook_errors"] = len(self.fcm.hook_errors)
        if self.capture is not None:
            self.capture.stop()
            out["wire_sip_packets"] = self.capture.received
        return out

    async def _leftovers(self) -> int:
        assert self.caller is not None
        ari = self.caller.ari
        chans = [c["id"] for c in await ari.list_channels()
                 if str(c.get("id", "")).startswith(self.prefix)]
        for cid in chans:
            await ari.hangup(cid)
        for b in await ari.request("GET", "/bridges") or []:
            if str(b.get("id", "")).startswith(self.prefix):
                await ari.destroy_bridge(b["id"])
        return len(chans)

    # -------------------------------------------------------------- the "phone"

    def _on_push(self, msg: Any) -> None:
        """FakeFcm hook (inline, in this loop): the engine's wake-up push arrived."""
        if msg.data.get("type") != "incoming_call" or msg.token != PUSH_TOKEN:
            return
        self.pushes += 1
        fire = self.wake.pop(msg.data.get("call_id", ""), None)
        if fire is None:
            self.unmatched_pushes += 1
            return
        fire()

    def _baseline_push(self, call_id: str) -> None:
        """The polling waiter saw the call enter Stasis: simulate the push."""
        fire = self.wake.pop(call_id, None)
        if fire is not None:
            fire()

    def _on_contact(self, _now: float, ev: Event) -> None:
        """The caller's application is subscribed to alice's endpoint: her contact events."""
        if not isinstance(ev, ContactStatusChange):
            return
        ts = parse_ts(ev.timestamp)
        if ts is not None:
            self.contact_events.append((ts, time.time(), ev.contact_status))

    def new_baresip(self, workdir: Path) -> Baresip:
        """A baresip as alice on ports nobody uses now (other test runs use the same
        port plan, tests/e2e/baresip_ua.py: SIP 5100 + 4n, TLS +1, ctrl 4500 + n)."""
        for _ in range(400):
            n = next(self._ports)
            sip, ctrl = 5100 + 4 * (n % 200), 4500 + (n % 400)
            if (port_free(sip, socket.SOCK_DGRAM) and port_free(sip, socket.SOCK_STREAM)
                    and port_free(sip + 1, socket.SOCK_STREAM)
                    and port_free(ctrl, socket.SOCK_STREAM)):
                baresip_ua._ports = itertools.count(n)   # Baresip takes its n from there
                b = Baresip(USER, self.env["IVR_SIP_PASSWORD"], workdir)
                self.baresips.append(b)
                return b
        raise RuntimeError("no free baresip ports")

    async def endpoint_state(self) -> str | None:
        assert self.caller is not None
        ep = await self.caller.ari.get_endpoint("PJSIP", USER)
        return ep.get("state") if ep else None

    async def wait_offline(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.endpoint_state() != "online":
                return True
            await asyncio.sleep(0.05)
        return False

    def engine_cannot_ring(self, b: str) -> str:
        """The engine's reason when it failed to ring the registered app for call ``b``."""
        if self.engine is None:
            return ""
        m = re.search(rf"call {re.escape(b)}: cannot ring {USER} \(mobile\): (.*)",
                      self.engine.text())
        return re.sub(rf"{re.escape(b)}-mobile\d+", "<leg>", m.group(1)) if m else ""

    # -------------------------------------------------------------- one call

    async def call(self, mode: str, n: int, jitter: float) -> CallResult:
        assert self.caller is not None and self.capture is not None
        args = self.args
        ari = self.caller.ari
        res = CallResult(mode, wake_delay_s=round(args.delay + jitter, 4))
        a = f"{self.prefix}{n}-{mode}"
        b = dialplan_side(a)      # the channel the engine (or the waiter) gets
        workdir = self.tmp / f"call-{n}-{mode}"
        workdir.mkdir()
        phone = self.new_baresip(workdir)
        started: dict[str, float] = {}
        loop = asyncio.get_running_loop()

        timers: list[asyncio.TimerHandle] = []

        def start_phone() -> None:
            if self.closing:
                return
            started["wall_ns"] = time.time_ns()
            phone.start()

        self.wake[b] = lambda: timers.append(loop.call_later(args.delay + jitter, start_phone))
        call: LocalCall | None = None
        try:
            if not await self.wait_offline(10):
                res.reason = f"{USER} online before the call (registered by someone else?)"
                return res
            async with asyncio.timeout(args.timeout):
                # the shared Local-channel caller (ivr_engine/testing/caller.py), no keys: it
                # follows the call until we hang it up
                call = self.caller.start(DID, context=CONTEXTS[mode], channel_id=a,
                                         timeout=args.timeout + 30)
                bridge = f"{b}-bridge"
                for k in itertools.count():  # answered = the caller and the leg are bridged
                    found = await ari.request("GET", "/bridges")
                    if any(x["id"] == bridge and len(x["channels"]) >= 2 for x in found or []):
                        break
                    if k % 10 == 9 and mode == "engine" and self.engine_cannot_ring(b):
                        # the engine gave up ringing and keeps the caller on hold until the
                        # wait budget... forever, in fact (see README): do not wait for it
                        res.reason = "engine: cannot ring: " + self.engine_cannot_ring(b)
                        return res
                    if call.done:
                        if call.error is not None:
                            raise call.error
                        res.reason = "call ended before it was answered"
                        return res
                    await asyncio.sleep(0.02)
            res.ok = True
        except TimeoutError:
            res.reason = ("no push" if "wall_ns" not in started else "not answered") + \
                f" within {args.timeout:.0f} s"
        except AriError as exc:
            res.reason = f"ARI error: {exc}"
        finally:
            self.wake.pop(b, None)
            for t in timers:      # a phone that has not started yet never will
                t.cancel()
            if call is not None:
                call.hang_up()
                await call.finished()
                for _ in range(100):
                    try:
                        if await ari.get_channel(b) is None:
                            break
                    except AriError:
                        break
                    await asyncio.sleep(0.05)
            await phone.stop()
            self.baresips.remove(phone)
            if not await self.wait_offline(10):
                log(f"warning: {USER} still online 10 s after baresip stopped")
        if not res.ok:
            return res
        if "wall_ns" not in started:
            res.ok, res.reason = False, "answered without the app being started (?)"
            return res
        await asyncio.sleep(0.05)      # let the capture thread catch up
        res.wire = analyse(self.capture.window(phone.sip_port, started["wall_ns"] - 10**7),
                           phone.sip_port)
        if res.wire.error:
            res.ok, res.reason = False, res.wire.error
            return res
        t_reg = res.wire.t_register / 1e9
        t_inv = res.wire.t_invite / 1e9
        for ts, _local, status in self.contact_events:
            if status in AVAILABLE and t_reg - 0.002 <= ts <= t_inv + 0.002:
                res.contact_event_ts = ts
                break
        if mode == "engine" and self.engine is not None:
            m = re.search(rf"call {re.escape(b)}: {USER} registered, rung in ([0-9.]+) ms",
                          self.engine.text())
            if m:
                res.engine_rung_ms = float(m.group(1))
        if mode == "baseline" and self.waiter is not None:
            res.polls = self.waiter.polls.get(b)
        return res

    # -------------------------------------------------------------- the run

    async def run(self) -> dict[str, Any]:
        args = self.args
        assert self.caller is not None
        info = await self.caller.ari.asterisk_info()
        version = (info.get("system") or {}).get("version")
        reload0 = (info.get("status") or {}).get("last_reload_time")
        if not await self.wait_offline(30):
            raise RuntimeError(f"{USER} is registered by someone else; not benchmarking")
        results: dict[str, list[CallResult]] = {"engine": [], "baseline": []}
        rng = random.Random(args.seed)
        jitter_max = args.poll_interval if args.jitter is None else args.jitter
        for i in range(args.warmup):
            for mode in ("engine", "baseline"):
                r = await self.call(mode, -1 - i, rng.uniform(0, jitter_max))
                log(f"warm-up {mode}: {'ok' if r.ok else r.reason}")
        for i in range(args.calls):
            # the same jitter for both calls of a pair; the order alternates to spread drift
            jitter = rng.uniform(0, jitter_max)
            order = ("engine", "baseline") if i % 2 == 0 else ("baseline", "engine")
            for mode in order:
                r = await self.call(mode, i, jitter)
                results[mode].append(r)
                log(f"{mode:8s} {i + 1:3d}/{args.calls}: " + (
                    f"REGISTER->INVITE {r.ms('t_register', 't_invite'):7.1f} ms "
                    f"(200->INVITE {r.ms('t_200', 't_invite'):7.1f} ms)" if r.ok
                    else f"FAILED: {r.reason}"))
        info = await self.caller.ari.asterisk_info()
        reload1 = (info.get("status") or {}).get("last_reload_time")
        eng, base = mode_json(results["engine"]), mode_json(results["baseline"])
        base["poll_interval_s"] = args.poll_interval
        polls = [r.polls for r in results["baseline"] if r.polls is not None]
        base["polls_per_call_mean"] = round(sum(polls) / len(polls), 2) if polls else None
        if self.waiter is not None:
            base["dial_409_after_create"] = self.waiter.dial_races
            if self.waiter.errors:
                base["waiter_errors"] = self.waiter.errors[:10]
        if self.engine is not None:
            eng["engine_cannot_ring_lines"] = len(re.findall(
                rf"call {re.escape(self.prefix)}\d+-engine-ivr: cannot ring", self.engine.text()))
        ep50 = eng["register_to_invite_ms"]["p50"]
        bp50 = base["register_to_invite_ms"]["p50"]
        ep99 = eng["register_to_invite_ms"]["p99"]
        bp99 = base["register_to_invite_ms"]["p99"]
        # the targets count a call that never rang as infinitely late
        all_calls = with_failures(results["engine"])
        eng["register_to_invite_ms_failed_as_inf"] = all_calls
        out: dict[str, Any] = {
            "calls": args.calls,
            "engine": eng,
            "baseline_polling": base,
            "ratio_p50_baseline_over_engine": round(bp50 / ep50, 1) if ep50 and bp50 else None,
            "ratio_p99_baseline_over_engine": round(bp99 / ep99, 1) if ep99 and bp99 else None,
            "targets": {
                "p50<=20ms": isinstance(all_calls["p50"], float) and all_calls["p50"] <= 20,
                "p99<=100ms": isinstance(all_calls["p99"], float) and all_calls["p99"] <= 100,
            },
            "settings": {
                "delay_s": args.delay,
                "jitter_max_s": jitter_max,
                "call_timeout_s": args.timeout,
                "warmup_pairs": args.warmup,
                "engine_wait_budget_s": WAIT_BUDGET,
                "seed": args.seed,
            },
            "pushes_received": self.pushes,
            "asterisk_reloaded_during_run": reload0 != reload1,
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "asterisk": version,
                "baresip": baresip_version(),
                "kernel": platform.release(),
                "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            },
        }
        if args.samples:
            for key, rs in (("engine", results["engine"]),
                            ("baseline_polling", results["baseline"])):
                out[key]["samples_register_to_invite_ms"] = [
                    round(r.ms("t_register", "t_invite"), 2) for r in rs if r.ok]
        return out


def with_failures(rs: list[CallResult]) -> dict[str, Any]:
    """p50/p99 of REGISTER -> INVITE over every call, a failed call counting as +inf."""
    v = sorted((x if r.ok and (x := r.ms("t_register", "t_invite")) is not None
                else math.inf) for r in rs)
    if not v:
        return {"p50": None, "p99": None, "n": 0}

    def rank(q: float) -> float | str:
        x = v[max(0, math.ceil(q * len(v)) - 1)]
        return "inf" if math.isinf(x) else round(x, 1)

    return {"p50": rank(0.50), "p99": rank(0.99), "n": len(v)}


def mode_json(rs: list[CallResult]) -> dict[str, Any]:
    ok = [r for r in rs if r.ok]
    failures = collections.Counter(r.reason for r in rs if not r.ok)

    def ms(a: str, b: str) -> list[float]:
        return [x for r in ok if (x := r.ms(a, b)) is not None]

    def contact(after: str) -> list[float]:
        out = []
        for r in ok:
            if r.contact_event_ts is None or r.wire is None:
                continue
            t_reg, t_inv = r.wire.t_register / 1e9, r.wire.t_invite / 1e9
            out.append(((r.contact_event_ts - t_reg) if after == "register" else
                        (t_inv - r.contact_event_ts)) * 1000)
        return out

    out: dict[str, Any] = {
        "n": len(ok),
        "register_to_invite_ms": percentiles(ms("t_register", "t_invite")),
        "register_to_200_ms": percentiles(ms("t_register", "t_200")),
        "ok200_to_invite_ms": percentiles(ms("t_200", "t_invite")),
        "breakdown_asterisk_event_ts_ms": {
            "register_to_contact_event": percentiles(contact("register")),
            "contact_event_to_invite": percentiles(contact("invite")),
        },
        "invite_to_app_200_ms": percentiles(ms("t_invite", "t_answer")),
        "register_had_authorization": sum(1 for r in ok if r.wire and r.wire.register_had_auth),
        "failed": len(rs) - len(ok),
    }
    rung = [r.engine_rung_ms for r in ok if r.engine_rung_ms is not None]
    if rung:
        out["engine_log_event_to_dialled_ms"] = percentiles(rung)
    if failures:
        out["failures"] = dict(failures.most_common())
    return out


def baresip_version() -> str | None:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "baresip-core"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


async def amain(args: argparse.Namespace, env: dict[str, str], tmp: Path) -> dict[str, Any]:
    bench = Bench(args, env, tmp)
    result: dict[str, Any]
    try:
        await bench.setup()
        result = await bench.run()
    except BaseException as exc:  # noqa: BLE001 - reported as JSON; cleanup below
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        if isinstance(exc, asyncio.CancelledError):
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()      # the cleanup below must run normally
            exc = TimeoutError("global time limit reached")
        log(f"benchmark failed: {type(exc).__name__}: {exc}")
        if bench.engine is not None and bench.engine.proc is not None:
            log("engine log tail:\n" + bench.engine.tail(15))
        result = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        try:
            cleanup = await asyncio.wait_for(bench.teardown(), 60)
        except BaseException as exc:  # noqa: BLE001
            cleanup = {"cleanup_error": f"{type(exc).__name__}: {exc}"}
    if args.keep and bench.engine is not None:
        keep = Path(args.keep)
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy2(bench.engine.log_path, keep / "engine.log")
        log(f"engine log kept in {keep}")
    result.update(cleanup)
    return result


async def with_deadline(coro_fn: Callable[[], Any], seconds: float) -> Any:
    """Run the benchmark; past ``seconds`` cancel it (its cleanup still runs)."""
    task = asyncio.create_task(coro_fn())
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        log(f"global time limit ({seconds:.0f} s) reached; stopping")
        task.cancel()
        try:
            return await task
        except asyncio.CancelledError:
            return {"error": "global time limit reached"}
    return task.result()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=50, help="measured calls PER MODE")
    p.add_argument("--poll-interval", type=float, default=0.25,
                   help="baseline: seconds between registration checks (see README)")
    p.add_argument("--delay", type=float, default=0.2,
                   help="seconds between the push and the app's start")
    p.add_argument("--jitter", type=float, default=None,
                   help="extra random wake delay, uniform in [0, JITTER] s, the same for both "
                        "calls of a pair (default: --poll-interval, so that the REGISTER "
                        "falls at a uniformly random point of the poll cycle)")
    p.add_argument("--warmup", type=int, default=1, help="uncounted call pairs first")
    p.add_argument("--timeout", type=float, default=25.0, help="per-call timeout, seconds")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="global time limit (default: from --calls and --timeout)")
    p.add_argument("--seed", type=int, default=None, help="random seed of the jitter")
    p.add_argument("--samples", action="store_true", help="add every call's figure to the JSON")
    p.add_argument("--keep", metavar="DIR", help="copy the engine log to DIR")
    p.add_argument("--cluster", action="store_true",
                   help="through Kamailio (scripts/cluster) vs one node: bench/wakeup_cluster.py")
    args = p.parse_args()
    if args.cluster:
        import wakeup_cluster

        return wakeup_cluster.run(args.calls, args.warmup, args.samples)
    if args.calls < 1 or args.timeout <= 0 or args.poll_interval <= 0 or args.delay < 0:
        p.error("--calls, --timeout, --poll-interval must be positive, --delay >= 0")
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    if os.geteuid() != 0:
        raise SystemExit("needs root (raw AF_PACKET capture, sandbox chroot)")
    if shutil.which("baresip") is None:
        raise SystemExit("baresip is not installed")

    log("scripts/asterisk-sandbox up")
    sandbox("up", timeout=SANDBOX_UP_TIMEOUT)
    env = sandbox_env(("IVR_ARI_URL", "IVR_ARI_USERNAME", "IVR_ARI_PASSWORD",
                       "IVR_SIP_PASSWORD"))
    if not env["IVR_ARI_URL"].startswith(("http://127.", "http://localhost", "http://[::1]")):
        raise SystemExit(f"refusing a non-loopback ARI ({env['IVR_ARI_URL']})")
    busy = connected_apps() & {ENGINE_APP, POLL_APP}
    if busy:
        raise SystemExit(f"ARI app(s) {sorted(busy)} already connected (another benchmark "
                         "running?); not taking them over")
    max_seconds = args.max_seconds or (
        120 + 2 * (args.calls + args.warmup) * (args.timeout + 25))
    tmp = Path(tempfile.mkdtemp(prefix="ivr-wbench-"))
    code = 1
    try:
        result = asyncio.run(with_deadline(lambda: amain(args, env, tmp), max_seconds))
        code = 0 if "error" not in result else 1
    except KeyboardInterrupt:
        result = {"error": "interrupted"}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
