"""What the engine remembers of calls handed to the dialplan (issue 17), against the real
engine and the real sandbox Asterisk:

- a hand-off whose ``ChannelDestroyed`` is lost while the ARI websocket is down is marked
  ended when the engine reconnects (before: ``handed-off`` in memory for ever);
- SIGTERM right after N hand-offs, with the SQLite file locked by another writer past the
  database's busy timeout: every record is written before the store closes (before: "N
  changes not written at shutdown: database is locked").
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import threading
import time
from pathlib import Path

import aiohttp
import pytest

from .conftest import next_event, start_client, stop_client
from .engine_proc import local_call, start_engine

pytestmark = pytest.mark.sandbox

CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "callsafe.yaml"
ADMIN = {"Authorization": "Bearer admin-secret-000000000000000000000000000"}


async def until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)


async def _state(http: aiohttp.ClientSession, call: str) -> str | None:
    async with http.get(f"/v1/calls/{call}", headers=ADMIN) as r:
        return (await r.json()).get("state") if r.status == 200 else None


async def _held(http: aiohttp.ClientSession) -> dict[str, float]:
    async with http.get("/metrics") as r:
        text = await r.text()
    return {line.split('"')[1]: float(line.split()[-1]) for line in text.splitlines()
            if line.startswith("ivr_held{")}


async def _hand_off(ari, prefix: str) -> tuple[str, str]:
    """A call into menu top, key 1: Queue(support). Returns (caller side, engine side)."""
    a, b = await local_call(ari, "300", prefix)
    await next_event(ari.events, "PlaybackStarted", timeout=10,
                     predicate=lambda e: e.channel_id == b)
    await ari.send_dtmf(a, "1")
    await next_event(ari.events, "ChannelDialplan", timeout=10,
                     predicate=lambda e: e.channel_id == b and e.dialplan_app == "Queue")
    return a, b


def _engine_session(sandbox) -> str:
    out = sandbox.cli("ari show websocket sessions")
    ids = [line.split()[0] for line in out.splitlines()[2:]
           if line.strip() and "ivr-engine" in line.split()[4:]]
    assert len(ids) == 1, out
    return ids[0]


async def test_a_hand_off_whose_end_was_lost_across_a_reconnect_is_marked_ended(
        sandbox, tmp_path):
    engine = await start_engine(sandbox, tmp_path, config=CONFIG)
    ari = await start_client(sandbox)
    stopped = False
    try:
        async with aiohttp.ClientSession(base_url=engine.api_url) as http:
            a, b = await _hand_off(ari, "lost")
            await until(lambda: _state_is(http, b, "handed-off"), 5, "the hand-off recorded")
            # the engine cannot hear anything now: its websocket goes, then the call ends
            engine.proc.send_signal(signal.SIGSTOP)
            stopped = True
            session = _engine_session(sandbox)
            assert "Shutting down" in sandbox.cli(f"ari shutdown websocket session {session}")
            await ari.hangup(a)
            await next_event(ari.events, "ChannelDestroyed", timeout=10,
                             predicate=lambda e: e.channel_id == b)
            engine.proc.send_signal(signal.SIGCONT)
            stopped = False
            t0 = time.monotonic()
            await until(lambda: _state_is(http, b, "ended"), 15,
                        "the call marked ended after the reconnect")
            print(f"lost hand-off marked ended {time.monotonic() - t0:.2f} s after SIGCONT")
            assert (await _held(http))["live_records"] == 0
            assert "handed-off call(s) ended while ARI was disconnected" in engine.log()
    finally:
        if stopped:
            engine.proc.send_signal(signal.SIGCONT)
        await stop_client(ari)
        assert await engine.stop() == 0, engine.log()


async def _state_is(http, call: str, state: str) -> bool:
    return await _state(http, call) == state


class _WriteLock:
    """Another writer holding the SQLite file's write lock (what the SMS dialer or any
    other process sharing the file may do) until released."""

    def __init__(self, path: Path):
        self.path = path
        self.held = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            self.held.set()
            self.release.wait(60)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    def __enter__(self) -> "_WriteLock":
        self.thread.start()
        assert self.held.wait(10), "could not take the write lock"
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.thread.join(10)


N = 8
LOCKED_AFTER_SIGTERM = 12.0  # > 2 x SQLite's busy timeout (5 s): a write under way, then close's


async def test_sigterm_right_after_hand_offs_writes_every_record(sandbox, tmp_path):
    engine = await start_engine(sandbox, tmp_path, config=CONFIG)
    ari = await start_client(sandbox)
    calls: list[tuple[str, str]] = []
    try:
        with _WriteLock(engine.db_path) as lock:
            for n in range(N):
                calls.append(await _hand_off(ari, f"rec{n}"))
            t0 = time.monotonic()
            engine.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(LOCKED_AFTER_SIGTERM)  # the other writer keeps the lock
            lock.release.set()
            code = await engine.stop(timeout=30)
        took = time.monotonic() - t0
        assert code == 0, engine.log()
        print(f"SIGTERM -> exit with the database locked {LOCKED_AFTER_SIGTERM:g} s: "
              f"{took:.2f} s")
        con = sqlite3.connect(engine.db_path)
        try:
            rows = dict(con.execute("SELECT id, state FROM call_records"))
        finally:
            con.close()
        missing = [b for _, b in calls if rows.get(b) != "handed-off"]
        assert not missing, (missing, engine.log()[-3000:])
        assert "not written at shutdown" not in engine.log()
    finally:
        for a, _ in calls:
            try:
                await ari.hangup(a)
            except Exception:  # noqa: BLE001 - the call may be gone already
                pass
        await stop_client(ari)
        if engine.proc.returncode is None:
            await engine.stop()
