"""Kamailio restarted, PostgreSQL restarted (issue 18): the engines reconnect; the token
check fails closed meanwhile. On the two-node cluster (scripts/cluster), one engine per node.

* **Kamailio** stopped and started again the way scripts/cluster runs it (``scripts/cluster
  kamailio stop`` / ``start``: its pid checked, the nodes and engines untouched). While it is
  down both engines' ``/readyz`` answer 503 naming the registrar; after, 200 again, each
  engine's log saying the evapi connection was lost and made again. The registration an app
  made before the restart is gone (``usrloc`` is in memory in the tests: ``ul.lookup`` finds
  nothing), so the next caller for that app pushes it; it REGISTERs again (pn-* parameters)
  and is rung through the restarted Kamailio; a SIPp carrier call through it walks its menus
  to the queue.
* **PostgreSQL** (a throw-away cluster of this module's own, tests/support/pgcluster.py, so
  the session's shared server is never stopped) stopped and started again while two SIPp
  callers walk menus (nothing there needs the database): both complete their walk. A caller
  presenting an app token issued before the stop, while it is down, goes to the dialplan
  fallback within the call's database deadline (fails closed, one log line); a token issued
  after the start is honoured; each engine's queue-snapshot listener connects again and the
  snapshots are written again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from pathlib import Path

import pytest
import yaml

from ivr_engine.testing.rtp_pcap import keys_at
from ivr_engine.testing.sipp import SippCaller
from tests.support import pgcluster
from tests.support.cluster import (
    APP_NUMBER,
    CLUSTER,
    KAMAILIO_APPS,
    KAMAILIO_SIP,
    STATE,
    all_active,
    app_plan,
    cluster_with_engines,
    run,
    until,
)
from tests.support.cluster_wakeup import (
    APP_ADDRESS,
    CONFIG,
    PN_PARAMS,
    App,
    bridged,
    call_with_wake,
    readyz,
    ul_lookup,
    wake_cluster,
)
from tests.support.sip_register import register

pytestmark = [pytest.mark.sandbox, pytest.mark.cluster]

APPS = Path(__file__).resolve().parents[1] / "fixtures" / "apps.yaml"
TOKEN = "cluster-admin-token-00000000000000000000"
WALK = "100"  # the menus added to the fixtures' configs below
EVENTS = "Kamailio events at 127.0.0.20:8448"
KAMAILIO_PID = STATE / "cluster" / "kamailio.pid"
UNREADY = "registrar: Kamailio events (127.0.0.20:8448) not connected"


def with_walk(source: Path, out: Path) -> Path:
    """``source`` with two menus on number 100 that need no database (1: the next menu,
    1: queue sales), each waiting 6 s for its key."""
    doc = yaml.safe_load(source.read_text())
    doc.setdefault("messages", {}).update({"m-walk-a": {"en": "digits/2"},
                                           "m-walk-b": {"en": "digits/3"}})
    doc["menus"].update({
        "walk-a": {"prompt": "m-walk-a", "timeout": 6, "options": {"1": "menu:walk-b"}},
        "walk-b": {"prompt": "m-walk-b", "timeout": 6, "options": {"1": "queue:sales"}}})
    doc["access_points"].append({"type": "phone-number", "numbers": [WALK],
                                 "menu": "walk-a"})
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def node_of(call) -> str:
    m = re.match(r"node-([ab])-", call.channel)
    assert m, f"channel {call.channel!r} of {call.caller} is on no node"
    return m.group(1)


def assert_walked(run_, engines) -> None:
    assert run_.returncode == 0, run_.output
    for call in run_.calls:
        assert call.keys == ["1", "1"], (call.channel, call.keys)
        assert call.path == ["walk-a", "walk-b"], (call.channel, call.path)
        assert call.destination == {"type": "queue", "target": "sales"}, call.dialplan
        assert "IVR_FALLBACK" not in call.variables, call.variables
        assert call.channel in engines[node_of(call)].log()


async def scripts_cluster(*args: str) -> float:
    """``scripts/cluster <args>``; how long it took."""
    t0 = time.monotonic()
    await asyncio.to_thread(run, CLUSTER, *args, timeout=60)
    return time.monotonic() - t0


# ================================================================ Kamailio restarted

@pytest.fixture(scope="module")
async def kcluster(cluster_topology, tmp_path_factory, postgres_server, fcm):
    work = tmp_path_factory.mktemp("clrestart-k")
    async with wake_cluster(postgres_server, work, fcm,
                            with_walk(CONFIG, work / "wakeup-walk.yaml")) as c:
        yield c


@pytest.fixture(scope="module")
async def kamailio_restarted(kcluster):
    """Alice's app registered at Kamailio, then Kamailio stopped and started again; what was
    seen: each engine's /readyz while it was down and when it was 200 again, its log since."""
    c = kcluster
    password = c.nodes["a"].sip_password
    assert await register("alice", password, PN_PARAMS, server=KAMAILIO_APPS,
                          local=APP_ADDRESS, contact_at=f"{APP_ADDRESS}:5999") == 200
    before = await ul_lookup("alice")
    offsets = {n: len(e.log()) for n, e in c.engines.items()}
    seen: dict = {"before": before, "down": {}, "back": {}, "pids": [KAMAILIO_PID.read_text()]}
    t0 = time.monotonic()
    seen["stop_s"] = await scripts_cluster("kamailio", "stop")
    stopped = time.monotonic()
    try:
        for n, e in c.engines.items():
            async def unready(e=e):
                status, text = await readyz(e)
                return (status, text) if status == 503 and UNREADY in text else None
            seen["down"][n] = await until(unready, 5, f"engine {n}'s /readyz names the "
                                          "registrar", step=0.05)
            seen.setdefault("unready_after", {})[n] = time.monotonic() - stopped
    finally:
        seen["start_s"] = await scripts_cluster("kamailio", "start")
    started = time.monotonic()
    seen["pids"].append(KAMAILIO_PID.read_text())
    for n, e in c.engines.items():
        async def ready(e=e):
            status, text = await readyz(e)
            return (status, text) if status == 200 else None
        seen["back"][n] = await until(ready, 10, f"engine {n}'s /readyz 200 again", step=0.05)
        seen.setdefault("ready_after", {})[n] = time.monotonic() - started
    seen["down_s"] = started - t0
    seen["after"] = await ul_lookup("alice")
    seen["offsets"] = offsets
    await until(all_active, 10, "Kamailio sees both nodes active again")
    seen["active_after"] = time.monotonic() - started
    return seen


async def test_kamailio_restarted_the_engines_say_so_then_reconnect(kcluster,
                                                                   kamailio_restarted):
    seen = kamailio_restarted
    assert seen["pids"][0] != seen["pids"][1], seen["pids"]  # another Kamailio process
    print(f"\nKamailio stopped in {seen['stop_s']:.2f} s, started in {seen['start_s']:.2f} s; "
          f"/readyz 503 after "
          + ", ".join(f"{n} {t:.2f} s" for n, t in seen["unready_after"].items())
          + "; 200 again after "
          + ", ".join(f"{n} {t:.2f} s" for n, t in seen["ready_after"].items())
          + f" (of the start's end); nodes active {seen['active_after']:.2f} s after")
    for n in ("a", "b"):
        status, text = seen["down"][n]
        assert f"node-{n}: {UNREADY}" in text, text
        assert seen["back"][n][0] == 200
        engine, offset = kcluster.engines[n], seen["offsets"][n]

        async def reconnected(engine=engine, offset=offset):
            log = engine.log()[offset:]
            lost = log.find(f"{EVENTS} lost")
            again = log.find(f"connected to {EVENTS}", max(lost, 0))
            # the reconnect's resync ran (nothing was waited for: nothing rung)
            return lost >= 0 and again > lost and "Kamailio events connected: 0 waited " \
                "AOR(s) looked up" in log[again:]
        await until(reconnected, 3, f"engine {n} logged the lost and made again events "
                    "connection")
    # usrloc is in memory (tests): the registration made before the restart is gone
    assert seen["before"]["result"]["Contacts"], seen["before"]
    assert "error" in seen["after"] and "not found" in \
        seen["after"]["error"]["message"].lower(), seen["after"]


async def test_after_the_kamailio_restart_calls_walk_and_the_app_is_woken_and_rung(
        kcluster, kamailio_restarted, fcm, tmp_path):
    c = kcluster
    (tmp_path / "sipp").mkdir()
    async with SippCaller(c.nodes["a"], tmp_path / "sipp", target=KAMAILIO_SIP,
                          nodes=list(c.nodes.values())) as sipp:
        walk = await sipp.call(WALK, "1 1", calls=2, concurrency=2, rate=20, gap_ms=1200,
                               tail_ms=1500)
        assert sorted(node_of(call) for call in walk.calls) == ["a", "b"]
        assert_walked(walk, c.engines)
        # the app's registration was lost with Kamailio: the caller for alice pushes it, the
        # woken app registers again (pn-* parameters) and is rung through Kamailio
        (tmp_path / "app").mkdir()
        app = App(tmp_path / "app", c.nodes["a"].sip_password)
        async with app:
            t: dict[str, float] = {}
            call, finished, call_id = await call_with_wake(sipp, fcm, app.on_push(t), 1500)
            legs = await until(lambda: bridged(c, call_id), 5, "caller and app bridged")
            t["bridged"] = time.monotonic()
            assert sorted(leg["name"].split("-")[0] for leg in legs) == ["PJSIP/carrier",
                                                                       "PJSIP/kamailio"]
            done = await finished
            assert done.returncode == 0, done.output
            assert await app.finished(10) == 0
            assert f"INVITE sip:alice@{APP_ADDRESS}:{app.port};{PN_PARAMS} SIP/2.0" in \
                app.messages()
            assert call.channel == call_id and call.keys == ["1"]
            assert call_id in c.engines[call_id.split("-")[1]].log()
    print(f"\nafter the restart: menu walk on nodes a and b in {walk.seconds:.1f} s; wake-up "
          f"on node {call_id.split('-')[1]}: push -> REGISTER 200 "
          f"{(t['registered'] - t['push']) * 1000:.0f} ms, -> bridged "
          f"{(t['bridged'] - t['registered']) * 1000:.0f} ms (polled)")


# ================================================================ PostgreSQL restarted

@pytest.fixture(scope="module")
async def own_pg():
    """A PostgreSQL of this module's own (the test stops it): its root and URL."""
    async with pgcluster.own("ivr-pg-clrestart-") as pg:
        yield pg


@pytest.fixture(scope="module")
async def pcluster(cluster_topology, tmp_path_factory, own_pg):
    work = tmp_path_factory.mktemp("clrestart-pg")
    async with cluster_with_engines(own_pg[1], work, with_walk(APPS, work / "apps-walk.yaml"),
                                    extra_env={"IVR_ADMIN_TOKEN": TOKEN}) as c:
        yield c


def token_keys(token: str):
    return keys_at(token + "#", 400, 220, duration_ms=100)


async def snapshots_since(url: str, since: float) -> set[str]:
    """The nodes whose queue snapshots were written after ``since`` (the database's epoch)."""
    rows = await pgcluster.fetch(url, "SELECT DISTINCT node FROM queue_snapshots WHERE "
                                      "extract(epoch FROM updated_at) > $1", since)
    return {r["node"] for r in rows}


async def test_postgresql_restarted_callers_walk_tokens_fail_closed_then_work(
        pcluster, own_pg, tmp_path):
    c, (root, _) = pcluster, own_pg
    before = await app_plan(c.engines["a"])  # issued while the database is up
    offsets = {n: len(e.log()) for n, e in c.engines.items()}
    async with SippCaller(c.nodes["a"], tmp_path, target=KAMAILIO_SIP,
                          nodes=list(c.nodes.values())) as sipp:
        walkers, walking = sipp.launch(WALK, "1 1", calls=2, concurrency=2, rate=20,
                                       start_ms=1000, gap_ms=4500, tail_ms=1500)
        walking = asyncio.ensure_future(walking)
        try:
            await until(lambda: _all(w.prompts for w in walkers), 5, "both walkers in menus")
            t_halt = time.monotonic()
            await asyncio.to_thread(pgcluster.halt, root)
            stopped = time.monotonic()
            try:
                # a caller presenting the token while the database is down
                down, dialling = sipp.launch(APP_NUMBER, token_keys(before["token"]),
                                             hold_ms=3500)
                dialling = asyncio.ensure_future(dialling)
                await until(lambda: _async(down[0].variables.get("IVR_FALLBACK") == "1"), 8,
                            "the token caller in the dialplan fallback")
            finally:
                await asyncio.to_thread(pgcluster.restart, root)
            t_up = time.monotonic()
            up_epoch = time.time()
            after = await app_plan(c.engines["b"])  # issued once the database is back
            t_plan = time.monotonic() - t_up
            back = await sipp.call(APP_NUMBER, token_keys(after["token"]), hold_ms=3000)
            faulted = await dialling
            walked = await walking
        except BaseException:
            walking.cancel()
            await asyncio.gather(walking, return_exceptions=True)
            raise
    # the walkers, in the IVR across the stop and the start: untouched
    assert sorted(node_of(w) for w in walked.calls) == ["a", "b"]
    assert_walked(walked, c.engines)
    assert all(w.timeline[0][0] < t_halt for w in walked.calls)
    assert all(any(k == "key" and at > t_up for at, _, k, _ in w.timeline)
               for w in walked.calls)  # their last key after the start
    # the token presented while the database was down: the fallback, within the deadline
    assert faulted.returncode == 0, faulted.output
    caller = faulted.calls[0]
    # ivr-engine-fallback: the hold message, then its queue (SIPp hangs up before it)
    assert [("Set", "IVR_FALLBACK=1"), ("Log", "NOTICE,ivr-engine unavailable")] == [
        (a, d[:len("NOTICE,ivr-engine unavailable")] if a == "Log" else d)
        for a, d in caller.dialplan if a in ("Set", "Log") and "TIMEOUT" not in d], \
        caller.dialplan
    assert ("Playback", "pls-hold-while-try") in caller.dialplan, caller.dialplan
    assert "IVR_APP" not in caller.variables, caller.variables
    hash_at = [at for at, _, k, d in caller.timeline if k == "key" and d == "#"][0]
    fallback_at = [at for at, _, k, d in caller.timeline
                   if k == "var" and d == "IVR_FALLBACK=1"][0]
    assert fallback_at - hash_at < 2.0 + 1.0, caller.timeline  # call_deadline_seconds 2
    engine = c.engines[node_of(caller)]
    lines = [line for line in engine.log()[offsets[node_of(caller)]:].splitlines()
             if caller.channel in line and "token-guard" in line]
    assert len(lines) == 1 and lines[0].endswith(
        "its token is not checked (fails closed): the caller goes to the fallback"), lines
    # after the start: a token issued then is honoured
    assert back.returncode == 0, back.output
    assert back.calls[0].variables.get("IVR_APP") == "customer", back.calls[0].variables
    assert back.calls[0].path == ["cust"], back.calls[0].path
    assert "IVR_FALLBACK" not in back.calls[0].variables

    # each engine's snapshot listener connected again, and the snapshots are written again
    async def relistened():
        found = [re.search(r"^(\S+ \S+) INFO ivr_engine.livedata queue-listener: listening "
                           r"on queue_changed \(connect [2-9]", e.log()[offsets[n]:], re.M)
                 for n, e in c.engines.items()]
        return found if all(found) else None
    found = await until(relistened, 15, "both engines' queue listeners connected again",
                        step=0.2)
    listen_after = [dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                    - up_epoch for m in found]  # the engines log local time
    # the records of the calls made across the outage: all written, all ended (the token
    # caller sent to the fallback has none: its token phase ended before it was routed, as
    # on any database failure there — test_callsafe_cleanup.py)
    ids = [w.channel for w in walked.calls] + [back.calls[0].channel]
    rows: list = []

    async def recorded():
        rows[:] = await _records(c.database_url, ids)
        return len(rows) == len(ids) and all(r["state"] == "ended" for r in rows)
    try:
        await until(recorded, 10, "the calls' records")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {[dict(r) for r in rows]} of {ids}") from None
    written = await until(lambda: _nodes(c.database_url, up_epoch), 15,
                          "snapshots of both nodes written again", step=0.2)
    print(f"\nPostgreSQL down {t_up - stopped:.2f} s (stop {stopped - t_halt:.2f} s); token "
          f"caller: # -> fallback {(fallback_at - hash_at) * 1000:.0f} ms; plan after the start "
          f"{t_plan * 1000:.0f} ms; listeners connected again "
          + ", ".join(f"{t:.2f}" for t in listen_after)
          + f" s after the start; snapshots written again by {sorted(written)}")


async def _all(values) -> bool:
    return all(values)


async def _async(value):
    return value


async def _records(url: str, ids: list[str]):
    return await pgcluster.fetch(url, "SELECT id, state, path, destination FROM call_records "
                                      "WHERE id = ANY($1)", ids)


async def _nodes(url: str, since: float):
    nodes = await snapshots_since(url, since)
    return nodes if nodes >= {"node-a", "node-b"} else None
