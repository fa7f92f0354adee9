#!/usr/bin/env python3
"""Soak: thousands of real SIP calls of every kind through one engine, with SMS and a release
fan-out running beside; does the engine give back everything it took?

    python bench/soak.py --calls 10000 --concurrency 50        # the full soak (~20 min)
    python bench/soak.py --quick                                # 300 calls (development)
    python bench/soak.py --mix menu_queue=30,hangup_prompt=15 --calls 500

SIPp callers (one SIPp process per call, ``--concurrency`` at a time) arrive on the
``bench-carrier`` trunk with RFC 4733 keys and go to the engine (``bench/soak.yaml``, ARI
application ``ivr-bench``). Each call is one kind, drawn by weight (``--mix``):

=================  ==========================================================================
menu_queue         keys 1, 2, 3 through the 3-level tree -> Queue(support); hangs up ~2 s later
hangup_prompt      hangs up while a prompt plays (level 1, or level 2 after key 1)
transfer_ivr       key 1, then ``POST /v1/calls/{id}/transfer`` queue:sales while it waits in l2
transfer_queued    walks to Queue(support), then the same transfer (an AMI redirect)
wake_answer        the wake line -> user:alice or user:bob, whose app sleeps: the engine pushes
                   (a local FakeFcm), the bench starts a baresip as that user on the push, it
                   registers and answers; bridged with the caller, who hangs up ~3 s later
wake_timeout       the wake line -> user:carol, whose app never wakes: the push, then the
                   no-answer destination (a closing message) after the 2 s budget
fallback_wrong     the app's fallback number with a wrong ``<token>#``: outside-app message
fallback_valid     a call plan (``POST /v1/apps/soakapp/calls``), then the fallback number
                   with its ``<token>#`` -> the app's menu, key 1 -> Queue(billing)
=================  ==========================================================================

Beside the calls: SMS (the engine's in-engine dialer, a campaign uploaded in chunks and
single sends, to the local Infobip server of ``tests/support/sms_providers.py``, a child
process) and one release publication (``POST /v1/admin/apps/soakapp/releases``) notifying
``--devices`` Android devices through the same FakeFcm.

Sampled before (after a warm-up of every kind), every ``--sample-seconds`` during, and
after (once every call has ended and ``--settle`` seconds have passed): the engine's RSS
(``/proc/<pid>/status``), every ``ivr_held{kind}`` of ``/metrics`` (sessions, channels,
registration_waits, live_records) and Asterisk's channel count (``GET /channels``). The
baseline is the before-figures of the same run. One JSON object on stdout; progress on
stderr. Needs root (the sandbox chroot), sipp and baresip; run it under the live lock.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import datetime as dt
import itertools
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from common import (  # noqa: E402
    REPO,
    asterisk_pid,
    connected_apps,
    make_log,
    percentiles,
    proc_cpu,
    sandbox,
    sandbox_env,
    stop_engine,
    tail_file,
)

sys.path.insert(0, str(REPO))

from ivr_engine.ari import ChannelEnteredBridge, Event  # noqa: E402
from ivr_engine.testing.record import CallRecord  # noqa: E402
from ivr_engine.testing.rtp_pcap import Key, keys_at, write_pcap  # noqa: E402
from ivr_engine.testing.sipp import (  # noqa: E402
    ASTERISK_SIP,
    SCENARIO,
    TRUNKS,
    TrunkObserver,
)
from tests.e2e import baresip_ua  # noqa: E402
from tests.support import identity  # noqa: E402
from tests.support.identity import open_session  # noqa: E402
from tests.support.push_servers import FakeFcm  # noqa: E402

log = make_log("soak")
SLOT: contextvars.ContextVar[int] = contextvars.ContextVar("slot", default=0)
CONFIG = REPO / "bench" / "soak.yaml"
APP_NAME = "ivr-bench"
APP = "soakapp"
APP_KEY = "soak-app-key-000000000000000000000000000"
ADMIN = "soak-admin-token-0000000000000000000000"
identity.SECRETS.setdefault(APP, "soakapp-backend-secret-0000000000000000")
TREE_DID, WAKE_DID, FALLBACK_DID = "+15550005000", "+15550005100", "+15550005200"
ANSWERING = {"alice": "1", "bob": "2"}  # wake menu keys of the users whose phone answers
SLEEPER = ("carol", "3")                # never wakes
# SIPp binds its SIP port, the audio port (-mp) and the video port (-mp + 2): each slot has
# its own, between Asterisk's RTP range (10000-20000) and the kernel's ephemeral ports, so two
# callers never race for a port (a free port picked by bind(0) says nothing of its +2)
PORT_BASE = 21000
HELD_KINDS = ("sessions", "channels", "registration_waits", "live_records")
DEFAULT_MIX = {"menu_queue": 28, "hangup_prompt": 15, "transfer_ivr": 10,
               "transfer_queued": 10, "wake_answer": 4, "wake_timeout": 8,
               "fallback_wrong": 12, "fallback_valid": 13}
# key timing: barge-in, like a caller who knows the menu (RFC 4733 on the trunk)
K0, KGAP = 1000, 600


def token_of(i: int) -> str:
    return f"fcm-soak-{i:06d}-" + "r" * 40


def user_token(user: str) -> str:
    return f"fcm-soak-user-{user}-" + "u" * 40


@dataclass
class Outcome:
    kind: str
    ok: bool = False
    reason: str = ""
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


class Observer(TrunkObserver):
    """The trunk observer of ivr_engine/testing/sipp.py, also noting the bridges a call's
    channel enters (a woken phone answering) as ``bridge`` entries of its timeline."""

    def unrouted(self, now: float, ev: Event) -> None:
        channel = getattr(ev, "channel", None)
        call = self.calls.get(getattr(channel, "caller_number", None) or "")
        if call is None or call.channel or channel is None or ev.channel_id != channel.id:
            return
        call.channel = channel.id

        def route(t: float, e: Event, call: CallRecord = call) -> None:
            if isinstance(e, ChannelEnteredBridge):
                call.add("bridge", e.bridge_id, t)
            call.observe(e, t)

        self.routes[channel.id] = route
        route(now, ev)

    def forget(self, caller: str, call: CallRecord) -> None:
        self.calls.pop(caller, None)
        if call.channel:
            self.routes.pop(call.channel, None)


# --------------------------------------------------------------------------- engine

class Engine:
    def __init__(self, env: dict[str, str], tmp: Path, extra: dict[str, str]):
        self.tmp = tmp
        self.log_path = tmp / "engine.log"
        self.env = {**os.environ, **{k: v for k, v in env.items() if k.startswith("IVR_")},
                    **extra, "IVR_DATABASE_URL": f"sqlite:///{tmp / 'soak.db'}"}
        self.proc: subprocess.Popen | None = None

    @property
    def db_url(self) -> str:
        return self.env["IVR_DATABASE_URL"]

    def upgrade(self) -> None:
        subprocess.run([sys.executable, "-m", "ivr_engine.cli", "db", "upgrade", "-c",
                        str(CONFIG)], cwd=REPO, env=self.env, stdin=subprocess.DEVNULL,
                       check=True, stdout=subprocess.DEVNULL)

    async def start(self) -> None:
        logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "ivr_engine.cli", "run", "-c",
                                      str(CONFIG)], cwd=REPO, env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        logf.close()
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited {self.proc.returncode}:\n"
                                   f"{tail_file(self.log_path)}")
            if "engine ready" in self.log_path.read_text(errors="replace"):
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"engine not ready in 40 s:\n{tail_file(self.log_path)}")

    def rss_kib(self) -> int | None:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except (OSError, AttributeError):
            return None
        return None

    def warnings(self) -> dict[str, int]:
        """WARNING lines of the engine's log by message shape (ids and numbers masked)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        shapes: Counter = Counter()
        for ln in text.splitlines():
            m = re.match(r"\S+ \S+ WARNING (\S+) (?:\[[^]]*\] )?(.*)", ln)
            if m:
                msg = re.sub(r"ivr-sandbox-[0-9.]+(?:-\w+)?", "<ch>", m.group(2))
                shapes[f"{m.group(1)}: " + re.sub(r"[0-9]+(?:\.[0-9]+)?", "N", msg)[:140]] += 1
        return dict(shapes.most_common(12))

    def errors(self) -> list[str]:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [ln for ln in text.splitlines()
                if re.search(r"\bERROR\b", ln) or ln.startswith("Traceback")]


async def fill_devices(db_url: str, n: int) -> None:
    """``n`` Android devices of soakapp at version 1.0.0 (never logged in: reachable)."""
    from sqlalchemy import insert

    from ivr_engine.repositories import Store
    from ivr_engine.store.models import Device

    now = dt.datetime.now(dt.timezone.utc)
    rows = [{"user": f"fan{i:05d}", "app": APP, "platform": "android",
             "push_token": token_of(i), "app_version": "1.0.0", "source": "api",
             "os_version": "", "model": "", "updated_at": now} for i in range(n)]
    store = await Store.open(db_url)
    try:
        async with store.db.sessions() as s, s.begin():
            for k in range(0, len(rows), 2000):
                await s.execute(insert(Device), rows[k:k + 2000])
    finally:
        await store.close()


# --------------------------------------------------------------------------- the soak

class Soak:
    def __init__(self, args: argparse.Namespace, env: dict[str, str], tmp: Path):
        self.args = args
        self.env = env
        self.tmp = tmp
        self.rng = random.Random(args.seed)
        self.numbers = itertools.count(int(time.time()) % 10_000 * 1000)
        self.address = TRUNKS["bench-carrier"]
        self.files: dict[Any, Path] = {}
        self.pushes: dict[str, Counter] = defaultdict(Counter)   # call id -> push types
        self.push_waiters: dict[str, asyncio.Future] = {}        # user -> "pushed"
        self.release_pushes = 0
        self.other_pushes = Counter()
        self.phones: asyncio.Queue[str] = asyncio.Queue()
        for u in ANSWERING:
            self.phones.put_nowait(u)
        self.outcomes: list[Outcome] = []
        self.samples: list[dict[str, Any]] = []
        self.done = 0
        self.sms_expected = 0
        self.sms_singles_failed: list[str] = []
        self.fanout: dict[str, Any] = {}
        self.transfer_status: Counter = Counter()
        self.harness: Counter = Counter()
        self.baresip_n = itertools.count(self.rng.randrange(0, 150))

    # ------------------------------------------------------------------ files

    def pcap(self, keys: list[Key], hold_ms: int, cache: bool = True) -> Path:
        sig = tuple((k.digit, k.at_ms, k.duration_ms) for k in keys)
        last = max((k.at_ms + k.duration_ms for k in keys), default=0)
        if cache and sig in self.files:
            return self.files[sig]
        name = f"k{len(self.files)}-{next(self.numbers)}.pcap"
        p = write_pcap(self.pcap_dir / name, keys, max(last + 200, 500))
        if cache:
            self.files[sig] = p
        return p

    # ------------------------------------------------------------------ one SIPp caller

    async def sipp(self, did: str, keys: list[Key], hold_ms: int, *, cache: bool = True
                   ) -> tuple[str, CallRecord, asyncio.Task]:
        base = PORT_BASE + 8 * SLOT.get()
        """Start one SIPp caller; returns its caller number, its record (filled in by the
        observer) and the task that ends with (SIPp exit code, output tail)."""
        caller = f"+1556{next(self.numbers) % 10_000_000:07d}"
        call = self.observer.expect(caller)
        pcap = self.pcap(keys, hold_ms, cache)
        # SIPp reads the pcap's name from the scenario when it loads it: one scenario per
        # (hold, pcap) pair, written once
        key = ("xml", hold_ms, pcap.name)
        if key not in self.files:
            p = self.tmp / f"caller-{hold_ms}-{pcap.stem}.xml"
            p.write_text(SCENARIO.read_text().replace("@PCAP@", str(pcap))
                         .replace("@HOLD_MS@", str(hold_ms)))
            self.files[key] = p
        scen = self.files[key]
        inf = self.tmp / "inf" / f"{caller[1:]}.csv"
        inf.write_text(f"SEQUENTIAL\n{caller};{did};\n")
        cmd = ["sipp", "-sf", str(scen), "-inf", str(inf), "-i", self.address,
               "-p", str(base), "-mi", self.address, "-mp", str(base + 2),
               "-m", "1", "-l", "1", "-r", "1",
               "-nostdin", "-timeout", f"{int(self.args.call_timeout)}s", "-timeout_error",
               ASTERISK_SIP]

        async def run() -> tuple[int, str]:
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                cwd=self.tmp / "inf", env={**os.environ, "TERM": "dumb"})
            try:
                out, _ = await proc.communicate()
            except asyncio.CancelledError:
                proc.kill()
                await proc.wait()
                raise
            finally:
                inf.unlink(missing_ok=True)
                if not cache:
                    pcap.unlink(missing_ok=True)
                    scen.unlink(missing_ok=True)
                    self.files.pop(key, None)
            return proc.returncode or 0, out.decode(errors="replace")[-600:]

        return caller, call, asyncio.create_task(run(), name=f"sipp-{caller}")

    async def finish(self, caller: str, call: CallRecord, task: asyncio.Task,
                     out: Outcome) -> bool:
        """Wait for the SIPp caller and the call's end; False (with the reason) when SIPp
        failed, the call never reached Asterisk or never ended."""
        rc, text = await task
        deadline = time.monotonic() + 10
        while not call.ended and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.observer.forget(caller, call)
        if not call.channel:
            out.reason = f"never reached Asterisk (SIPp exit {rc})"
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            out.detail["sipp"] = re.sub(r"^\S+\s+\S+\s+\S+\s+", "", lines[-1])[:160] \
                if lines else ""
            if "unable to bind" in text.lower():
                out.reason = "SIPp could not bind its port (harness)"
            return False
        if rc != 0:
            last = [ln.strip() for ln in text.splitlines() if ln.strip()][-1:] or [""]
            out.reason = f"SIPp exit {rc}"
            out.detail["sipp"] = last[0][:160]
            return False
        if not call.ended:
            out.reason = "channel not destroyed 10 s after SIPp ended"
            return False
        return True

    # ------------------------------------------------------------------ kinds

    async def k_menu_queue(self, out: Outcome) -> None:
        caller, call, task = await self.sipp(TREE_DID, keys_at("123", K0, KGAP), 4500)
        if await self.finish(caller, call, task, out):
            self.expect_queue(call, out, "support")

    async def k_hangup_prompt(self, out: Outcome) -> None:
        variant = self.rng.choice(["l1-early", "l1-late", "l2"])
        if variant == "l2":   # key 1 at 1.0 s, hang up during l2's prompt
            caller, call, task = await self.sipp(TREE_DID, keys_at("1", K0, KGAP), 1500)
        else:
            caller, call, task = await self.sipp(
                TREE_DID, [], 400 if variant == "l1-early" else 1100)
        if not await self.finish(caller, call, task, out):
            return
        out.detail["variant"] = variant
        if call.handoff is not None or call.declared is not None:
            out.reason = f"ended at {call.destination} (expected a caller hang-up)"
        elif not call.prompts:
            out.reason = "hung up before any prompt started"
        elif variant == "l2" and not any(p.endswith("please-try-again") for p in call.prompts):
            out.reason = "key 1 did not reach l2"
        else:
            out.ok = True

    async def transfer(self, channel: str) -> tuple[int, str]:
        url = f"{self.api}/v1/calls/{channel}/transfer"
        async with self.http.post(url, json={"to": "queue:sales"},
                                  headers={"Authorization": f"Bearer {ADMIN}"}) as r:
            body = await r.text()
            self.transfer_status[r.status] += 1
            return r.status, body

    async def k_transfer(self, out: Outcome, queued: bool) -> None:
        keys = "123" if queued else "1"
        caller, call, task = await self.sipp(TREE_DID, keys_at(keys, K0, KGAP),
                                             8000 if queued else 6500)
        status = None
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and not task.done() and not call.ended:
            ready = (any(a == "Queue" for a, _ in call.dialplan) if queued else
                     call.variables.get("IVR_AWAITING", "").startswith("l2"))
            if ready:
                status, body = await self.transfer(call.channel)
                if status != 202:
                    out.detail["transfer"] = f"{status} {body[:160]}"
                break
            await asyncio.sleep(0.05)
        if not await self.finish(caller, call, task, out):
            return
        if status is None:
            out.reason = ("never reached Queue(support)" if queued else "never waited in l2")
        elif status != 202:
            out.reason = f"transfer answered {status}"
        elif ("Queue", "sales") not in [(a, d.split(",")[0]) for a, d in call.dialplan]:
            out.reason = "transferred (202) but never ran Queue(sales)"
        else:
            out.ok = True

    async def k_wake_answer(self, out: Outcome) -> None:
        user = await self.phones.get()
        phone = None
        try:
            pushed = self.push_waiters[user] = asyncio.get_running_loop().create_future()
            ep = await self.ari.get_endpoint("PJSIP", user)
            if ep and ep.get("state") == "online":
                out.reason = f"{user} online before the call"
                self.harness["phone still registered"] += 1
                return
            caller, call, task = await self.sipp(
                WAKE_DID, keys_at(ANSWERING[user], 600, KGAP), 5500)
            try:
                await asyncio.wait_for(asyncio.shield(pushed), 8)
                n = next(self.baresip_n)
                baresip_ua._ports = itertools.count(n)
                phone = baresip_ua.Baresip(user, self.env["IVR_SIP_PASSWORD"],
                                           self.tmp / "phones")
                phone.start()
            except TimeoutError:
                pass
            answered = False   # the engine bridges the caller and the phone in <call>-bridge
            while phone is not None and not answered and not task.done() and not call.ended:
                if call.channel:
                    _, bridge = await self.ari._maybe_404("GET",
                                                          f"/bridges/{call.channel}-bridge")
                    answered = bool(bridge) and len(bridge.get("channels", [])) == 2
                await asyncio.sleep(0.1)
            ok = await self.finish(caller, call, task, out)
            out.detail["user"] = user
            if not ok:
                return
            if not self.pushes.get(call.channel, {}).get("incoming_call"):
                out.reason = "no wake-up push"
            elif not answered:
                out.reason = f"not answered (declared {call.declared})"
            else:
                out.ok = True
        finally:
            self.push_waiters.pop(user, None)
            if phone is not None:
                await phone.stop()
            for _ in range(100):   # the next call to this user must wake it again
                ep = await self.ari.get_endpoint("PJSIP", user)
                if not ep or ep.get("state") != "online":
                    break
                await asyncio.sleep(0.1)
            self.phones.put_nowait(user)

    async def k_wake_timeout(self, out: Outcome) -> None:
        caller, call, task = await self.sipp(WAKE_DID, keys_at(SLEEPER[1], 600, KGAP), 12000)
        if not await self.finish(caller, call, task, out):
            return
        if not self.pushes.get(call.channel, {}).get("incoming_call"):
            out.reason = "no wake-up push"
        elif call.declared != {"type": "message-then-hangup", "target": "bye"}:
            out.reason = f"ended at {call.destination} (expected the no-answer message)"
        elif any(k == "bridge" and w.endswith("-bridge") for _, _, k, w in call.timeline):
            out.reason = "bridged with a phone that should sleep"
        else:
            out.ok = True

    async def k_fallback_wrong(self, out: Outcome) -> None:
        caller, call, task = await self.sipp(FALLBACK_DID, keys_at("000000#", 800, 250), 9000)
        if not await self.finish(caller, call, task, out):
            return
        if call.declared != {"type": "message-then-hangup", "target": "outside-app"}:
            out.reason = f"ended at {call.destination} (expected the outside-app message)"
            out.detail["decoded"] = "".join(call.keys)
        else:
            out.ok = True

    async def k_fallback_valid(self, out: Outcome) -> None:
        async with self.http.post(f"{self.api}/v1/apps/{APP}/calls",
                                  json={"connectivity": 0, "language": "en"},
                                  headers={"Authorization": f"Bearer {APP_KEY}"}) as r:
            if r.status not in (200, 201):
                out.reason = f"call plan answered {r.status}"
                out.detail["plan"] = (await r.text())[:160]
                return
            plan = await r.json()
        token = plan.get("token") or ""
        digits = list(token + "#")
        keys = keys_at(digits, 800, 250) + [Key("1", 800 + 250 * len(digits) + 900)]
        caller, call, task = await self.sipp(FALLBACK_DID, keys, 9000, cache=False)
        if await self.finish(caller, call, task, out):
            self.expect_queue(call, out, "billing")
        if not out.ok:   # what Asterisk decoded against what was sent
            out.detail.update(sent=token + "#1", decoded="".join(call.keys))

    @staticmethod
    def expect_queue(call: CallRecord, out: Outcome, queue: str) -> None:
        if call.handoff == {"type": "queue", "target": queue}:
            out.ok = True
        else:
            out.reason = (f"ended at {call.destination['type']}:{call.destination['target']}"
                          if call.destination else
                          f"ended before Queue({queue}) (keys decoded {''.join(call.keys)})")

    async def one(self, kind: str) -> Outcome:
        out = Outcome(kind)
        t0 = time.monotonic()
        try:
            if kind in ("transfer_ivr", "transfer_queued"):
                await self.k_transfer(out, kind == "transfer_queued")
            else:
                await getattr(self, f"k_{kind}")(out)
        except Exception as exc:  # noqa: BLE001 - a harness error is counted, never fatal
            out.ok = False
            out.reason = f"bench error: {type(exc).__name__}: {exc}"[:200]
        out.seconds = time.monotonic() - t0
        return out

    # ------------------------------------------------------------------ beside the calls

    def on_push(self, msg: Any) -> None:
        kind = msg.data.get("type", "?")
        if msg.token.startswith("fcm-soak-user-"):
            self.pushes[msg.data.get("call_id", "")][kind] += 1
            user = msg.token.split("-")[3]
            fut = self.push_waiters.get(user)
            if kind == "incoming_call" and fut is not None and not fut.done():
                fut.set_result(True)
        elif kind == "app_update":
            self.release_pushes += 1
        else:
            self.other_pushes[kind] += 1

    async def metrics(self) -> dict[str, float]:
        async with self.http.get(f"{self.api}/metrics") as r:
            text = await r.text()
        held = {}
        for m in re.finditer(r'^ivr_held\{kind="(\w+)"\} ([0-9.e+-]+)$', text, re.M):
            held[m.group(1)] = float(m.group(2))
        m = re.search(r"^ivr_calls_in_progress ([0-9.e+-]+)$", text, re.M)
        held["calls_in_progress"] = float(m.group(1)) if m else None
        return held

    async def sample(self, phase: str) -> dict[str, Any]:
        held = await self.metrics()
        chans = await self.ari.list_channels()
        s = {"phase": phase, "t": round(time.monotonic() - self.t0, 1), "calls_done": self.done,
             "rss_kib": self.engine.rss_kib(),
             "held": {k: held.get(k) for k in HELD_KINDS},
             "calls_in_progress": held.get("calls_in_progress"),
             "asterisk_channels": len(chans),
             "engine_cpu_s": round(proc_cpu(self.engine.proc.pid) or 0, 1)}
        self.samples.append(s)
        return s

    async def sampler(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.args.sample_seconds)
            except TimeoutError:
                pass
            if stop.is_set():
                return
            s = await self.sample("during")
            ok = sum(1 for o in self.outcomes if o.ok)
            log(f"{self.done}/{self.args.calls} calls ({ok} ok), rss {s['rss_kib']} KiB, "
                f"held {s['held']}, asterisk channels {s['asterisk_channels']}")

    async def sms(self, stop: asyncio.Event) -> None:
        """A campaign chunk every 30 s and a single send every 5 s while the calls run."""
        k = 0
        i = 0
        while not stop.is_set():
            if k % 6 == 0:
                rows = "".join(f"promo;+5989{i + j:07d};soak message {i + j};1\n"
                               for j in range(self.args.sms_chunk))
                async with self.http.post(f"{self.api}/v1/sms/uploads", data=rows.encode(),
                                          headers={"Authorization": f"Bearer {ADMIN}",
                                                   "Content-Type": "text/csv"}) as r:
                    if r.status == 200:
                        self.sms_expected += self.args.sms_chunk
                    else:
                        self.sms_singles_failed.append(f"upload {r.status} "
                                                       f"{(await r.text())[:120]}")
                i += self.args.sms_chunk
            async with self.http.post(f"{self.api}/v1/sms", json={
                    "destination": f"+5989{9_000_000 + k:07d}", "message": f"single {k}"},
                    headers={"Authorization": f"Bearer {ADMIN}"}) as r:
                if r.status in (200, 202):
                    self.sms_expected += 1
                else:
                    self.sms_singles_failed.append(f"single {r.status} {(await r.text())[:120]}")
            k += 1
            try:
                await asyncio.wait_for(stop.wait(), 5)
            except TimeoutError:
                pass

    async def release(self) -> None:
        """One release publication once a third of the calls are done."""
        while self.done < self.args.calls // 3:
            await asyncio.sleep(0.5)
        log(f"publishing a release to {self.args.devices} devices")
        t0 = time.monotonic()
        async with self.http.post(
                f"{self.api}/v1/admin/apps/{APP}/releases",
                json={"platform": "android", "version": "1.5.0", "kind": "recommended",
                      "store_url": "https://play.example/soak", "messages": {"en": "Update"}},
                headers={"Authorization": f"Bearer {ADMIN}"}) as r:
            body = await r.text()
            self.fanout = {"status": r.status, "seconds": round(time.monotonic() - t0, 2),
                           "at_calls_done": self.done}
            try:
                self.fanout["answer"] = json.loads(body)
            except ValueError:
                self.fanout["answer"] = body[:300]
        log(f"release: {self.fanout['status']} in {self.fanout['seconds']} s")

    # ------------------------------------------------------------------ the run

    def draw(self) -> str:
        kinds = list(self.args.mix)
        return self.rng.choices(kinds, weights=[self.args.mix[k] for k in kinds])[0]

    async def workers(self) -> None:
        todo = iter(range(self.args.calls))

        async def slot(n: int) -> None:
            SLOT.set(n)
            await asyncio.sleep(n * 0.1)   # ramp up over concurrency / 10 seconds
            for _ in todo:
                out = await self.one(self.draw())
                self.outcomes.append(out)
                self.done += 1
                if not out.ok:
                    log(f"{out.kind}: {out.reason} {out.detail or ''}")

        async with asyncio.TaskGroup() as tg:
            for n in range(self.args.concurrency):
                tg.create_task(slot(n))

    async def quiet(self, timeout: float, channels: int = 0) -> dict[str, Any]:
        """Wait for everything to be given back (held 0, at most ``channels`` channels in
        Asterisk: those that were there before, someone else's), then settle."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            held = await self.metrics()
            chans = await self.ari.list_channels()
            if len(chans) <= channels and all(held.get(k) == 0 for k in HELD_KINDS):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(self.args.settle)
        return {"waited_s": round(timeout - max(0.0, deadline - time.monotonic()), 1)}

    async def run(self) -> dict[str, Any]:
        a = self.args
        (self.tmp / "inf").mkdir()
        (self.tmp / "phones").mkdir()
        self.pcap_dir = self.tmp / "pcap"
        self.pcap_dir.mkdir()
        prov = subprocess.Popen([sys.executable, "-m", "tests.support.sms_providers",
                                 "--port", "0"], cwd=REPO, stdout=subprocess.PIPE, text=True)
        provider_url = json.loads(prov.stdout.readline())["url"]
        fcm = FakeFcm(on_message=self.on_push)
        await fcm.start()
        account = fcm.make_service_account(self.tmp)
        port = _free_tcp_port()
        self.api = f"http://127.0.0.1:{port}"
        self.engine = Engine(self.env, self.tmp, {
            "IVR_API_LISTEN": f"127.0.0.1:{port}", "IVR_ADMIN_TOKEN": ADMIN,
            "IVR_SOAK_FCM_SA": str(account.path), "IVR_SOAK_FCM_URL": fcm.url,
            "SMS_PROVIDER_URL": provider_url})
        result: dict[str, Any] = {"benchmark": "soak", "calls": a.calls,
                                  "concurrency": a.concurrency, "mix": a.mix, "seed": a.seed}
        try:
            self.engine.upgrade()
            await fill_devices(self.engine.db_url, a.devices)
            await self.engine.start()
            log(f"engine up (pid {self.engine.proc.pid}), API {self.api}")
            self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
            for user in (*ANSWERING, SLEEPER[0]):   # each app logs in, registers its token
                session = await open_session(self.http, self.api, APP, APP_KEY, user)
                async with self.http.post(f"{self.api}/v1/devices", json={
                        "platform": "android", "push_token": user_token(user),
                        "model": "soak"}, headers={"Authorization": f"Bearer {session}"}) as r:
                    if r.status != 201:
                        raise RuntimeError(f"POST /v1/devices -> {r.status}: {await r.text()}")
            self.observer = Observer(self.env["IVR_ARI_URL"], self.env["IVR_ARI_USERNAME"],
                                     self.env["IVR_ARI_PASSWORD"], "bench-carrier")
            await self.observer.__aenter__()
            self.ari = self.observer.ari
            self.t0 = time.monotonic()
            result["at_start"] = await self.sample("start")
            log(f"warm-up: {a.warmup} call(s) of each kind")
            async def warm_one(n: int, kind: str) -> Outcome:
                SLOT.set(n)
                return await self.one(kind)

            warm = await asyncio.gather(*(warm_one(n, k) for n, k in enumerate(
                k for k in a.mix for _ in range(a.warmup))))
            result["warmup_failed"] = [f"{o.kind}: {o.reason}" for o in warm if not o.ok]
            await self.quiet(60, result["at_start"]["asterisk_channels"])
            before = await self.sample("before")
            cpu0 = proc_cpu(self.engine.proc.pid)
            ast0 = proc_cpu(asterisk_pid())
            log(f"before: {before}")
            t_run = time.monotonic()
            stop = asyncio.Event()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.sampler(stop))
                tg.create_task(self.sms(stop))
                rel = tg.create_task(self.release())
                await self.workers()
                wall = time.monotonic() - t_run
                if not rel.done():
                    rel.cancel()
                stop.set()
            cpu1 = proc_cpu(self.engine.proc.pid)
            ast1 = proc_cpu(asterisk_pid())
            log("calls done; waiting for everything to be given back")
            result["quiet"] = await self.quiet(a.quiet_timeout, before["asterisk_channels"])
            after = await self.sample("after")
            log(f"after: {after}")
            result.update(self.report(before, after, wall, cpu0, cpu1, ast0, ast1))
            # SMS: every row resolved at the provider, none twice
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                async with self.http.get(f"{provider_url}/_stats") as r:
                    st = await r.json()
                if st["accepted"] >= self.sms_expected:
                    break
                await asyncio.sleep(1)
            result["sms"] = {"expected": self.sms_expected, "accepted_at_provider":
                             st["accepted"], "distinct": st["distinct"],
                             "duplicates": st["duplicates"],
                             "refused": self.sms_singles_failed[:5]}
            result["fanout"] = {**self.fanout, "devices": a.devices,
                                "app_update_pushes_at_fcm": self.release_pushes}
            result["pushes_other"] = dict(self.other_pushes)
            result["wake_pushes"] = dict(sum(self.pushes.values(), Counter()))
        finally:
            if getattr(self, "http", None) is not None:
                await self.http.close()
            code = stop_engine(self.engine.proc, log)
            result["engine_exit"] = code
            errors = self.engine.errors()
            result["engine_log_errors"] = len(errors)
            result["engine_log_errors_first"] = [e[:300] for e in errors[:5]]
            result["engine_log_warnings"] = self.engine.warnings()
            if getattr(self, "observer", None) is not None:
                await self.observer.__aexit__(None, None, None)
            await fcm.stop()
            prov.terminate()
            prov.wait(10)
        return result

    def report(self, before: dict, after: dict, wall: float, cpu0, cpu1, ast0, ast1  # noqa: ANN001
               ) -> dict[str, Any]:
        per_kind: dict[str, Any] = {}
        for kind in self.args.mix:
            os_ = [o for o in self.outcomes if o.kind == kind]
            per_kind[kind] = {
                "attempted": len(os_), "completed": sum(1 for o in os_ if o.ok),
                "failed": sum(1 for o in os_ if not o.ok),
                "reasons": dict(Counter(o.reason for o in os_ if not o.ok).most_common(8)),
                "seconds": percentiles([o.seconds * 1000 for o in os_ if o.ok])}
            for k in ("p50", "p90", "p99", "max", "min"):
                v = per_kind[kind]["seconds"].get(k)
                per_kind[kind]["seconds"][k] = round(v / 1000, 2) if v is not None else None
        n_ok = sum(1 for o in self.outcomes if o.ok)
        during = [s for s in self.samples if s["phase"] == "during"]
        rss_b, rss_a = before["rss_kib"], after["rss_kib"]
        # a leak grows with the calls: RSS per 1 000 calls over the second half of the run
        half = [s for s in during if s["calls_done"] >= self.args.calls // 2]
        slope = None
        if len(half) >= 2 and half[-1]["calls_done"] > half[0]["calls_done"]:
            slope = round((half[-1]["rss_kib"] - half[0]["rss_kib"]) * 1000
                          / (half[-1]["calls_done"] - half[0]["calls_done"]), 1)
        back = {k: after["held"][k] == before["held"][k] for k in HELD_KINDS}
        return {
            "wall_s": round(wall, 1), "calls_per_s": round(len(self.outcomes) / wall, 2),
            "attempted": len(self.outcomes), "completed": n_ok,
            "failed": len(self.outcomes) - n_ok, "per_kind": per_kind,
            "transfer_statuses": {str(k): v for k, v in self.transfer_status.items()},
            "harness_notes": dict(self.harness),
            "engine_cpu_ms_per_call": round((cpu1 - cpu0) * 1000 / max(1, len(self.outcomes)),
                                            2) if cpu0 is not None else None,
            "asterisk_cpu_ms_per_call": round((ast1 - ast0) * 1000 / max(1, len(self.outcomes)),
                                              2) if ast0 is not None and ast1 else None,
            "before": before, "after": after,
            "rss_ratio_after_over_before": round(rss_a / rss_b, 3) if rss_b and rss_a else None,
            "rss_peak_kib": max([s["rss_kib"] or 0 for s in self.samples]),
            "rss_kib_per_1000_calls_second_half": slope,
            "held_peak": {k: max((s["held"][k] or 0) for s in self.samples)
                          for k in HELD_KINDS},
            "asterisk_channels_peak": max(s["asterisk_channels"] for s in self.samples),
            "returned_to_baseline": {**back, "asterisk_channels":
                                     after["asterisk_channels"] == before["asterisk_channels"]},
            "samples": [{k: s[k] for k in ("t", "calls_done", "rss_kib", "held",
                                           "asterisk_channels")} for s in during],
        }


def _free_tcp_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_mix(text: str) -> dict[str, float]:
    mix = dict(DEFAULT_MIX)
    if text:
        given = {}
        for part in text.split(","):
            k, _, v = part.partition("=")
            if k.strip() not in DEFAULT_MIX:
                raise argparse.ArgumentTypeError(f"unknown kind {k!r} (kinds: "
                                                 f"{', '.join(DEFAULT_MIX)})")
            given[k.strip()] = float(v)
        mix = {k: given.get(k, 0.0) for k in DEFAULT_MIX} if given else mix
    return {k: v for k, v in mix.items() if v > 0}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=10_000)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--mix", type=parse_mix, default=parse_mix(""),
                   help="kind=weight,... (kinds not named get 0); default "
                   + ",".join(f"{k}={v}" for k, v in DEFAULT_MIX.items()))
    p.add_argument("--quick", action="store_true", help="300 calls, 500 devices")
    p.add_argument("--warmup", type=int, default=2, help="calls of each kind before 'before'")
    p.add_argument("--devices", type=int, default=5000, help="release fan-out devices")
    p.add_argument("--sms-chunk", type=int, default=200, help="campaign rows every 30 s")
    p.add_argument("--sample-seconds", type=float, default=15.0)
    p.add_argument("--settle", type=float, default=10.0)
    p.add_argument("--quiet-timeout", type=float, default=60.0)
    p.add_argument("--call-timeout", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--keep", type=Path, help="keep the engine log and work files here")
    args = p.parse_args()
    if args.quick:
        args.calls, args.devices = 300, 500
    sandbox("up", timeout=1800)
    env = sandbox_env(("IVR_ARI_URL", "IVR_ARI_USERNAME", "IVR_ARI_PASSWORD",
                       "IVR_AMI_PASSWORD", "IVR_SIP_PASSWORD"))
    if APP_NAME in connected_apps():
        raise SystemExit(f"ARI application {APP_NAME} is already connected (another bench?)")
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="soak-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        out = asyncio.run(Soak(args, env, tmp).run())
    except Exception as exc:  # noqa: BLE001
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}", "work_dir": str(tmp)}))
        return 1
    out["work_dir"] = str(tmp)
    print(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
