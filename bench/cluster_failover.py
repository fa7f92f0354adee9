"""A node (or its engine) SIGKILLed under load behind Kamailio, vs the same load with no kill,
same run.

The cluster of ``scripts/cluster`` (started here when it is not running, stopped again at the
end): Kamailio on 127.0.0.20 in front of node a (127.0.0.2) and node b (127.0.0.3), one
engine per node on one throw-away PostgreSQL (the setup of bench/cluster_load.py). SIPp
callers on the ``carrier`` trunk arrive at Kamailio at a steady rate and press 1, 2, 3 to
``Queue(support)``, spread round-robin over both nodes. Two phases, one after the other:

* ``baseline`` — the same rate and number of calls, nothing killed;
* ``kill``     — node a's Asterisk gets SIGKILL ``--kill-at`` seconds after the first INVITE.
  Measured: the time until Kamailio's dispatcher shows node a inactive (``dispatcher.list``
  over JSON-RPC, tcp 5081, polled every 20 ms), the calls sent after the kill that failed
  (expected 0), the INVITE -> 200 OK of the calls whose INVITE left SIPp between the kill
  and "inactive" (they meet the dead node and are answered by node b after ``fr_timer``),
  and the callers that were on node a (lost with it).

Then node a is started again (``scripts/asterisk-sandbox --node a up``): the time until
Kamailio shows it active and until engine a is connected to it again, and ``--after`` calls
at the same rate checking both nodes take calls again.

``--kill engine``: engine a gets the SIGKILL instead, node a's Asterisk stays up (Kamailio's
OPTIONS probe still answered). Measured: what became of the callers engine a was driving
(node a's watchdog takes them to its fallback queue), and of the calls after the kill: how
many completed on node b, how many met node a's fallback instead, how many node a refused
503 before answering (``X-IVR-Next-Node``, dialplan ``ivr-engine-next-node``; Kamailio then
tries node b) and what that refusal cost (node a's channel created -> answered on node b,
Asterisk's timestamps). Then engine a is started again (same config) with ``--after`` calls
at once and again once it is connected. One JSON object on stdout.

    python bench/cluster_failover.py                       # 40 calls per phase, 4 per second
    python bench/cluster_failover.py --calls 120 --rate 8 --kill-at 6
    python bench/cluster_failover.py --kill engine
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import aiohttp
from cluster_load import (
    CLUSTER,
    DID,
    NODES,
    SANDBOX,
    STATE,
    node_env,
    pgcluster,
    start_engine,
    wait_ready,
)
from common import make_log, percentiles, stop_engine
from sipp_load import KEYS, failure

from ivr_engine.testing.sipp import SippCaller

log = make_log("failover-bench")
KAMAILIO = "127.0.0.20:5060"
RPC = "http://127.0.0.20:5081/RPC"
KAMAILIO_LOG = STATE / "cluster" / "kamailio.log"
FAILED_OVER = "node sip:127.0.0.2:5060 failed"
CONNECTED = "connected to ARI at"  # engine a's log line at each (re)connect
REFUSED = "node sip:127.0.0.2:5060 failed (503)"  # node a said no: its engine is away


async def dispatcher(http: aiohttp.ClientSession) -> dict[str, str]:
    """Kamailio's view of the nodes: {node name: flags} (``AP`` active, ``IP`` inactive)."""
    body = {"jsonrpc": "2.0", "method": "dispatcher.list", "id": 1}
    async with http.post(RPC, json=body) as r:
        data = await r.json(content_type=None)
    targets = data["result"]["RECORDS"][0]["SET"]["TARGETS"]
    return {t["DEST"]["ATTRS"]["DUID"]: t["DEST"]["FLAGS"] for t in targets}


async def until_flag(http: aiohttp.ClientSession, node: str, prefix: str,
                     timeout: float) -> float | None:
    """Monotonic time at which ``node``'s flags first start with ``prefix`` (None: not
    within ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (await dispatcher(http)).get(node, "").startswith(prefix):
                return time.monotonic()
        except (aiohttp.ClientError, KeyError, IndexError):
            pass
        await asyncio.sleep(0.02)
    return None


def node_of(call: Any) -> str:
    return call.channel.split("-")[1] if call.channel.startswith("node-") else "none"


def in_fallback(call: Any) -> bool:
    """The caller reached its node's dialplan fallback (no engine took it, or it lost its
    engine and the watchdog took it out)."""
    return call.variables.get("IVR_FALLBACK") == "1"


def refusal_ms(call: Any) -> float | None:
    """A call node a refused: its channel there created -> answered on node b (ms, the
    Asterisks' event timestamps, one clock)."""
    first = [r.timeline[0][1] for r in call.refused.values() if r.timeline and r.timeline[0][1]]
    up = next((ts for _, ts, kind, what in call.timeline if kind == "state" and what == "Up"
               and ts is not None), None)
    return round((up - min(first)) * 1000, 1) if first and up is not None else None


def rtt_rows(workdir: Path, seen: set[Path]) -> list[tuple[float, float]]:
    """(ms since SIPp started at the 200 OK, INVITE -> 200 OK ms) of the files not in ``seen``
    (SIPp's ``Date_ms`` is counted from its own start, CLOCK_MONOTONIC)."""
    rows = []
    for path in sorted(set(workdir.glob("*_rtt.csv")) - seen):
        seen.add(path)
        for line in path.read_text().splitlines()[1:]:
            if line.count(";") == 2:
                date, ms, _ = line.split(";")
                rows.append((float(date), float(ms)))
    return rows


async def phase(sipp: SippCaller, args: argparse.Namespace, http: aiohttp.ClientSession,
                seen: set[Path], kill: bool, calls: int,
                engines: dict[str, subprocess.Popen] | None = None) -> dict[str, Any]:
    kamailio_at = KAMAILIO_LOG.stat().st_size
    records, placing = sipp.launch(DID, KEYS, calls=calls, concurrency=calls, rate=args.rate,
                                   start_ms=1500, gap_ms=700, tail_ms=1500, settle=5.0,
                                   timeout=120, rtt=True)
    started = time.monotonic()  # SIPp's clock starts within a few ms of this
    running = asyncio.ensure_future(placing)
    out: dict[str, Any] = {"calls": calls, "rate_per_s": args.rate}
    killed = inactive = None
    on_a: list[Any] = []
    try:
        if kill:
            await asyncio.sleep(args.kill_at)
            if args.kill == "engine":
                pid = engines["a"].pid
            else:
                pid = int((STATE / "node-a" / "asterisk.pid").read_text())
            on_a = [c for c in records if node_of(c) == "a" and not c.ended]
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            log(f"{args.kill} a (pid {pid}) killed with {len(on_a)} caller(s) on node a")
            # engine killed: node a is marked only when it refuses a call (then probed back)
            inactive = await until_flag(http, "node-a", "I",
                                        5 if args.kill == "engine" else 15)
        run = await running
    finally:
        if not running.done():
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    rows = rtt_rows(sipp.workdir, seen)
    failed_over = KAMAILIO_LOG.read_text(errors="replace")[kamailio_at:].count(FAILED_OVER)
    reasons = Counter(r for r in map(failure, run.calls) if r is not None)
    out.update({
        "reached_queue": calls - sum(reasons.values()), "failed": sum(reasons.values()),
        "failures": dict(reasons), "sipp_exit": run.returncode,
        "sipp_seconds": round(run.seconds, 2),
        "nodes": dict(Counter(node_of(c) for c in run.calls)),
        "invite_to_200_ms": percentiles([ms for _, ms in rows]),
        "failed_over_by_kamailio": failed_over,
        "in_a_fallback": sum(1 for c in run.calls if in_fallback(c)),
        "refused_by_a_node_first": sum(1 for c in run.calls if c.refused)})
    if not kill:
        return out
    if args.kill == "engine":
        return out | engine_kill_figures(run, killed, started, on_a, inactive, kamailio_at)
    kill_ms = (killed - started) * 1000
    inactive_ms = (inactive - started) * 1000 if inactive else float("inf")
    window = [ms for date, ms in rows if kill_ms <= date - ms <= inactive_ms]
    at_kill = {id(c) for c in on_a}
    lost = [c for c in run.calls if node_of(c) == "a" and id(c) in at_kill]
    new = [c for c in run.calls if node_of(c) == "b" and c.timeline
           and c.timeline[0][0] > killed]
    new_failed = [c for c in new if failure(c) is not None]
    never = [c for c in run.calls if node_of(c) == "none"]
    out.update({
        "kill_at_s": round(killed - started, 2),
        "inactive_after_kill_s": round(inactive - killed, 3) if inactive else None,
        "callers_on_node_a_lost": len(lost),
        "lost_that_had_reached_the_queue_before": sum(1 for c in lost if failure(c) is None),
        "calls_on_node_a_ended_before_kill": sum(
            1 for c in run.calls if node_of(c) == "a" and id(c) not in at_kill),
        "calls_on_node_a_after_kill": sum(1 for c in run.calls if node_of(c) == "a"
                                          and c.timeline and c.timeline[0][0] > killed),
        "new_calls_after_kill": len(new), "new_calls_failed": len(new_failed),
        "new_calls_failures": dict(Counter(map(failure, new_failed))),
        "calls_that_never_reached_a_node": len(never),
        "invites_sent_between_kill_and_inactive": len(window),
        "invite_to_200_in_window_ms": sorted(round(ms, 1) for ms in window),
        # those Kamailio sent to the dead node first (its log counts them): the slowest
        "failed_over_invite_to_200_ms": percentiles(
            sorted(ms for _, ms in rows)[len(rows) - failed_over:] if failed_over else []),
        "invite_to_200_over_500ms": sorted(round(ms) for _, ms in rows if ms > 500)})
    return out


def engine_kill_figures(run: Any, killed: float, started: float, on_a: list[Any],
                        inactive: float | None, kamailio_at: int) -> dict[str, Any]:
    """The kill phase with engine a SIGKILLed (node a up): see the module doc."""
    at_kill = {id(c) for c in on_a}
    kept = [c for c in run.calls if id(c) in at_kill]
    new = [c for c in run.calls if id(c) not in at_kill and c.timeline
           and c.timeline[0][0] > killed]
    refused = [c for c in new if c.refused]
    costs = [ms for ms in map(refusal_ms, refused) if ms is not None]
    text = KAMAILIO_LOG.read_text(errors="replace")[kamailio_at:]
    return {
        "kill_at_s": round(killed - started, 2),
        "node_a_first_marked_inactive_after_kill_s": round(inactive - killed, 3)
        if inactive else None,
        "callers_on_node_a_at_kill": len(on_a),
        "of_them_in_node_a_fallback": sum(1 for c in kept if in_fallback(c)),
        "of_them_reached_the_queue_before": sum(1 for c in kept if failure(c) is None
                                                and not in_fallback(c)),
        "new_calls_after_kill": len(new),
        "new_calls_completed_on_node_b": sum(1 for c in new if node_of(c) == "b"
                                             and failure(c) is None and not in_fallback(c)),
        "new_calls_in_a_fallback": sum(1 for c in new if in_fallback(c)),
        "new_calls_in_a_fallback_by_node": dict(Counter(node_of(c) for c in new
                                                        if in_fallback(c))),
        "new_calls_failed": sum(1 for c in new if failure(c) is not None),
        "new_calls_failures": dict(Counter(r for r in map(failure, new) if r is not None)),
        "new_calls_refused_by_node_a_first": len(refused),
        "refused_503_in_kamailio_log": text.count(REFUSED),
        "refusal_node_a_channel_to_answer_on_b_ms": percentiles(costs) if costs else None,
        "calls_that_never_reached_a_node": sum(1 for c in run.calls if node_of(c) == "none")}


async def bench(args: argparse.Namespace, envs: dict[str, dict[str, str]], tmp: Path,
                engine_logs: dict[str, Path], engines: dict[str, subprocess.Popen],
                restart_engine: Callable[[], subprocess.Popen]) -> dict[str, Any]:
    boxes = [SimpleNamespace(ari_url=e["IVR_ARI_URL"], ari_username=e["IVR_ARI_USERNAME"],
                             ari_password=e["IVR_ARI_PASSWORD"]) for e in envs.values()]
    seen: set[Path] = set()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        for node in ("node-a", "node-b"):
            if await until_flag(http, node, "A", 15) is None:
                raise SystemExit(f"Kamailio does not show {node} active")
        async with SippCaller(boxes[0], tmp, target=KAMAILIO, nodes=boxes) as sipp:
            await sipp.call(DID, KEYS, calls=2, concurrency=2, tail_ms=500)  # warm-up
            rtt_rows(tmp, seen)
            baseline = await phase(sipp, args, http, seen, kill=False, calls=args.calls)
            log(f"baseline: {baseline['reached_queue']}/{args.calls} reached the queue, "
                f"INVITE->200 {baseline['invite_to_200_ms']}")
            killed = await phase(sipp, args, http, seen, kill=True, calls=args.calls,
                                 engines=engines)
            if args.kill == "engine":
                log(f"engine kill: {killed['new_calls_completed_on_node_b']}/"
                    f"{killed['new_calls_after_kill']} new calls completed on node b, "
                    f"{killed['new_calls_in_a_fallback']} in a fallback, "
                    f"{killed['new_calls_refused_by_node_a_first']} refused by node a first")
            else:
                log(f"kill: inactive after {killed['inactive_after_kill_s']} s, "
                    f"{killed['new_calls_failed']} new call(s) failed, "
                    f"{killed['callers_on_node_a_lost']} lost, failed over "
                    f"{killed['failed_over_invite_to_200_ms']}")
        if args.kill == "engine":  # engine a started again on the node that stayed up
            restart, after = await restart_engine_a(args, http, boxes, tmp, seen, engines,
                                                    restart_engine, engine_logs["a"])
        else:  # node a back: Kamailio's probe, then engine a's reconnect (its ARI backoff)
            restart, after = await restart_node_a(args, http, boxes, tmp, seen,
                                                  engine_logs["a"])
    b = baseline["invite_to_200_ms"]["p50"]
    k = killed.get("failed_over_invite_to_200_ms", {}).get("p50")
    return {"benchmark": "cluster_failover", "killed": args.kill, "keys": KEYS,
            "rate_per_s": args.rate,
            "calls_per_phase": args.calls, "load_average_at_start": args.load,
            "engine_ari_settings": args.ari,
            "baseline": baseline, "kill": killed, "restart": restart, **after,
            "failover_p50_minus_baseline_p50_ms": round(k - b, 1) if b is not None
            and k is not None else None}


async def engine_connected(log_path: Path, before: int, timeout: float) -> float | None:
    """Monotonic time at which the engine's log has one more "connected to ARI" line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log_path.read_text(errors="replace").count(CONNECTED) > before:
            return time.monotonic()
        await asyncio.sleep(0.05)
    return None


async def calls_after(args: argparse.Namespace, http: aiohttp.ClientSession,
                      boxes: list[Any], tmp: Path, seen: set[Path], back: asyncio.Future,
                      first: str, active_node: str | None = None
                      ) -> tuple[float | None, dict[str, Any]]:
    """``--after`` calls at once (named ``first``), then, once engine a is connected (``back``)
    and ``active_node`` is active in Kamailio again, as many more: (when engine a connected,
    the two phases' results)."""
    after: dict[str, Any] = {}
    try:
        if args.after:
            async with SippCaller(boxes[0], tmp, target=KAMAILIO, nodes=boxes) as sipp:
                after[first] = await phase(sipp, args, http, seen, kill=False,
                                           calls=args.after)
                await back
                if active_node is not None:
                    await until_flag(http, active_node, "A", 10)
                after["calls_once_engine_a_is_connected"] = await phase(
                    sipp, args, http, seen, kill=False, calls=args.after)
        engine_back = await back
    finally:
        back.cancel()
    for name, res in after.items():
        log(f"{name}: {res['reached_queue']}/{args.after}, nodes {res['nodes']} "
            f"{res['failures']}")
    return engine_back, after


async def restart_node_a(args: argparse.Namespace, http: aiohttp.ClientSession,
                         boxes: list[Any], tmp: Path, seen: set[Path],
                         engine_log: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Node a started again: when Kamailio and engine a see it; ``--after`` calls at once
    (while engine a may still wait out its reconnect backoff) and again once it is back."""
    connects = engine_log.read_text(errors="replace").count(CONNECTED)
    t0 = time.monotonic()
    subprocess.run([str(SANDBOX), "--node", "a", "up"], check=True, stdout=subprocess.DEVNULL)
    up = time.monotonic()
    active = await until_flag(http, "node-a", "A", 30)
    back = asyncio.ensure_future(engine_connected(engine_log, connects, 60))
    engine_back, after = await calls_after(args, http, boxes, tmp, seen, back,
                                           "calls_when_kamailio_shows_node_a_active")
    return {"node_a_up_command_s": round(up - t0, 2),
            "active_after_up_s": round(active - up, 3) if active else None,
            "engine_a_connected_after_up_s": round(engine_back - up, 3)
            if engine_back else None}, after


async def restart_engine_a(args: argparse.Namespace, http: aiohttp.ClientSession,
                           boxes: list[Any], tmp: Path, seen: set[Path],
                           engines: dict[str, subprocess.Popen],
                           restart_engine: Callable[[], subprocess.Popen],
                           engine_log: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Engine a started again (same config): ``--after`` calls at once (while it starts:
    node a refuses, none should meet its fallback) and again once it is connected."""
    engines["a"].wait(timeout=5)  # SIGKILLed in the kill phase
    t0 = time.monotonic()
    engines["a"] = restart_engine()  # a new log: its "connected" lines count from 0
    back = asyncio.ensure_future(engine_connected(engine_log, 0, 60))
    engine_back, after = await calls_after(args, http, boxes, tmp, seen, back,
                                           "calls_while_engine_a_starts", active_node="node-a")
    return {"engine_a_connected_after_start_s": round(engine_back - t0, 3)
            if engine_back else None}, after


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=40, help="calls per phase")
    p.add_argument("--rate", type=float, default=4.0, help="new calls per second")
    p.add_argument("--kill-at", type=float, default=4.0,
                   help="seconds after the kill phase's first INVITE")
    p.add_argument("--after", type=int, default=12, help="calls after node a is back (0: none)")
    p.add_argument("--kill", choices=("node", "engine"), default="node",
                   help="what gets SIGKILL: node a's Asterisk (default) or engine a")
    p.add_argument("--reconnect-max", type=float,
                   help="the engines' engine.nodes[].ari.reconnect_max_seconds (default 30)")
    p.add_argument("--keep", type=Path, help="keep the engine logs and SIPp files here")
    args = p.parse_args()
    args.ari = {} if args.reconnect_max is None else {
        "reconnect_max_seconds": args.reconnect_max}
    args.load = [round(x, 2) for x in os.getloadavg()]
    was_up = subprocess.run([str(CLUSTER), "status"], capture_output=True).returncode == 0
    subprocess.run([str(CLUSTER), "up"], check=True, stdout=subprocess.DEVNULL)
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="failover-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    pg_root = Path(tempfile.mkdtemp(prefix="failover-bench-pg-"))
    engines: dict[str, subprocess.Popen] = {}
    out: dict[str, Any] = {}
    try:
        db_url = pgcluster.start(pg_root)
        subprocess.run([sys.executable, "-m", "ivr_engine.cli", "db", "upgrade", "--url",
                        db_url], cwd=Path(__file__).resolve().parent.parent, check=True,
                       stdout=subprocess.DEVNULL)
        envs = {n: node_env(n) for n in NODES}
        for n in NODES:
            engines[n] = start_engine(n, db_url, envs[n], tmp, ari=args.ari)
        wait_ready(engines, tmp)
        out = asyncio.run(bench(args, envs, tmp, {n: tmp / f"engine-{n}.log" for n in NODES},
                                engines, lambda: start_engine("a", db_url, envs["a"], tmp,
                                                              ari=args.ari)))
    finally:
        codes = {n: stop_engine(e, log) for n, e in engines.items()}
        pgcluster.stop(pg_root)
        # node a is started again above; should the run have stopped before, start it here
        subprocess.run([str(SANDBOX), "--node", "a", "up"], check=False,
                       stdout=subprocess.DEVNULL)
        if not was_up:
            subprocess.run([str(CLUSTER), "down"], check=False, stdout=subprocess.DEVNULL)
    out["engine_exit"] = codes
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
