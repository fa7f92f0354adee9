"""Run the real engine (`python -m ivr_engine.cli run`) as a subprocess against the sandbox,
on a SQLite file in its work directory (upgraded first) unless ``extra_env`` names another
IVR_DATABASE_URL."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "ivr.yaml"


@dataclass
class EngineProcess:
    proc: asyncio.subprocess.Process
    log_path: Path
    db_path: Path
    config_path: Path
    api_url: str

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
            try:
                async with asyncio.timeout(timeout):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode


def app_connected(sandbox, app: str = "ivr-engine") -> bool:
    """Is a websocket connected for ``app``? (Asterisk keeps an application listed after its
    client left while subscriptions remain, so GET /applications cannot tell.)"""
    out = sandbox.cli("ari show websocket sessions")
    return any(app in line.split()[4:] for line in out.splitlines()[2:] if line.strip())


async def upgrade_database(url: str) -> None:
    """What ``ivr-engine db upgrade`` does, in-process (a no-op when already upgraded)."""
    from ivr_engine.store import Database

    db = Database(url)
    try:
        await db.upgrade()
    finally:
        await db.close()


async def spawn_engine(sandbox, workdir: Path, config: Path = FIXTURE,
                       extra_env: dict[str, str] | None = None,
                       preexec_fn: Callable[[], None] | None = None) -> EngineProcess:
    """Start the engine (its database upgraded first) without waiting for it to be ready.
    ``preexec_fn`` runs in the child before the engine (e.g. a lower RLIMIT_NOFILE)."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "ivr.db"
    with socket.socket() as sock:  # a free loopback port for this engine's HTTP API
        sock.bind(("127.0.0.1", 0))
        api_port = sock.getsockname()[1]
    log_path = workdir / "engine.log"
    env = {
        **os.environ,
        "IVR_ARI_URL": sandbox.ari_url,
        "IVR_ARI_USERNAME": sandbox.ari_username,
        "IVR_ARI_PASSWORD": sandbox.ari_password,
        "IVR_DATABASE_URL": f"sqlite:///{db}",
        "IVR_API_LISTEN": f"127.0.0.1:{api_port}",
        **(extra_env or {}),
    }
    await upgrade_database(env["IVR_DATABASE_URL"])  # the engine refuses one not upgraded
    logf = open(log_path, "wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ivr_engine.cli", "-v", "run", "-c", str(config),
        env=env, stdout=logf, stderr=asyncio.subprocess.STDOUT, cwd=str(REPO),
        preexec_fn=preexec_fn)
    logf.close()
    return EngineProcess(proc, log_path, db, config, f"http://127.0.0.1:{api_port}")


async def start_engine(sandbox, workdir: Path, config: Path = FIXTURE,
                       extra_env: dict[str, str] | None = None,
                       preexec_fn: Callable[[], None] | None = None) -> EngineProcess:
    """Start the engine and wait until both its ARI applications are up."""
    handle = await spawn_engine(sandbox, workdir, config, extra_env, preexec_fn)
    proc = handle.proc
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"engine exited {proc.returncode}:\n{handle.log()}")
            if "engine ready" in handle.log():
                return handle  # calls app and registrations app both up
            await asyncio.sleep(0.05)
        raise RuntimeError(f"engine did not register its ARI app in 20 s:\n{handle.log()}")
    except BaseException:
        await handle.stop()
        raise


async def local_call(ari, did: str, prefix: str, context: str = "from-pstn") -> tuple[str, str]:
    """Start a PSTN-like call into ``context`` from a test ARI client (see tests/integration/
    conftest.py), the Local pair of ``ivr_engine.testing.caller``; returns (caller side ;1 in
    the test app, engine side ;2, subscribed). The test drives it from ``ari.events``."""
    from ivr_engine.testing.caller import create_local_pair

    from .conftest import next_event

    a = f"{prefix}-{ari.app}"
    b = await create_local_pair(ari, did, context, a)
    await next_event(ari.events, "StasisStart", timeout=5, predicate=lambda e: e.channel_id == a)
    await ari.dial(a)
    return a, b
