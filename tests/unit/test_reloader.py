"""ConfigHolder: a reload runs off the event loop, keeps the running config when the new file is
refused, applies a good one, and coalesces the SIGHUPs that arrive while it works."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from pathlib import Path

import pytest

from ivr_engine.config import load_config, yamlsrc
from ivr_engine.config import reloader as reloader_mod
from ivr_engine.config.reloader import ConfigHolder

from .test_config import BASE
from .test_config_limits import BAD_INPUTS, billion_laughs

GOOD = BASE  # a small valid config


@pytest.fixture
def cfg_file(tmp_path) -> Path:
    path = tmp_path / "ivr.yaml"
    path.write_text(GOOD)
    return path


@pytest.fixture
def holder(cfg_file) -> ConfigHolder:
    return ConfigHolder(load_config(cfg_file))


class StallMeter:
    """The event loop's worst lateness, seen by a task that wakes up every 5 ms; ``ticks``
    counts its wake-ups and ``ticked`` is set at each one (so a test waits for the next tick
    instead of sleeping)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.ticks = 0
        self.ticked = asyncio.Event()

    async def run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, time.perf_counter() - before - 0.005)
            self.ticks += 1
            self.ticked.set()

    async def next_tick(self) -> None:
        self.ticked.clear()
        async with asyncio.timeout(5):
            await self.ticked.wait()


async def reload_while_measuring(holder: ConfigHolder) -> tuple[bool, float, float]:
    """(reload's result, its duration, the loop's worst stall meanwhile), in seconds."""
    meter = StallMeter()
    async with asyncio.TaskGroup() as tg:
        ticker = tg.create_task(meter.run())
        await meter.next_tick()  # the ticker is running
        start = time.perf_counter()
        ok = await holder.reload()
        elapsed = time.perf_counter() - start
        await meter.next_tick()  # the tick in flight completes and counts
        ticker.cancel()
    return ok, elapsed, meter.worst


def stall_limit(elapsed: float) -> float:
    """The worst loop stall a reload off the loop may show on a loaded 2-core machine: a
    reload done on the loop stalls it for (nearly) all of its duration, so half of that
    (never less than 0.25 s of plain scheduling noise) still tells the two apart."""
    return max(0.25, elapsed / 2)


@pytest.mark.parametrize("name", BAD_INPUTS)
async def test_bad_file_keeps_the_running_config(holder, cfg_file, caplog, name):
    data, expected = BAD_INPUTS[name]
    old = holder.current
    cfg_file.write_bytes(data)
    with caplog.at_level(logging.INFO, logger="ivr_engine.engine"):
        ok, elapsed, stall = await reload_while_measuring(holder)
    assert not ok and holder.current is old
    assert "config reload rejected, keeping the running config:\n" in caplog.text
    assert expected.format(f=cfg_file) in caplog.text
    assert "Traceback" not in caplog.text
    assert elapsed < 3.0 and stall < stall_limit(elapsed), (elapsed, stall)
    assert gc.isenabled()


async def test_good_change_is_applied(holder, cfg_file, caplog):
    cfg_file.write_text(GOOD.replace("hello-world", "goodbye").replace(
        "password: secret", "password: other"))
    with caplog.at_level(logging.INFO, logger="ivr_engine.engine"):
        assert await holder.reload()
    assert holder.current.model.messages["hello"]["en"] == ("sound:goodbye",)
    assert f"config reloaded from {cfg_file} (1 menus)" in caplog.text
    assert "engine.ari changed: restart the engine to use the new connection" in caplog.text


async def test_unexpected_error_is_logged_and_the_config_kept(holder, monkeypatch, caplog):
    def broken(path):  # noqa: ANN001, ANN202
        raise RuntimeError("bug")

    monkeypatch.setattr(reloader_mod, "load_config", broken)
    old = holder.current
    with caplog.at_level(logging.INFO, logger="ivr_engine.engine"):
        assert not await holder.reload()
    assert holder.current is old
    assert "config reload rejected, keeping the running config" in caplog.text


async def test_slow_parse_does_not_block_the_loop(holder, cfg_file, monkeypatch):
    """Whatever the limits allow may still take a while to read: that happens in a thread.
    With the alias limit lifted, this 232-byte bomb takes ~0.5 s of CPU to refuse."""
    monkeypatch.setattr(yamlsrc, "MAX_ALIAS_NODES", 10**9)
    cfg_file.write_bytes(billion_laughs(levels=5, width=12))
    ok, elapsed, stall = await reload_while_measuring(holder)
    assert not ok
    assert elapsed > 0.1, "the reload was too quick to show anything"
    assert stall < stall_limit(elapsed), \
        f"the loop stalled {stall * 1000:.0f} ms during a {elapsed:.2f} s reload"


def test_reading_a_config_leaves_no_cyclic_garbage():
    """What lets a reload pause the garbage collector: nothing piles up for it meanwhile."""
    example = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
    gc.collect()
    gc.disable()
    try:
        cfg = load_config(example, {"IVR_ARI_PASSWORD": "x"})
        assert gc.collect() == 0
    finally:
        gc.enable()
    assert cfg.tree.menus


async def test_run_coalesces_requests_made_during_a_reload(holder, cfg_file, monkeypatch):
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow_load(path):  # noqa: ANN001, ANN202
        calls.append(path)
        started.set()
        release.wait(5)
        return load_config(path)

    monkeypatch.setattr(reloader_mod, "load_config", slow_load)
    async with asyncio.timeout(10), asyncio.TaskGroup() as tg:
        task = tg.create_task(holder.run())
        holder.request_reload()
        await asyncio.to_thread(started.wait, 5)
        for _ in range(3):  # three SIGHUPs while the first reload runs
            holder.request_reload()
        started.clear()
        release.set()
        await asyncio.to_thread(started.wait, 5)  # the one further reload
        # run() goes from one reload to the next without yielding in between: once its lock
        # is free and no request is pending it waits for a new one; a (wrong) third reload
        # would hold the lock again before anyone could see it free
        while holder._lock.locked() or holder.requested.is_set() or len(calls) < 2:
            await asyncio.sleep(0.01)
        task.cancel()
    assert len(calls) == 2
