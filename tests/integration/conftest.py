"""Fixtures for tests against the real sandbox Asterisk (scripts/asterisk-sandbox).

* ``sandbox`` (session): runs ``scripts/asterisk-sandbox up`` (idempotent) once and parses
  ``scripts/asterisk-sandbox env`` into a :class:`Sandbox`.
* ``ari`` (per test): an entered :class:`RecordingAriClient` for a unique test app name, its
  ``run()`` task started and connected.  Every event lands in ``ari.events`` (an
  asyncio.Queue); read it with ``await next_event(ari.events, "StasisStart", predicate=...)``.
  On teardown the channels that entered the app are hung up and the task is cancelled.
* ``http``, ``caller``, ``sipp`` (module): for a module that starts its own engine as its
  ``engine`` fixture, an HTTP session on the engine's API, a :class:`CallerPool` and a
  :class:`SippCaller` calling it.
* ``ami`` (module): our AMI client of the sandbox, running (for agents: see
  ``tests/support/queue_member.py``).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from ivr_engine.ami import AmiClient
from ivr_engine.ari import AriClient, Event, StasisStart
from ivr_engine.testing.caller import CallerPool
from ivr_engine.testing.sipp import SippCaller

REPO = Path(__file__).resolve().parents[2]
SANDBOX_SCRIPT = REPO / "scripts" / "asterisk-sandbox"


@dataclass(frozen=True)
class Sandbox:
    ari_url: str
    ari_username: str
    ari_password: str = field(repr=False)
    ami_host: str
    ami_port: int
    ami_username: str
    ami_password: str = field(repr=False)
    sip_password: str = field(repr=False)

    def cli(self, command: str, timeout: float = 20) -> str:
        """Run one Asterisk CLI command in the sandbox (``asterisk -rx``); returns stdout."""
        proc = subprocess.run(
            [str(SANDBOX_SCRIPT), "cli", "-rx", command],
            capture_output=True, text=True, timeout=timeout, check=True,
        )
        return proc.stdout


def _parse_env(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = shlex.split(line, comments=True)
        if not parts:
            continue
        if parts[0] == "export":
            parts = parts[1:]
        for part in parts:
            key, sep, value = part.partition("=")
            if sep:
                out[key] = value
    return out


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    if not SANDBOX_SCRIPT.exists():
        pytest.fail(f"{SANDBOX_SCRIPT} is missing")
    up = subprocess.run([str(SANDBOX_SCRIPT), "up"], capture_output=True, text=True, timeout=900)
    if up.returncode != 0:
        pytest.fail(f"asterisk-sandbox up failed ({up.returncode}):\n{up.stdout}\n{up.stderr}")
    env = subprocess.run(
        [str(SANDBOX_SCRIPT), "env"], capture_output=True, text=True, timeout=60, check=True
    )
    values = _parse_env(env.stdout)
    get = lambda key, default=None: os.environ.get(key) or values.get(key) or default  # noqa: E731
    return Sandbox(
        ari_url=get("IVR_ARI_URL", "http://127.0.0.1:8088"),
        ari_username=get("IVR_ARI_USERNAME", "ivr-engine"),
        ari_password=values["IVR_ARI_PASSWORD"],
        ami_host=get("IVR_AMI_HOST", "127.0.0.1"),
        ami_port=int(get("IVR_AMI_PORT", "5038")),
        ami_username=get("IVR_AMI_USERNAME", "ivr-engine"),
        ami_password=values.get("IVR_AMI_PASSWORD", ""),
        sip_password=values.get("IVR_SIP_PASSWORD", ""),
    )


# ------------------------------------------------------------------ events helpers

_stash: weakref.WeakKeyDictionary[asyncio.Queue, list[Event]] = weakref.WeakKeyDictionary()


def _matches(event: Event, wanted, predicate) -> bool:
    if wanted is not None:
        if isinstance(wanted, str):
            if event.type != wanted:
                return False
        elif not isinstance(event, wanted):
            return False
    return predicate is None or bool(predicate(event))


async def next_event(
    queue: asyncio.Queue,
    type=None,  # noqa: A002 - the documented name: an event type name or class
    timeout: float = 5,
    predicate: Callable[[Event], bool] | None = None,
) -> Event:
    """The next event on ``queue`` of ``type`` (a name or a class) satisfying ``predicate``.

    Events skipped while looking are not lost: they are stashed and searched first by later
    calls on the same queue (in arrival order).  Raises TimeoutError after ``timeout``.
    """
    wanted = type
    stash = _stash.setdefault(queue, [])
    for i, event in enumerate(stash):
        if _matches(event, wanted, predicate):
            return stash.pop(i)
    try:
        async with asyncio.timeout(timeout):
            while True:
                event = await queue.get()
                if _matches(event, wanted, predicate):
                    return event
                stash.append(event)
    except TimeoutError:
        name = wanted if isinstance(wanted, str) or wanted is None else wanted.__name__
        seen = ", ".join(f"{e.type}({e.channel_id})" for e in stash[-15:])
        raise TimeoutError(f"no {name} event within {timeout}s; skipped: [{seen}]") from None


def drain(queue: asyncio.Queue) -> list[Event]:
    """Everything stashed or queued right now (non-blocking), in arrival order."""
    out = _stash.pop(queue, [])
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


# ------------------------------------------------------------------ ari client fixture


class RecordingAriClient(AriClient):
    """AriClient whose run() task records every event in ``events`` (and ``history``)."""

    events: asyncio.Queue
    history: list[Event]
    task: asyncio.Task | None

    def record(self, event: Event) -> None:
        self.history.append(event)
        self.events.put_nowait(event)

    async def next_event(  # noqa: A002 - "type" as in next_event()
        self, type=None, timeout: float = 5, predicate=None
    ) -> Event:
        """``next_event(self.events, ...)``."""
        return await next_event(self.events, type, timeout, predicate)


def unique_app(prefix: str = "ivr-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def start_client(
    sandbox: Sandbox, app: str | None = None, **kwargs
) -> RecordingAriClient:
    """An entered RecordingAriClient with its run() task started and connected."""
    client = RecordingAriClient(
        sandbox.ari_url, sandbox.ari_username, sandbox.ari_password, app or unique_app(), **kwargs
    )
    client.events = asyncio.Queue()
    client.history = []
    await client.open()
    client.task = asyncio.create_task(client.run(client.record), name=f"ari-run-{client.app}")
    try:
        await client.wait_connected(timeout=10)
    except BaseException:
        await stop_client(client)
        raise
    return client


async def stop_client(client: RecordingAriClient) -> None:
    """Hang up what entered the app, cancel and await run(), close the session."""
    try:
        if client.task is not None and not client.task.done():
            seen = {e.channel_id for e in client.history if isinstance(e, StasisStart)}
            for channel_id in seen:
                try:
                    await client.hangup(channel_id)
                except Exception:  # noqa: BLE001 - best-effort cleanup
                    pass
    finally:
        if client.task is not None:
            client.task.cancel()
            try:
                await client.task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        await client.close()


@pytest.fixture(name="next_event")
def next_event_fixture():
    """The :func:`next_event` helper, for tests (conftest is not importable by name)."""
    return next_event


@pytest.fixture(params=["http", "websocket"])
async def ari(sandbox: Sandbox, request) -> AsyncIterator[RecordingAriClient]:
    """A connected client; every test using it runs once per REST transport (HTTP, and
    RESTRequest messages over the events websocket)."""
    client = await start_client(sandbox, transport=request.param)
    assert (client._ws_rest is not None) == (request.param == "websocket")
    try:
        yield client
    finally:
        await stop_client(client)


@pytest.fixture
async def ari_factory(sandbox: Sandbox):
    """``await ari_factory(app=None, **AriClient kwargs)``: more connected clients, all
    stopped at teardown (same as the ``ari`` fixture)."""
    clients: list[RecordingAriClient] = []

    async def make(app: str | None = None, **kwargs) -> RecordingAriClient:
        client = await start_client(sandbox, app, **kwargs)
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in reversed(clients):
            await stop_client(client)


def ws_sessions(sandbox: Sandbox) -> dict[str, list[str]]:
    """ARI websocket sessions from the CLI: {session id: [apps]}."""
    out = sandbox.cli("ari show websocket sessions")
    sessions: dict[str, list[str]] = {}
    for line in out.splitlines():
        parts = line.split()
        # "<uuid> inbound <addr> Up app1,app2"
        if len(parts) >= 5 and len(parts[0]) == 36 and parts[0].count("-") == 4:
            sessions[parts[0]] = parts[4].split(",")
    return sessions


@pytest.fixture(name="ws_sessions")
def ws_sessions_fixture(sandbox: Sandbox):
    """``ws_sessions()`` -> {session id: [apps]} of the sandbox's ARI websockets."""
    return lambda: ws_sessions(sandbox)


@pytest.fixture(scope="session")
def cluster_topology():
    """scripts/cluster up once for every cluster test module (tests/support/cluster.py)."""
    from tests.support.cluster import topology

    with topology():
        yield


# ------------------------------------------------------------------ a module's own engine


@pytest.fixture(scope="module")
async def http(engine):
    """An HTTP session on the API of the module's ``engine``."""
    async with aiohttp.ClientSession(base_url=engine.api_url) as s:
        yield s


@pytest.fixture(scope="module")
async def caller(sandbox: Sandbox, engine):
    """Scripted callers (Local channels) into the sandbox, once the module's ``engine`` runs."""
    async with CallerPool(sandbox.ari_url, sandbox.ari_username, sandbox.ari_password) as pool:
        yield pool


@pytest.fixture(scope="module")
async def sipp(sandbox: Sandbox, engine, tmp_path_factory):
    """SIPp callers on the carrier trunk, once the module's ``engine`` runs."""
    async with SippCaller(sandbox, tmp_path_factory.mktemp("sipp")) as caller:
        yield caller


@pytest.fixture(scope="module")
async def ami(sandbox: Sandbox):
    """Our AMI client of the sandbox, running for the module."""
    client = AmiClient(sandbox.ami_host, sandbox.ami_port, sandbox.ami_username,
                       sandbox.ami_password)
    task = asyncio.create_task(client.run())
    try:
        yield client
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
