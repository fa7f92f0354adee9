#!/usr/bin/env python3
"""Estimated wait time: our estimator vs Asterisk's own, on the same queue and the same run.

    flock /tmp/ivr-sandbox.lock .venv/bin/python bench/wait_estimate.py [--agents 2]
        [--callers 40] [--arrival-mean 2.3] [--talk 2 6] [--seed 7] [--simulate]

Prints ONE JSON object on stdout (progress on stderr).

Real run (default): the sandbox Asterisk (``scripts/asterisk-sandbox up`` installs queue
``livedata`` and the scripted agents of ``asterisk-conf/``). ``--agents`` K agents log in with
AMI ``QueueAdd`` (``Local/a<i>@livedata-agent``: answer at once, talk ``LIVEDATA_TALK``
seconds); ``--callers`` callers are originated over AMI into ``Queue(livedata)`` with
exponential inter-arrival times (mean ``--arrival-mean`` s) and talk times uniform in
``--talk`` (min max, s) — minutes of a contact centre compressed into seconds. The engine's
own queue model (``livedata.monitor.QueueMonitor`` over ``AmiClient``: the same code as the
engine) follows the queue live. When a caller joins, the benchmark records

* **ours**: the estimate ``GET /v1/queues/{name}/status`` would give that caller (position-
  aware, from the talk times seen so far and the agents serving), when there is one;
* **asterisk**: Asterisk's estimate for that caller — app_queue's hold time, the running
  average ``(3 × old + new) / 4`` of answered callers' whole-second waits, the figure
  ``announce-holdtime`` reads (the same for every position), replayed from the AgentConnect
  events of the run and checked against ``QueueStatus``'s ``Holdtime`` at the end;

and, when an agent answers it, its **actual** wait. Figures: mean absolute error of each
over the callers where ours gave an estimate (ours declines while fewer than 3 talk times are
known), Asterisk's over all callers, and how much lower ours is.

``--simulate``: no Asterisk; a pure-Python FIFO queue with the same arrivals, talk times and
agents feeds the same queue model and estimator with the AMI events app_queue would send.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import make_log, sandbox, sandbox_env  # noqa: E402
from ivr_engine.livedata.estimate import asterisk_holdtime  # noqa: E402
from ivr_engine.livedata.queues import QueueBoard  # noqa: E402

QUEUE = "livedata"
log = make_log("wait")


def scenario(args: argparse.Namespace) -> list[tuple[float, float]]:
    """(arrival time from the start, talk time) per caller."""
    rng = random.Random(args.seed)
    t, out = 0.0, []
    for _ in range(args.callers):
        t += rng.expovariate(1 / args.arrival_mean)
        out.append((round(t, 2), round(rng.uniform(*args.talk), 1)))
    return out


class Recorder:
    """Per caller: its position and both estimates when it joins, its wait when answered."""

    def __init__(self, board: QueueBoard, mine: set[str]):
        self.board, self.mine = board, mine
        self.holdtime = 0  # app_queue's running average, replayed
        self.callers: dict[str, dict[str, Any]] = {}

    def on_event(self, ev: Any, now: float) -> None:
        kind, uid = ev.get("Event"), str(ev.get("Uniqueid", ""))
        if ev.get("Queue") != QUEUE:
            return
        if kind == "QueueCallerJoin" and uid in self.mine:
            q = self.board.queues[QUEUE]
            pos = q.position(uid) or len(q.callers)
            e = q.estimate(pos, now)
            self.callers[uid] = {"joined": now, "position": pos, "ours": e.seconds,
                                 "method": e.method, "confidence": e.confidence,
                                 "asterisk": self.holdtime, "actual": None}
        elif kind == "AgentConnect":
            self.holdtime = asterisk_holdtime(self.holdtime, float(ev.get("HoldTime", 0)))
            rec = self.callers.get(uid)
            if rec is not None:
                rec["actual"] = now - rec["joined"]


def summary(rec: Recorder) -> dict[str, Any]:
    done = [c for c in rec.callers.values() if c["actual"] is not None]
    ours = [c for c in done if c["ours"] is not None]

    def mae(items: list[dict], key: str) -> float | None:
        return round(statistics.fmean(abs(c[key] - c["actual"]) for c in items), 2) \
            if items else None

    mae_ours, mae_ast = mae(ours, "ours"), mae(ours, "asterisk")
    return {
        "callers_answered": len(done),
        "callers_with_our_estimate": len(ours),
        "mean_actual_wait_s": round(statistics.fmean(c["actual"] for c in done), 2)
        if done else None,
        "mae_ours_s": mae_ours,
        "mae_asterisk_same_callers_s": mae_ast,
        "mae_asterisk_all_callers_s": mae(done, "asterisk"),
        "ours_lower_by_percent": round(100 * (1 - mae_ours / mae_ast), 1)
        if mae_ours is not None and mae_ast else None,
        "methods": {m: sum(1 for c in ours if c["method"] == m)
                    for m in sorted({c["method"] for c in ours})},
        "confidence": {k: sum(1 for c in ours if c["confidence"] == k)
                       for k in sorted({c["confidence"] for c in ours})},
        "by_position": {str(p): {"n": len(g), "mae_ours_s": mae(g, "ours"),
                                 "mae_asterisk_s": mae(g, "asterisk")}
                        for p in sorted({c["position"] for c in ours})
                        for g in [[c for c in ours if c["position"] == p]]},
    }


# ---------------------------------------------------------------------------- simulation

def simulate(args: argparse.Namespace, plan: list[tuple[float, float]]) -> dict[str, Any]:
    """A FIFO queue with K agents, feeding the queue model the events app_queue sends."""
    board = QueueBoard()
    rec = Recorder(board, {f"c{i}" for i in range(len(plan))})

    def emit(ev: dict, now: float) -> None:
        board.apply({"Queue": QUEUE, **ev}, now)
        rec.on_event({"Queue": QUEUE, **ev}, now)

    agents = [f"Local/a{i}@livedata-agent" for i in range(1, args.agents + 1)]
    for a in agents:
        emit({"Event": "QueueMemberAdded", "Interface": a, "Status": "1", "Paused": "0"}, 0.0)
    events: list[tuple[float, int, str, Any]] = []
    seq = 0
    for i, (t, talk) in enumerate(plan):
        events.append((t, seq, "arrive", (f"c{i}", talk)))
        seq += 1
    heapq.heapify(events)
    waiting: list[tuple[str, float, float]] = []  # uid, joined, talk
    free = list(agents)
    while events:
        now, _, kind, data = heapq.heappop(events)
        if kind == "arrive":
            uid, talk = data
            waiting.append((uid, now, talk))
            emit({"Event": "QueueCallerJoin", "Uniqueid": uid, "Position": str(len(waiting))},
                 now)
        else:  # an agent finishes
            agent, uid, started = data
            emit({"Event": "AgentComplete", "Interface": agent, "Uniqueid": uid,
                  "TalkTime": str(int(now - started))}, now)
            free.append(agent)
        while free and waiting:
            uid, joined, talk = waiting.pop(0)
            agent = free.pop(0)
            emit({"Event": "QueueCallerLeave", "Uniqueid": uid}, now)
            emit({"Event": "AgentConnect", "Interface": agent, "Uniqueid": uid,
                  "HoldTime": str(int(now - joined)), "RingTime": "0"}, now)
            heapq.heappush(events, (now + talk, seq, "done", (agent, uid, now)))
            seq += 1
    return {"asterisk_holdtime_replayed": rec.holdtime, **summary(rec)}


# ---------------------------------------------------------------------------- real run

async def real_run(args: argparse.Namespace, plan: list[tuple[float, float]]) -> dict[str, Any]:
    from ivr_engine.ami import AmiClient, AmiError
    from ivr_engine.livedata.monitor import QueueMonitor
    from ivr_engine.livedata.queues import QUEUE_EVENTS

    sandbox("up", timeout=900)  # installs this checkout's asterisk-conf/ (queue livedata)
    env = sandbox_env(("IVR_AMI_PASSWORD",))
    ami = AmiClient("127.0.0.1", int(env.get("IVR_AMI_PORT", "5038")),
                    env.get("IVR_AMI_USERNAME", "ivr-engine"), env["IVR_AMI_PASSWORD"])
    monitor = QueueMonitor(ami)  # the engine's own queue model, first to see each event
    ids = {f"wbench-{i}-{int(time.time())}": i for i in range(len(plan))}
    names = {i: uid for uid, i in ids.items()}
    rec = Recorder(monitor.board, {uid + ";2" for uid in ids})
    ami.listen("agent", QUEUE_EVENTS, lambda m, ev: rec.on_event(ev, time.monotonic()),
               lambda: None)
    agents = [f"Local/a{i}@livedata-agent" for i in range(1, args.agents + 1)]
    async with asyncio.TaskGroup() as tg:
        runner = tg.create_task(ami.run())
        watcher = tg.create_task(monitor.run())
        try:
            await asyncio.wait_for(monitor.synced.wait(), 15)
            await ami.action({"Action": "QueueReset", "Queue": QUEUE})  # Asterisk's holdtime 0
            for a in agents:
                try:
                    await ami.action({"Action": "QueueRemove", "Queue": QUEUE, "Interface": a})
                except AmiError:
                    pass
                await ami.action({"Action": "QueueAdd", "Queue": QUEUE, "Interface": a,
                                  "MemberName": a.split("@")[0][6:]})
            start = time.monotonic()
            log(f"{len(plan)} callers over {plan[-1][0]:.0f} s, {len(agents)} agents")
            for i, (t, talk) in enumerate(plan):
                await asyncio.sleep(max(0.0, start + t - time.monotonic()))
                uid = names[i]
                # the ;2 side (OtherChannelId) runs Queue(livedata); ;1 waits
                await ami.action({"Action": "Originate", "Async": "true",
                                  "Channel": f"Local/{QUEUE}@ivr-engine-queue",
                                  "ChannelId": uid, "OtherChannelId": uid + ";2",
                                  "Application": "Wait", "Data": "900", "Timeout": "900000",
                                  "Variable": f"__LIVEDATA_TALK={talk}"})
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                done = sum(1 for c in rec.callers.values() if c["actual"] is not None)
                if done == len(plan):
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(max(talk for _, talk in plan) + 1)
            answer = await ami.event_list({"Action": "QueueStatus", "Queue": QUEUE})
            holdtime = next((int(m.get("Holdtime", 0)) for m in answer
                             if m.get("Event") == "QueueParams"), None)
        finally:
            for a in agents:
                try:
                    await ami.action({"Action": "QueueRemove", "Queue": QUEUE, "Interface": a})
                except AmiError:
                    pass
            runner.cancel()
            watcher.cancel()
    return {"asterisk_holdtime_replayed": rec.holdtime,
            "asterisk_holdtime_queue_status": holdtime, **summary(rec)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", type=int, default=2)
    p.add_argument("--callers", type=int, default=40)
    p.add_argument("--arrival-mean", type=float, default=2.3)
    p.add_argument("--talk", type=float, nargs=2, default=(2.0, 6.0), metavar=("MIN", "MAX"))
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--simulate", action="store_true", help="pure Python, no Asterisk")
    args = p.parse_args()
    plan = scenario(args)
    t0 = time.monotonic()
    result = simulate(args, plan) if args.simulate else asyncio.run(real_run(args, plan))
    print(json.dumps({
        "benchmark": "wait_estimate", "mode": "simulated" if args.simulate else "asterisk",
        "agents": args.agents, "callers": args.callers, "arrival_mean_s": args.arrival_mean,
        "talk_s": list(args.talk), "seed": args.seed,
        "offered_load": round(sum(args.talk) / 2 / args.arrival_mean / args.agents, 2),
        "duration_s": round(time.monotonic() - t0, 1), **result}, indent=1))


if __name__ == "__main__":
    main()
