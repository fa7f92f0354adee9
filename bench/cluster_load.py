"""Calls through Kamailio over two Asterisk nodes vs the same calls direct to one node.

The cluster of ``scripts/cluster`` (started here when it is not running, stopped again at the
end): Kamailio on 127.0.0.20 in front of node a (127.0.0.2) and node b (127.0.0.3), one
engine per node (``engine.nodes``, bench/tree.yaml's 3-level tree under the ``ivr-engine``
application that ``from-pstn`` enters) on one throw-away PostgreSQL. SIPp callers on the
``carrier`` trunk press 1, 2, 3 (barge-in, 700 ms apart) and should reach ``Queue(support)``:

* ``direct``  — SIPp sends to node a (127.0.0.2:5060); node a and engine a take every call;
* ``cluster`` — SIPp sends to Kamailio, which spreads the calls round-robin over both nodes.

Modes alternate each round (drift is shared). Per mode: calls attempted, reached the queue,
failed (with the reason), calls per second over SIPp's run (``concurrency`` callers at a time,
``concurrency`` new calls per second), INVITE -> 200 OK and key -> next prompt latencies, the
nodes the calls landed on, and CPU per call of the engines, the Asterisks and Kamailio (all
of them, whichever took calls). On a 2-core machine running everything, two nodes add no
capacity; what this shows is what the proxy costs. One JSON object on stdout.

    python bench/cluster_load.py                          # 200 calls per mode, 50 at a time
    python bench/cluster_load.py --calls 100 --concurrency 25 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
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

from common import REPO, make_log, percentiles, proc_cpu, stop_engine, tail_file
from sipp_load import KEYS, failure, key_latencies

sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from ivr_engine.testing.sipp import SippCaller  # noqa: E402
from tests.support import pgcluster  # noqa: E402

log = make_log("cluster-bench")
TREE = REPO / "bench" / "tree.yaml"
CLUSTER = REPO / "scripts" / "cluster"
SANDBOX = REPO / "scripts" / "asterisk-sandbox"
STATE = Path(os.environ.get("IVR_SANDBOX_STATE", "/var/cache/ivr-engine/state"))
DID = "+15550005000"
NODES = ("a", "b")
TARGET = {"direct": "127.0.0.2:5060", "cluster": "127.0.0.20:5060"}


def cluster_conf() -> Any:
    sys.path.insert(0, str(REPO / "scripts"))
    spec = importlib.util.spec_from_file_location("cluster_conf",
                                                  REPO / "scripts" / "cluster_conf.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def node_env(node: str) -> dict[str, str]:
    out = subprocess.run([str(SANDBOX), "--node", node, "env"], capture_output=True, text=True,
                         check=True).stdout
    return dict(line.split(" ", 1)[1].split("=", 1) for line in out.splitlines()
                if line.startswith("export "))


def pids(pattern: str, exe: str) -> list[int]:
    """Processes running ``exe`` with ``pattern`` in their command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "exe") != exe:
                continue
            if pattern in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def cpu(group: list[int]) -> float:
    return sum(proc_cpu(p) or 0.0 for p in group)


def start_engine(node: str, db_url: str, env: dict[str, str], tmp: Path,
                 ari: dict[str, Any] | None = None) -> subprocess.Popen:
    """Engine of ``node`` on bench/tree.yaml; ``ari``: more settings of its node's ari."""
    cc = cluster_conf()
    doc = cc.engine_config(yaml.safe_load(TREE.read_text()), node, "127.0.0.1:1", db_url)
    doc["engine"]["nodes"][0]["ari"]["app"] = "ivr-engine"  # what from-pstn enters
    doc["engine"]["nodes"][0]["ari"].update(ari or {})
    config = tmp / f"engine-{node}.yaml"
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    logf = open(tmp / f"engine-{node}.log", "wb")
    return subprocess.Popen([sys.executable, "-m", "ivr_engine.cli", "run", "-c", str(config)],
                            cwd=REPO, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                            stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(engines: dict[str, subprocess.Popen], tmp: Path) -> None:
    deadline = time.monotonic() + 60
    for node, proc in engines.items():
        path = tmp / f"engine-{node}.log"
        while "engine ready" not in path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"engine {node} not ready:\n{tail_file(path)}")
            time.sleep(0.1)


async def round_(sipp: SippCaller, mode: str, n: int, concurrency: int,
                 groups: dict[str, list[int]]) -> dict[str, Any]:
    sipp.target = TARGET[mode]
    before = {k: cpu(g) for k, g in groups.items()}
    run = await sipp.call(DID, KEYS, calls=n, concurrency=concurrency, rate=concurrency,
                          start_ms=1500, gap_ms=700, tail_ms=1500, settle=5.0, timeout=120,
                          rtt=True)
    spent = {k: round((cpu(g) - before[k]) * 1000 / n, 2) for k, g in groups.items()}
    reasons = Counter(r for r in map(failure, run.calls) if r is not None)
    reached = n - sum(reasons.values())
    nodes = Counter(c.channel.split("-")[1] if c.channel.startswith("node-") else "none"
                    for c in run.calls)
    return {"mode": mode, "attempted": n, "concurrency": concurrency, "reached_queue": reached,
            "failed": sum(reasons.values()), "failures": dict(reasons),
            "sipp_exit": run.returncode, "sipp_seconds": round(run.seconds, 2),
            "calls_per_s": round(reached / run.seconds, 2), "nodes": dict(nodes),
            "invite_to_200_ms": percentiles(run.response_ms),
            "key_to_next_prompt_ms": percentiles(
                [ms for c in run.calls for ms in key_latencies(c, "engine")]),
            "cpu_ms_per_call": spent}


async def bench(args: argparse.Namespace, envs: dict[str, dict[str, str]], tmp: Path,
                engines: dict[str, subprocess.Popen]) -> dict[str, Any]:
    boxes = [SimpleNamespace(ari_url=e["IVR_ARI_URL"], ari_username=e["IVR_ARI_USERNAME"],
                             ari_password=e["IVR_ARI_PASSWORD"]) for e in envs.values()]
    groups = {
        "engines": [e.pid for e in engines.values()],
        "asterisks": [int((STATE / f"node-{n}" / "asterisk.pid").read_text()) for n in NODES],
        "kamailio": pids(str(STATE / "cluster" / "kamailio.cfg"), "/usr/sbin/kamailio")}
    results = []
    async with SippCaller(boxes[0], tmp, target=TARGET["direct"], nodes=boxes) as sipp:
        for mode in ("direct", "cluster"):  # warm-up, not counted
            sipp.target = TARGET[mode]
            await sipp.call(DID, KEYS, calls=2, concurrency=2, tail_ms=500)
        for r in range(args.rounds):
            for mode in (("direct", "cluster") if r % 2 == 0 else ("cluster", "direct")):
                res = await round_(sipp, mode, args.calls, args.concurrency, groups)
                log(f"{mode}: {res['reached_queue']}/{args.calls} reached the queue, "
                    f"{res['calls_per_s']} calls/s, nodes {res['nodes']} {res['failures']}")
                results.append(res)
    summary: dict[str, Any] = {}
    for mode in ("direct", "cluster"):
        rs = [r for r in results if r["mode"] == mode]
        summary[mode] = {
            "attempted": sum(r["attempted"] for r in rs),
            "reached_queue": sum(r["reached_queue"] for r in rs),
            "failed": sum(r["failed"] for r in rs),
            "calls_per_s": round(sum(r["reached_queue"] for r in rs)
                                 / sum(r["sipp_seconds"] for r in rs), 2),
            "cpu_ms_per_call": {k: round(sum(r["cpu_ms_per_call"][k] for r in rs) / len(rs), 2)
                                for k in rs[0]["cpu_ms_per_call"]}}
    d, c = summary["direct"]["calls_per_s"], summary["cluster"]["calls_per_s"]
    summary["cluster_vs_direct_calls_per_s"] = round(c / d, 3) if d else None
    summary["zero_failures"] = not (summary["direct"]["failed"] or summary["cluster"]["failed"])
    return {"benchmark": "cluster_load", "keys": KEYS, "calls_per_round": args.calls,
            "concurrency": args.concurrency, "summary": summary, "rounds": results,
            "load_average_at_start": args.load}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=200, help="calls per mode and round")
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--keep", type=Path, help="keep the engine logs and SIPp files here")
    args = p.parse_args()
    args.load = [round(x, 2) for x in os.getloadavg()]  # before the cluster starts
    was_up = subprocess.run([str(CLUSTER), "status"], capture_output=True).returncode == 0
    subprocess.run([str(CLUSTER), "up"], check=True, stdout=subprocess.DEVNULL)
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="cluster-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    pg_root = Path(tempfile.mkdtemp(prefix="cluster-bench-pg-"))
    engines: dict[str, subprocess.Popen] = {}
    try:
        db_url = pgcluster.start(pg_root)
        subprocess.run([sys.executable, "-m", "ivr_engine.cli", "db", "upgrade", "--url",
                        db_url], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        envs = {n: node_env(n) for n in NODES}
        for n in NODES:
            engines[n] = start_engine(n, db_url, envs[n], tmp)
        wait_ready(engines, tmp)
        out = asyncio.run(bench(args, envs, tmp, engines))
    finally:
        out_codes = {n: stop_engine(e, log) for n, e in engines.items()}
        pgcluster.stop(pg_root)
        if not was_up:
            subprocess.run([str(CLUSTER), "down"], check=False, stdout=subprocess.DEVNULL)
    out["engine_exit"] = out_codes
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
