"""Real SIP callers under load: the engine (ARI) vs the same tree in native dialplan.

N concurrent PSTN calls (SIPp, Debian ``sip-tester``) arrive on the ``bench-carrier`` trunk
(pjsip.conf: identified by 127.0.0.11), the way a carrier delivers them: an INVITE with the
DID, RTP with RFC 4733 keys. Each caller presses 1, 2, 3 (barge-in, 700 ms apart) through the
3-level tree of bench/tree.yaml and should reach ``Queue(support)``. The DID with a ``+``
goes to the engine (``bench-ari``), without it to the native tree (``bench-native``); modes
alternate at each concurrency so drift is shared.

Per mode and concurrency: calls attempted, reached the queue, failed (with the reason), the
keys Asterisk decoded, and the time from each key (Asterisk's ChannelDtmfReceived timestamp)
to the next level's prompt starting (PlaybackStarted for the engine, Background for native),
plus engine and Asterisk CPU per call. One JSON object on stdout; progress on stderr.

    python bench/sipp_load.py                       # 20, 50 and 100 concurrent calls
    python bench/sipp_load.py --concurrency 20 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

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

from ivr_engine.testing.record import CallRecord  # noqa: E402
from ivr_engine.testing.sipp import SippCaller  # noqa: E402

log = make_log("sipp-bench")
TREE = REPO / "bench" / "tree.yaml"
DID = {"engine": "+15550005000", "native": "15550005000"}
KEYS = "123"
QUEUE = {"type": "queue", "target": "support"}
LEVEL_PROMPTS = ("basic-pbx-ivr-main", "please-try-again", "hello-world")


def start_engine(env: dict[str, str], tmp: Path) -> subprocess.Popen:
    run_env = {**os.environ, **{k: v for k, v in env.items() if k.startswith("IVR_")},
               "IVR_DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}"}
    subprocess.run([sys.executable, "-m", "ivr_engine.cli", "db", "upgrade", "-c", str(TREE)],
                   cwd=REPO, env=run_env, stdin=subprocess.DEVNULL, check=True,
                   stdout=subprocess.DEVNULL)  # the engine refuses a database not upgraded
    logf = open(tmp / "engine.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "ivr_engine.cli", "run", "-c", str(TREE)],
                            cwd=REPO, env=run_env, stdin=subprocess.DEVNULL, stdout=logf,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"engine exited {proc.returncode}:\n{tail_file(tmp / 'engine.log')}")
        if "engine ready" in (tmp / "engine.log").read_text(errors="replace"):
            return proc
        time.sleep(0.1)
    stop_engine(proc)
    raise SystemExit(f"engine not ready in 30 s:\n{tail_file(tmp / 'engine.log')}")


def failure(call: CallRecord) -> str | None:
    """Why a call did not do what a caller expects (None: it reached the queue)."""
    if not call.channel:
        return "never reached Asterisk"
    if call.destination == QUEUE:
        return None
    if call.keys != list(KEYS):
        return f"keys decoded {''.join(call.keys) or '-'}"
    if call.destination is not None:
        return f"ended at {call.destination['type']}:{call.destination['target']}"
    return "ended before the queue"


def key_latencies(call: CallRecord, mode: str) -> list[float]:
    """Per key: Asterisk's timestamp of the key -> of the next level's prompt start (ms)."""
    starts = []
    for _, ts, kind, what in call.timeline:
        if ts is None:
            continue
        if mode == "engine" and kind == "prompt" and what.endswith(LEVEL_PROMPTS[1:]):
            starts.append(ts)
        elif mode == "native" and kind == "app" and what.lower().startswith("background(") \
                and what[len("background("):-1] in LEVEL_PROMPTS[1:]:
            starts.append(ts)  # Asterisk names the application "BackGround"
        elif kind == "app" and what.startswith("Queue("):
            starts.append(ts)
    keys = [ts for _, ts, kind, _ in call.timeline if kind == "key" and ts is not None]
    out = []
    for k in keys:
        nxt = next((s for s in starts if s >= k), None)
        if nxt is not None:
            out.append((nxt - k) * 1000)
    return out


async def round_(sipp: SippCaller, mode: str, n: int, engine_pid: int | None,
                 ast_pid: int | None) -> dict[str, Any]:
    cpu0 = (proc_cpu(engine_pid), proc_cpu(ast_pid))
    t0 = time.monotonic()
    run = await sipp.call(DID[mode], KEYS, calls=n, concurrency=n, rate=max(n, 20),
                          start_ms=1500, gap_ms=700, tail_ms=1500, settle=5.0, timeout=90)
    wall = time.monotonic() - t0
    cpu1 = (proc_cpu(engine_pid), proc_cpu(ast_pid))
    reasons = Counter(r for r in map(failure, run.calls) if r is not None)
    lat = [ms for c in run.calls for ms in key_latencies(c, mode)]

    def per_call(i: int) -> float | None:
        if cpu0[i] is None or cpu1[i] is None:
            return None
        return round((cpu1[i] - cpu0[i]) * 1000 / n, 2)

    return {"mode": mode, "concurrent": n, "attempted": n,
            "reached_queue": n - sum(reasons.values()), "failed": sum(reasons.values()),
            "failures": dict(reasons), "sipp_exit": run.returncode,
            "key_to_next_prompt_ms": percentiles(lat), "wall_s": round(wall, 2),
            "engine_cpu_ms_per_call": per_call(0) if mode == "engine" else None,
            "asterisk_cpu_ms_per_call": per_call(1)}


async def bench(args: argparse.Namespace, env: dict[str, str], tmp: Path,
                engine: subprocess.Popen) -> dict[str, Any]:
    box = SimpleNamespace(ari_url=env["IVR_ARI_URL"], ari_username=env["IVR_ARI_USERNAME"],
                          ari_password=env["IVR_ARI_PASSWORD"])
    ast_pid = asterisk_pid()
    results: list[dict[str, Any]] = []
    async with SippCaller(box, tmp, trunk="bench-carrier") as sipp:
        for mode in ("engine", "native"):  # warm-up, not counted
            await sipp.call(DID[mode], KEYS, calls=2, concurrency=2, tail_ms=500)
        for n in args.concurrency:
            for r in range(args.rounds):
                order = ("engine", "native") if r % 2 == 0 else ("native", "engine")
                for mode in order:
                    res = await round_(sipp, mode, n, engine.pid, ast_pid)
                    log(f"{mode} x{n}: {res['reached_queue']}/{n} reached the queue, "
                        f"key->prompt p50 {res['key_to_next_prompt_ms']['p50']} ms "
                        f"p99 {res['key_to_next_prompt_ms']['p99']} ms {res['failures']}")
                    results.append(res)
    table = []
    for n in args.concurrency:
        row: dict[str, Any] = {"concurrent": n}
        for mode in ("engine", "native"):
            rs = [r for r in results if r["mode"] == mode and r["concurrent"] == n]
            row[mode] = {"attempted": sum(r["attempted"] for r in rs),
                         "reached_queue": sum(r["reached_queue"] for r in rs),
                         "failed": sum(r["failed"] for r in rs)}
        e, nat = row["engine"]["reached_queue"], row["native"]["reached_queue"]
        row["engine_vs_native_reached"] = round(e / nat, 3) if nat else None
        table.append(row)
    return {"benchmark": "sipp_load", "keys": KEYS, "table": table, "rounds": results}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")],
                   default=[20, 50, 100])
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--keep", type=Path, help="keep the engine log and SIPp files here")
    args = p.parse_args()
    sandbox("up", timeout=1800)
    env = sandbox_env()
    if "ivr-bench" in connected_apps():
        raise SystemExit("ARI application ivr-bench is already connected (another benchmark?)")
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="sipp-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    engine = start_engine(env, tmp)
    try:
        out = asyncio.run(bench(args, env, tmp, engine))
    finally:
        code = stop_engine(engine, log)
    out["engine_exit"] = code
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
