"""The cluster's test helpers (scripts/cluster: two nodes behind Kamailio, one engine per
node on one PostgreSQL), shared by tests/integration/test_cluster*.py: bring the topology up
with engines of a given config, read Kamailio's view of the nodes, poll with a deadline."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import time
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import aiohttp
import yaml

from tests.conftest import _admin, _with_database
from tests.integration.conftest import SANDBOX_SCRIPT, Sandbox, _parse_env
from tests.integration.engine_proc import (
    FIXTURE,
    REPO,
    EngineProcess,
    spawn_engine,
    upgrade_database,
)

CLUSTER = REPO / "scripts" / "cluster"
KAMAILIO_SIP = "127.0.0.20:5060"
KAMAILIO_APPS = ("127.0.0.21", 5060)
KAMAILIO_RPC = "http://127.0.0.20:5081/RPC"
NODES = ("a", "b")
STATE = Path(os.environ.get("IVR_SANDBOX_STATE", "/var/cache/ivr-engine/state"))


def cluster_conf():
    """scripts/cluster_conf.py as a module."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        spec = importlib.util.spec_from_file_location("_cluster_conf",
                                                      REPO / "scripts" / "cluster_conf.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(REPO / "scripts"))


def run(*args: Any, timeout: float = 60) -> str:
    out = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, f"{args} exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def node_sandbox(node: str) -> Sandbox:
    env = _parse_env(run(SANDBOX_SCRIPT, "--node", node, "env"))
    return Sandbox(ari_url=env["IVR_ARI_URL"], ari_username=env["IVR_ARI_USERNAME"],
                   ari_password=env["IVR_ARI_PASSWORD"], ami_host=env["IVR_AMI_HOST"],
                   ami_port=int(env["IVR_AMI_PORT"]), ami_username=env["IVR_AMI_USERNAME"],
                   ami_password=env["IVR_AMI_PASSWORD"], sip_password=env["IVR_SIP_PASSWORD"])


async def dispatcher() -> dict[str, str]:
    """Kamailio's view of the nodes: {node name: flags} (``AP`` active, ``IP`` inactive)."""
    body = {"jsonrpc": "2.0", "method": "dispatcher.list", "id": 1}
    async with aiohttp.ClientSession() as http, http.post(KAMAILIO_RPC, json=body) as r:
        data = await r.json(content_type=None)
    targets = data["result"]["RECORDS"][0]["SET"]["TARGETS"]
    return {t["DEST"]["ATTRS"]["DUID"]: t["DEST"]["FLAGS"] for t in targets}


async def until(predicate, timeout: float, what: str, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {value!r})")
        await asyncio.sleep(step)


async def all_active() -> bool:
    flags = await dispatcher()
    return sorted(flags) == ["node-a", "node-b"] and all(f.startswith("A") for f in
                                                         flags.values())


async def engine_ready(engine: EngineProcess) -> bool:
    if engine.proc.returncode is not None:
        raise AssertionError(f"engine exited {engine.proc.returncode}:\n{engine.log()}")
    return "engine ready" in engine.log()


@dataclass
class Cluster:
    nodes: dict[str, Sandbox]
    engines: dict[str, EngineProcess]
    database_url: str
    workdir: Path
    source: Path = FIXTURE  # the engines' config before scripts/cluster's rewrite

    def engine_config(self, node: str, name: str | None = None, url_of: str | None = None,
                      app: str | None = None, registrar: dict | None = None) -> Path:
        """``source`` as the engine of ``node`` (scripts/cluster's rewrite); ``name`` /
        ``url_of`` / ``app`` give a node a wrong name, another node's URL, or another ARI
        application name; ``registrar`` overrides parts of engine.registrar."""
        doc = cluster_conf().engine_config(yaml.safe_load(self.source.read_text()), node,
                                           "${IVR_API_LISTEN}", "${IVR_DATABASE_URL}")
        entry = doc["engine"]["nodes"][0]
        if name is not None:
            entry["name"] = name
        if url_of is not None:
            entry["ari"]["url"] = self.nodes[url_of].ari_url
            entry["ami"]["host"] = self.nodes[url_of].ami_host
        if app is not None:
            entry["ari"]["app"] = app
        doc["engine"]["registrar"].update(registrar or {})
        path = self.workdir / f"engine-{node}-{name or 'ok'}-{app or 'app'}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path


@contextmanager
def topology() -> Iterator[None]:
    """scripts/cluster up, and down again after unless it was up before: the session's
    ``cluster_topology`` fixture (tests/integration/conftest.py), so that the cluster test
    modules share one start and one stop."""
    was_up = subprocess.run([str(CLUSTER), "status"], capture_output=True).returncode == 0
    run(CLUSTER, "up", timeout=120)
    try:
        yield
    finally:
        if not was_up:
            run(CLUSTER, "down", timeout=120)


@asynccontextmanager
async def cluster_with_engines(postgres_server: str, workdir: Path, source: Path = FIXTURE,
                               extra_env: dict[str, str] | None = None,
                               registrar: dict | None = None,
                               one_engine: bool = False) -> AsyncIterator[Cluster]:
    """With the cluster up (``cluster_topology``): a fresh database, one engine per node on
    ``source`` (``one_engine``: a single engine, ``engines["ab"]``, holding both nodes);
    yields once they are ready and Kamailio sees both nodes active (a test that stops a node
    starts it again)."""
    t0 = time.monotonic()
    nodes = {n: node_sandbox(n) for n in NODES}
    name = f"ivr_cluster_{os.getpid()}"
    await _admin(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                 f'CREATE DATABASE "{name}"')
    url = _with_database(postgres_server, name)
    c = Cluster(nodes, {}, url, workdir, source)
    try:
        await upgrade_database(url)  # once (alembic is not safe to run twice at once)
        env = {"IVR_DATABASE_URL": url,  # and the nodes' AMI (one secret): queues, transfers
               "IVR_AMI_USERNAME": nodes["a"].ami_username,
               "IVR_AMI_PASSWORD": nodes["a"].ami_password, **(extra_env or {})}
        if one_engine:
            docs = [yaml.safe_load(c.engine_config(n, registrar=registrar).read_text())
                    for n in NODES]
            docs[0]["engine"]["nodes"] = [d["engine"]["nodes"][0] for d in docs]
            path = workdir / "engine-ab.yaml"
            path.write_text(yaml.safe_dump(docs[0], sort_keys=False))
            c.engines["ab"] = await spawn_engine(nodes["a"], workdir / "engine-ab", path,
                                                 extra_env=env)
        for n in () if one_engine else NODES:  # both start at once, each on its node
            c.engines[n] = await spawn_engine(
                nodes[n], workdir / f"engine-{n}", c.engine_config(n, registrar=registrar),
                extra_env=env)
        for n, e in c.engines.items():
            await until(lambda: engine_ready(e), 30, f"engine {n} ready", step=0.1)
        await until(all_active, 10, "Kamailio sees both nodes active")
        print(f"\ncluster ready in {time.monotonic() - t0:.1f} s")
        yield c
    finally:
        for e in c.engines.values():
            await e.stop()
        await _admin(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


#: the customer app of the cluster fixtures (tests/fixtures/apps.yaml): its key and PSTN fallback
APP_KEY = {"Authorization": "Bearer customer-key-000000000000000000000000000"}
APP_NUMBER = "+17144505656"


async def app_plan(engine: EngineProcess) -> dict:
    """A call plan from ``engine``'s API for the customer app (its PSTN fallback, a token)."""
    async with aiohttp.ClientSession() as http, http.post(
            f"{engine.api_url}/v1/apps/customer/calls", headers=APP_KEY,
            json={"connectivity": 0.1}) as r:
        doc = await r.json()
        assert r.status == 201, doc
    assert doc["mode"] == "pstn" and doc["dial"].startswith(APP_NUMBER), doc
    return doc
