#!/usr/bin/env python3
"""Load benchmark: the engine's 3-level IVR (ARI) against the same tree in native dialplan.

    python bench/ivr_load.py [--calls 100] [--rounds 3] [--timeout 60]

Prints ONE JSON object on stdout (progress goes to stderr). See bench/README.md for what
each figure means and the caveats. Needs root (the sandbox Asterisk runs in a chroot) and
talks to 127.0.0.1 only.

What it does:
1. ``scripts/asterisk-sandbox up`` (idempotent), reads the ARI credentials from
   ``scripts/asterisk-sandbox env``, starts ``python -m ivr_engine.cli run -c bench/tree.yaml``
   (ARI application ``ivr-bench``, a temporary SQLite database, logs in a temporary file) and
   waits until the engine logs that it is connected and subscribed.
2. A scripted caller (its own ARI application, one websocket, events routed per call) places
   N calls at once per round, each a Local channel pair ``a``/``b``: ``a`` stays in the
   caller's application, ``b`` runs the dialplan (``Local/+15550005000@bench-ari`` enters the
   engine, ``Local/15550005000@bench-native`` the native Background/WaitExten tree, whose
   ``_X.`` pattern does not match a leading ``+``). The pair is created as ulaw and the
   caller sends silence once answered, like a trunk (see README). Each
   call presses 1, 2, 3 - each key as soon as that level's prompt STARTS (ARI: the
   PlaybackStarted on ``b``; native: the ChannelVarset BENCH_LEVEL=N on ``b``), i.e. with
   barge-in in both modes, and is *completed* when ``b`` reaches Queue (ChannelDialplan
   dialplan_app=Queue); then it is hung up.
3. Rounds alternate ARI / native; per round, completed calls / wall time = calls per second.
4. Latency: ChannelDtmfReceived on ``b`` -> next PlaybackStarted on ``b`` (ARI) or next
   ChannelDialplan Background on ``b`` (native), from Asterisk's event timestamps and from
   the caller's local receive times.
5. CPU from /proc/PID/stat: the engine over the ARI rounds, Asterisk over each mode's rounds,
   and the driver itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from common import (  # noqa: E402
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

log = make_log("bench")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ivr_engine.ari import AriClient, AriError  # noqa: E402
from ivr_engine.testing.caller import (  # noqa: E402
    CallerPool,
    LocalCall,
    PressOnLevel,
    prompt_levels,
    variable_levels,
)

SANDBOX = REPO / "scripts" / "asterisk-sandbox"
TREE = REPO / "bench" / "tree.yaml"
ENGINE_APP = "ivr-bench"
# The native context's pattern is _X. (dialplan/bench_native.conf), which does not match a
# leading "+": the native tree ignores the DID, so it is dialled without the "+".
ENTRIES = {"ari": ("+15550005000", "bench-ari"), "native": ("15550005000", "bench-native")}
KEYS = ("1", "2", "3")
# the engine publishes IVR_PATH only when a menu waits for a key (never, with barge-in): the
# ARI side tells the level from the prompt that starts (bench/tree.yaml)
ARI_LEVEL_OF_PROMPT = {"sound:basic-pbx-ivr-main": 1, "sound:please-try-again": 2,
                       "sound:hello-world": 3}
DTMF_MS = 100
SANDBOX_UP_TIMEOUT = 1800      # a first `up` builds a Debian chroot (debootstrap)
ENGINE_READY_TIMEOUT = 30
SANDBOX_ROOT = Path(os.environ.get("IVR_SANDBOX_ROOT", "/var/cache/ivr-engine/asterisk-sid"))
ASTERISK_LOG = SANDBOX_ROOT / "var/log/asterisk/messages"
ARI_PORT_HEX = ":1F98"         # 8088 in /proc/net/tcp
DRAIN_TIMEOUT = 30             # after a round, wait this long for our channels to go away




# ------------------------------------------------------------------------------ helpers




def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime




def ari_connections() -> int:
    """Established TCP connections to 127.0.0.1:8088 (each is one Asterisk HTTP session)."""
    n = 0
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1].endswith(ARI_PORT_HEX) and parts[3] == "01":
                    n += 1
    except OSError:
        return -1
    return n


def socket_fds(pid: int | None) -> int:
    if pid is None:
        return -1
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return -1
    n = 0
    for name in names:
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


def asterisk_log_size() -> int:
    try:
        return ASTERISK_LOG.stat().st_size
    except OSError:
        return -1


def asterisk_log_since(offset: int) -> str:
    if offset < 0:
        return ""
    try:
        with open(ASTERISK_LOG, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""








def http_status(url: str, user: str, password: str, timeout: float = 2.0) -> int:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    req = urllib.request.Request(url, headers={"Authorization": "Basic " + auth})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return 0


# ------------------------------------------------------------------------------ engine


class EngineProcess:
    """The engine under test, as a subprocess with its own temp dir (DB + log)."""

    def __init__(self, env: dict[str, str], tmp: Path, profile: str, transport: str = "auto"):
        self.env = env
        self.transport = transport  # engine.ari.transport (bench/tree.yaml reads the env)
        self.tmp = tmp
        self.profile = profile
        self.log_path = tmp / "engine.log"
        self.proc: subprocess.Popen | None = None
        self._log = None
        self.spy: subprocess.Popen | None = None
        self._since = 0  # log offset of the current start

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        env = dict(os.environ)
        env.update({k: v for k, v in self.env.items() if k.startswith("IVR_")})
        env["IVR_DATABASE_URL"] = f"sqlite:///{self.tmp / 'bench.db'}"
        env["IVR_ARI_TRANSPORT"] = self.transport
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        cmd = [sys.executable]
        if self.profile == "cprofile":
            cmd += ["-m", "cProfile", "-o", str(self.tmp / "engine.prof")]
        cmd += ["-m", "ivr_engine.cli", "run", "-c", str(TREE)]
        subprocess.run([sys.executable, "-m", "ivr_engine.cli", "db", "upgrade", "-c", str(TREE)],
                       cwd=REPO, env=env, stdin=subprocess.DEVNULL, check=True,
                       stdout=subprocess.DEVNULL)  # the engine refuses a database not upgraded
        self._since = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log = open(self.log_path, "ab")  # one log across restarts (--transports)
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_ready(self, url: str, user: str, password: str) -> None:
        deadline = time.monotonic() + ENGINE_READY_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited ({self.proc.returncode}) during start-up:\n"
                                   + self.tail())
            # the engine logs this once both its applications are up (GET /applications/<app>
            # answers 200 for a stale application too)
            with open(self.log_path, "rb") as f:
                f.seek(self._since)
                if b"engine ready" in f.read():
                    return
            time.sleep(0.1)
        raise RuntimeError("engine did not register ARI app ivr-bench within "
                           f"{ENGINE_READY_TIMEOUT} s:\n{self.tail()}")

    def start_py_spy(self, out: Path) -> bool:
        exe = shutil.which("py-spy")
        if exe is None or self.pid is None:
            log("py-spy not found; no sampling profile")
            return False
        self.spy = subprocess.Popen([exe, "record", "--pid", str(self.pid), "--rate", "250",
                                     "--format", "raw", "--nonblocking", "-o", str(out)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        return True

    def stop_py_spy(self) -> None:
        if self.spy is not None and self.spy.poll() is None:
            self.spy.send_signal(signal.SIGINT)
            try:
                self.spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.spy.kill()
                self.spy.wait()
        self.spy = None

    def tail(self, n: int = 30) -> str:
        return tail_file(self.log_path, n)

    def restart(self, transport: str, url: str, user: str, password: str) -> None:
        code = self.stop()
        if code not in (0, None):
            raise RuntimeError(f"engine exited {code} on restart:\n{self.tail()}")
        self.transport = transport
        self.start()
        self.wait_ready(url, user, password)
        log(f"engine restarted with engine.ari.transport={transport} (pid {self.pid})")

    def stop(self) -> int | None:
        self.stop_py_spy()
        code = stop_engine(self.proc, log)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code


# ------------------------------------------------------------------------------ calls


@dataclass
class CallResult:
    mode: str
    completed: bool = False
    reason: str = ""
    duration_ms: float = 0.0
    keys_sent: int = 0
    # (asterisk-ts ms or None, local ms) per measured key
    latencies: list[tuple[float | None, float]] = field(default_factory=list)
    handoff: list[tuple[float | None, float]] = field(default_factory=list)
    from_send: list[float] = field(default_factory=list)   # local ms, send_dtmf -> next level
    # ARI only, Asterisk timestamps (ms): DTMF -> PlaybackFinished (the engine stopped the
    # prompt) and -> PlaybackStarted (next prompt)
    steps: list[tuple[float, float]] = field(default_factory=list)
    dtmf_events: int = 0
    first_prompt_ms: float | None = None   # local: before POST /channels/create -> level 1


def caller_pool(url: str, user: str, password: str, http_limit: int) -> CallerPool:
    """The scripted caller (ivr_engine/testing/caller.py): its own ARI application, one
    websocket, events routed per call. Its HTTP pool must leave room for the engine under
    Asterisk's http.conf ``sessionlimit`` (100 by default, shared by every client), or
    Asterisk drops connections ('HTTP session count exceeded 100 sessions')."""
    return CallerPool(url, user, password, f"ivr-bench-caller-{uuid.uuid4().hex[:8]}",
                      request_timeout=20.0, max_connections=http_limit)


async def run_call(pool: CallerPool, mode: str, n: int, timeout: float,
                   args: argparse.Namespace) -> CallResult:
    """One call of ``mode``: keys 1, 2, 3, each as its level's prompt starts (barge-in)."""
    if mode == "ari":
        policy = PressOnLevel(KEYS, prompt_levels(ARI_LEVEL_OF_PROMPT))
    else:  # a native level replays after a timeout: that re-sets BENCH_LEVEL, no new key
        policy = PressOnLevel(KEYS, variable_levels("BENCH_LEVEL"), repeat=False)
    did, context = ENTRIES[mode]
    call = await pool.place(did, context=context, policy=policy, timeout=timeout,
                            formats=args.caller_format or None,
                            silence=args.caller_audio == "silence",
                            channel_id=f"{args.prefix}{mode}-{n}", dtmf_ms=DTMF_MS)
    return measure(call, mode)


def measure(call: LocalCall, mode: str) -> CallResult:
    """The figures of one call, from its record's timeline (Asterisk's timestamps and the
    caller's receive times)."""
    res = CallResult(mode, duration_ms=call.duration_ms)
    level = 0                          # ARI: level of the prompt; native: BENCH_LEVEL
    dtmf: tuple[float | None, float] | None = None   # pending ChannelDtmfReceived on b
    sent: tuple[float, int] | None = None            # last key sent: local time, level
    stop_ts: float | None = None                     # ARI: PlaybackFinished after DTMF
    for t, ts, kind, what in call.record.timeline:
        new_level: int | None = None
        if kind == "key":
            res.dtmf_events += 1
            dtmf = (ts, t)
        elif kind == "send":
            res.keys_sent += 1
            sent = (t, level)
        elif kind == "prompt-end":
            if dtmf is not None and stop_ts is None:
                stop_ts = ts
        elif kind == "prompt" and mode == "ari":
            new_level = ARI_LEVEL_OF_PROMPT.get(what, level)
            if dtmf is not None:
                _measure(res.latencies, dtmf, ts, t)
                if dtmf[0] is not None and stop_ts is not None and ts is not None:
                    res.steps.append(((stop_ts - dtmf[0]) * 1000, (ts - stop_ts) * 1000))
                dtmf = stop_ts = None
        elif kind == "var" and mode == "native" and what.startswith("BENCH_LEVEL="):
            try:
                new_level = int(what.split("=", 1)[1])
            except ValueError:
                pass
        elif kind == "app":
            app = what.split("(", 1)[0].lower()
            if app == "background" and mode == "native":  # reported as BackGround
                if dtmf is not None:
                    _measure(res.latencies, dtmf, ts, t)
                    dtmf = None
            elif app == "queue":
                if dtmf is not None:
                    _measure(res.handoff, dtmf, ts, t)
                res.completed = level == len(KEYS)
                res.reason = "" if res.completed else f"queue at level {level}"
                return res
        if new_level is not None:
            level = new_level
            if sent is not None and level > sent[1]:
                # next level entered (native: its Background follows in the same ms)
                res.from_send.append((t - sent[0]) * 1000)
                sent = None
            if level == 1 and res.first_prompt_ms is None:
                res.first_prompt_ms = (t - call.created_at) * 1000
    exc = call.error
    if call.outcome == "timeout":
        res.reason = f"timeout at level {level}"
    elif isinstance(exc, AriError):
        res.reason = (f"ARI {exc.method} .../{exc.path.rsplit('/', 1)[-1].split('?')[0]} "
                      f"{exc.status} at level {level}: {exc.message}")
    elif exc is not None:
        res.reason = f"{type(exc).__name__}: {exc}"
    elif call.outcome == "caller-ended":
        res.reason = "caller channel ended"
    else:
        res.reason = f"hung up at level {level}" if call.outcome == "hangup" \
            else f"{call.outcome} at level {level}"
    return res


async def drain(pool: CallerPool, prefix: str) -> int:
    """Wait until none of our channels is left (hang up stragglers); returns leftovers."""
    async def ours() -> list[str]:
        return [c["id"] for c in await pool.ari.list_channels()
                if str(c.get("id", "")).startswith(prefix)]

    start = time.monotonic()
    deadline = start + DRAIN_TIMEOUT
    left: list[str] = []
    hung_up = False
    while time.monotonic() < deadline:
        try:
            left = await ours()
        except AriError:
            await asyncio.sleep(0.5)
            continue
        if not left:
            return 0
        if not hung_up and time.monotonic() > start + 3:  # give normal hang-ups 3 s
            for cid in left:
                try:
                    await pool.ari.hangup(cid)
                except AriError:
                    pass
            hung_up = True
        await asyncio.sleep(0.2)
    return len(left)


def _measure(out: list, dtmf: tuple[float | None, float], ast_ev: float | None,
             t: float) -> None:
    ast_dtmf, local_dtmf = dtmf
    ast_ms = (ast_ev - ast_dtmf) * 1000 if ast_dtmf is not None and ast_ev is not None else None
    out.append((ast_ms, (t - local_dtmf) * 1000))


# ------------------------------------------------------------------------------ rounds


@dataclass
class ModeStats:
    completed: int = 0
    failed: int = 0
    wall: float = 0.0
    rounds: list[dict] = field(default_factory=list)
    reasons: collections.Counter = field(default_factory=collections.Counter)
    lat_ast: list[float] = field(default_factory=list)
    lat_local: list[float] = field(default_factory=list)
    hand_ast: list[float] = field(default_factory=list)
    hand_local: list[float] = field(default_factory=list)
    from_send: list[float] = field(default_factory=list)
    steps: list[tuple[float, float]] = field(default_factory=list)
    call_ms: list[float] = field(default_factory=list)
    first_prompt_ms: list[float] = field(default_factory=list)
    dtmf_events: int = 0
    keys_sent: int = 0
    engine_cpu: float = 0.0
    asterisk_cpu: float = 0.0
    driver_cpu: float = 0.0
    leftover_channels: int = 0


async def run_round(caller: CallerPool, args: argparse.Namespace, mode: str, calls: int,
                    timeout: float, st: ModeStats, engine_pid: int | None,
                    ast_pid: int | None) -> None:
    cpu0 = (proc_cpu(engine_pid), proc_cpu(ast_pid), self_cpu())
    peaks = {"ari_connections": 0, "engine_sockets": 0}
    sampling = True

    async def sample() -> None:
        while sampling:
            peaks["ari_connections"] = max(peaks["ari_connections"], ari_connections())
            peaks["engine_sockets"] = max(peaks["engine_sockets"], socket_fds(engine_pid))
            await asyncio.sleep(0.05)

    start = time.perf_counter()
    tasks = []
    sampler = asyncio.create_task(sample())
    try:
        async with asyncio.timeout(timeout + 60):      # belt and braces: calls time out first
            async with asyncio.TaskGroup() as tg:
                for i in range(calls):
                    tasks.append(tg.create_task(run_call(
                        caller, mode, len(st.rounds) * calls + i, timeout, args)))
    finally:
        sampling = False
        await sampler
    wall = time.perf_counter() - start
    leftover = await drain(caller, args.prefix)
    cpu1 = (proc_cpu(engine_pid), proc_cpu(ast_pid), self_cpu())
    results = [t.result() for t in tasks]
    done = sum(r.completed for r in results)
    st.completed += done
    st.failed += calls - done
    st.wall += wall
    st.leftover_channels += leftover
    for r in results:
        if not r.completed:
            st.reasons[r.reason or "unknown"] += 1
        else:
            st.call_ms.append(r.duration_ms)
        st.dtmf_events += r.dtmf_events
        st.keys_sent += r.keys_sent
        for a_ms, l_ms in r.latencies:
            if a_ms is not None:
                st.lat_ast.append(a_ms)
            st.lat_local.append(l_ms)
        st.from_send.extend(r.from_send)
        if r.first_prompt_ms is not None:
            st.first_prompt_ms.append(r.first_prompt_ms)
        st.steps.extend(r.steps)
        for a_ms, l_ms in r.handoff:
            if a_ms is not None:
                st.hand_ast.append(a_ms)
            st.hand_local.append(l_ms)
    if cpu0[0] is not None and cpu1[0] is not None:
        st.engine_cpu += cpu1[0] - cpu0[0]
    if cpu0[1] is not None and cpu1[1] is not None:
        st.asterisk_cpu += cpu1[1] - cpu0[1]
    st.driver_cpu += cpu1[2] - cpu0[2]
    cps = done / wall if wall > 0 else 0.0
    rnd = {"completed": done, "failed": calls - done, "wall_s": round(wall, 3),
           "cps": round(cps, 2), "peak_ari_http_connections": peaks["ari_connections"]}
    if engine_pid is not None:
        rnd["peak_engine_sockets"] = peaks["engine_sockets"]
    st.rounds.append(rnd)
    log(f"{mode:6s} round {len(st.rounds)}: {done}/{calls} completed in {wall:.2f} s "
        f"= {cps:.1f} calls/s" + (f", {leftover} channels left over" if leftover else ""))


def ms_per_call(cpu_s: float, calls: int) -> float | None:
    return round(cpu_s * 1000 / calls, 2) if calls else None


def mode_json(st: ModeStats, mode: str, native_dtmf_fallback: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "completed": st.completed,
        "failed": st.failed,
        "cps": round(st.completed / st.wall, 2) if st.wall else 0.0,
        "per_round": st.rounds,
        "latency_ms": {
            "what": ("ChannelDtmfReceived(b) -> next PlaybackStarted(b)" if mode == "ari" else
                     "ChannelDtmfReceived(b) -> next ChannelDialplan Background(b)"),
            "asterisk_ts": percentiles(st.lat_ast),
            "local": percentiles(st.lat_local),
            "from_send_local": percentiles(st.from_send),
        },
        "handoff_latency_ms": {
            "what": "ChannelDtmfReceived(b) of key 3 -> ChannelDialplan Queue(b)",
            "asterisk_ts": percentiles(st.hand_ast),
            "local": percentiles(st.hand_local),
        },
        "call_duration_ms": percentiles(st.call_ms),
        "create_to_first_prompt_ms": percentiles(st.first_prompt_ms),
        "dtmf_events_received": st.dtmf_events,
        "keys_sent": st.keys_sent,
        "asterisk_cpu_ms_per_call": ms_per_call(st.asterisk_cpu, st.completed),
        "driver_cpu_ms_per_call": ms_per_call(st.driver_cpu, st.completed),
    }
    if mode == "ari":
        out["engine_cpu_ms_per_call"] = ms_per_call(st.engine_cpu, st.completed)
        out["latency_breakdown_ms"] = {
            "what": "Asterisk timestamps of one key: DTMF -> PlaybackFinished (engine "
                    "stopped the prompt) -> PlaybackStarted (next prompt)",
            "dtmf_to_stop": percentiles([x[0] for x in st.steps]),
            "stop_to_started": percentiles([x[1] for x in st.steps]),
        }
    if st.reasons:
        out["failures"] = dict(st.reasons.most_common())
    if st.leftover_channels:
        out["leftover_channels"] = st.leftover_channels
    if native_dtmf_fallback:
        out["latency_ms"]["note"] = ("ChannelDtmfReceived not delivered for the non-Stasis "
                                     "channel: measured from the DTMF send (local only)")
    return out


async def bench(args: argparse.Namespace, env: dict[str, str], engine: EngineProcess,
                ast_pid: int | None) -> dict[str, Any]:
    url, user, pw = env["IVR_ARI_URL"], env["IVR_ARI_USERNAME"], env["IVR_ARI_PASSWORD"]
    transports = args.transports
    stats = {**{f"ari:{t}": ModeStats() for t in transports}, "native": ModeStats()}
    async with caller_pool(url, user, pw, args.caller_http_limit) as caller:
        info = await caller.ari.asterisk_info()
        version = (info.get("system") or {}).get("version")
        reload0 = (info.get("status") or {}).get("last_reload_time")
        log_offset = asterisk_log_size()
        # Asterisk idle load (other users of the shared sandbox show up here).
        c0, t0 = proc_cpu(ast_pid), time.perf_counter()
        await asyncio.sleep(2.0)
        c1, t1 = proc_cpu(ast_pid), time.perf_counter()
        idle_pct = round((c1 - c0) / (t1 - t0) * 100, 1) if c0 is not None and c1 is not None \
            else None
        if args.warmup:
            log(f"warm-up: {args.warmup} calls per mode (not counted)")
            for mode in ("ari", "native"):
                await run_round(caller, args, mode, args.warmup, args.timeout, ModeStats(),
                                None, None)
        spying = False
        for r in range(args.rounds):
            # ari and native alternate; with several transports the engine restarts on
            # each change (ari:websocket, native, ari:http, then the other way round)
            order = [f"ari:{t}" for t in transports]
            order = order[:1] + ["native"] + order[1:]
            for key in (order if r % 2 == 0 else order[::-1]):
                mode = key.split(":")[0]
                if mode == "ari" and engine.transport != key[4:]:
                    await asyncio.to_thread(engine.restart, key[4:], url, user, pw)
                    spying = False
                if mode == "ari" and args.profile == "py-spy" and not spying:
                    spying = engine.start_py_spy(engine.tmp / f"engine.{engine.transport}"
                                                              ".pyspy.txt")
                await run_round(caller, args, mode, args.calls, args.timeout, stats[key],
                                engine.pid if mode == "ari" else None, ast_pid)
                if (engine.proc is not None and engine.proc.poll() is not None):
                    raise RuntimeError(f"engine died during the run:\n{engine.tail()}")
        if spying:
            engine.stop_py_spy()
        events_seen = caller.events_seen
        info = await caller.ari.asterisk_info()
        reload1 = (info.get("status") or {}).get("last_reload_time")
    ast_log = asterisk_log_since(log_offset)
    nat = stats["native"]
    native_fallback = nat.dtmf_events == 0 and nat.keys_sent > 0
    result: dict[str, Any] = {
        "calls_per_round": args.calls,
        "rounds": args.rounds,
        "caller_audio": args.caller_audio,
        "caller_format": args.caller_format or "ari-default(slin192)",
        "ari_transport": transports[0],
        "ari": mode_json(stats[f"ari:{transports[0]}"], "ari"),
        "native": mode_json(nat, "native", native_fallback),
    }
    for t in transports[1:]:  # the same figures for the engine on the other transports
        other = mode_json(stats[f"ari:{t}"], "ari")
        n_cps = result["native"]["cps"]
        other["ratio_cps_over_native"] = round(other["cps"] / n_cps, 3) if n_cps else None
        result[f"ari_{t}"] = other
    a_cps, n_cps = result["ari"]["cps"], result["native"]["cps"]
    result["ratio_cps_ari_over_native"] = round(a_cps / n_cps, 3) if n_cps else None
    a_ast, n_ast = result["ari"]["asterisk_cpu_ms_per_call"], \
        result["native"]["asterisk_cpu_ms_per_call"]
    result["ratio_asterisk_cpu_ari_over_native"] = round(a_ast / n_ast, 2) \
        if a_ast and n_ast else None
    p99 = result["ari"]["latency_ms"]["asterisk_ts"]["p99"]
    eng = result["ari"].get("engine_cpu_ms_per_call")
    result["targets"] = {
        "ratio>=0.9": bool(result["ratio_cps_ari_over_native"] is not None
                           and result["ratio_cps_ari_over_native"] >= 0.9),
        "p99<=50ms": bool(p99 is not None and p99 <= 50),
        "engine_cpu<=3ms": bool(eng is not None and eng <= 3),
    }
    result["native_dtmf_event_delivered"] = not native_fallback
    result["asterisk_reloaded_during_run"] = reload0 != reload1
    result["asterisk_http_session_limit_hits"] = ast_log.count("HTTP session count exceeded")
    result["asterisk_idle_cpu_pct_before"] = idle_pct
    result["caller_events_received"] = events_seen
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "asterisk": version,
        "kernel": platform.release(),
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=100, help="concurrent calls per round")
    p.add_argument("--rounds", type=int, default=3, help="rounds per mode (alternated)")
    p.add_argument("--timeout", type=float, default=60.0, help="per-call timeout, seconds")
    p.add_argument("--warmup", type=int, default=5,
                   help="uncounted calls per mode before the rounds (0: none)")
    p.add_argument("--profile", choices=("none", "cprofile", "py-spy"), default="none",
                   help="profile the engine (cProfile inflates its CPU figures)")
    p.add_argument("--caller-audio", choices=("silence", "none"), default="silence",
                   help="silence: the caller sends silence once answered, like a trunk "
                        "(none: a silent Local pair; native Answer() then waits 500 ms)")
    p.add_argument("--caller-format", default="ulaw",
                   help="audio format of the caller's Local pair, like a trunk's codec "
                        "('' = ARI's default: every format, i.e. slin192 + resampling)")
    p.add_argument("--caller-http-limit", type=int, default=16,
                   help="max HTTP connections of the scripted caller (Asterisk's default "
                        "http.conf sessionlimit is 100 for everyone together)")
    p.add_argument("--transports", default="websocket,http",
                   help="engine.ari.transport values to measure, comma-separated; the first "
                        "is reported as 'ari', the others as 'ari_<transport>' (same run)")
    p.add_argument("--keep", metavar="DIR",
                   help="copy the engine log (and profile) to DIR instead of deleting them")
    args = p.parse_args()
    if args.calls < 1 or args.rounds < 1 or args.timeout <= 0:
        p.error("--calls, --rounds and --timeout must be positive")
    args.transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    if not args.transports or set(args.transports) - {"auto", "http", "websocket"} \
            or len(set(args.transports)) != len(args.transports):
        p.error("--transports: distinct values among auto, http, websocket")

    log("scripts/asterisk-sandbox up")
    sandbox("up", timeout=SANDBOX_UP_TIMEOUT)
    env = sandbox_env()
    url, user, pw = env["IVR_ARI_URL"], env["IVR_ARI_USERNAME"], env["IVR_ARI_PASSWORD"]
    if not url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        raise SystemExit(f"refusing to load a non-loopback ARI ({url})")
    if ENGINE_APP in connected_apps():
        raise SystemExit(f"ARI app {ENGINE_APP} is already registered (another benchmark "
                         "running?); not taking it over")
    ast_pid = asterisk_pid()
    if ast_pid is None:
        log("warning: sandbox Asterisk pid not readable; no Asterisk CPU figures")

    args.prefix = f"bench-{uuid.uuid4().hex[:6]}-"    # ids of all our channels
    tmp = Path(tempfile.mkdtemp(prefix="ivr-bench-"))
    engine = EngineProcess(env, tmp, args.profile, args.transports[0])
    result: dict[str, Any] | None = None
    code = 1
    try:
        engine.start()
        engine.wait_ready(url, user, pw)
        log(f"engine up (pid {engine.pid}), Asterisk pid {ast_pid}; "
            f"{args.rounds} rounds x {args.calls} calls per mode")
        result = asyncio.run(asyncio.wait_for(
            bench(args, env, engine, ast_pid),
            timeout=(args.rounds * 2 + 2) * (args.timeout + 60 + DRAIN_TIMEOUT) + 60))
        code = 0
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001
        log(f"benchmark failed: {type(exc).__name__}: {exc}")
        result = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        rc = engine.stop()
        if result is not None:
            result["engine_exit_code"] = rc
            errors = [ln for ln in engine.tail(100000).splitlines()
                      if " ERROR " in ln or "Traceback" in ln]
            result["engine_log_errors"] = len(errors)
            if errors:
                log("engine log errors, first: " + errors[0])
        if args.profile == "cprofile" and (tmp / "engine.prof").exists():
            import pstats
            import io
            buf = io.StringIO()
            pstats.Stats(str(tmp / "engine.prof"), stream=buf).sort_stats("tottime") \
                .print_stats(25)
            print(buf.getvalue(), file=sys.stderr)
        if args.keep:
            keep = Path(args.keep)
            keep.mkdir(parents=True, exist_ok=True)
            for f in tmp.iterdir():
                if f.suffix != ".db":
                    shutil.copy2(f, keep / f.name)
            log(f"engine log/profile kept in {keep}")
        shutil.rmtree(tmp, ignore_errors=True)
        # nothing of ours may be left in Asterisk
        try:
            left = asyncio.run(_leftovers(url, user, pw, args.prefix))
            if result is not None:
                result["channels_left_after_run"] = left
        except Exception as exc:  # noqa: BLE001
            log(f"could not list channels at the end: {exc}")
    print(json.dumps(result, indent=2))
    return code


async def _leftovers(url: str, user: str, pw: str, prefix: str) -> int:
    async with AriClient(url, user, pw, "ivr-bench-check") as ari:
        chans = [c["id"] for c in await ari.list_channels()
                 if str(c.get("id", "")).startswith(prefix)]
        for cid in chans:
            await ari.hangup(cid)
        return len(chans)


if __name__ == "__main__":
    sys.exit(main())
