#!/usr/bin/env python3
"""Config reload benchmark: how long the event loop stalls while the engine re-reads its config.

    python bench/reload_stall.py [--menus 2000] [--rounds 3]

Prints ONE JSON object on stdout (progress goes to stderr). See bench/README.md. Offline: no
Asterisk, no network; it writes two files to a temporary directory.

Two inputs, each reloaded --rounds times per mode, the modes alternated round by round:

* **big_config**: a valid generated config with --menus menus (10 per top-level menu, each
  top-level menu on its own number).
* **alias_bomb**: a 238-byte "billion laughs" (6 levels of 10 aliases, 10^6 leaves), sized so
  that the old way finishes in about 2 s; bigger bombs take minutes that way.

Modes:

* **old**: what SIGHUP did before: ``load_config`` called on the event loop, with the alias
  limit lifted (``yamlsrc.MAX_ALIAS_NODES``) so that the walk expands aliases as it used to.
* **limits_on_loop** (alias_bomb only): ``load_config`` with its limits, still on the loop.
* **new**: ``ConfigHolder.reload()``: the limits, and ``load_config`` in a worker thread with
  the garbage collector paused.

While each reload runs, a task that sleeps 5 ms at a time records how late it wakes up: the
worst lateness is the longest time the loop could not serve anything else (a call's events,
its digit timer, the HTTP API).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml

from common import make_log, percentiles  # noqa: E402

log = make_log("reload")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ivr_engine.config import Config, ConfigError, load_config, yamlsrc  # noqa: E402
from ivr_engine.config.reloader import ConfigHolder  # noqa: E402

TICK = 0.005


def big_config(menus: int) -> str:
    """A valid config: menus // 10 top-level menus, each with 9 sub-menus and a number."""
    tops = max(1, menus // 10)
    out = ["engine:", "  ari: {password: bench}", "  api: {enabled: false}",
           "  default_language: en", "  timezone: UTC", "messages:"]
    out += [f"  m{i}: {{en: digits/{i % 10}, fr: [digits/{i % 10}, beep]}}" for i in range(50)]
    out.append("menus:")
    for t in range(tops):
        out += [f"  t{t}:", f"    prompt: m{t % 50}", "    options:"]
        out += [f'      "{k}": menu:t{t}s{k}' for k in range(1, 10)]
        for k in range(1, 10):
            out += [f"  t{t}s{k}:", f"    prompt: m{(t + k) % 50}", "    timeout: 5",
                    "    options:", f'      "1": queue:q{k}', '      "2": hangup',
                    f'      "3": voicemail:{1000 + k}', "    on_exhausted: message-then-hangup:m0"]
    out.append("access_points:")
    for t in range(tops):
        out += ["  - type: phone-number", f'    numbers: ["+1555{t:07d}"]', f"    menu: t{t}"]
    return "\n".join(out) + "\n"


def alias_bomb(levels: int = 6, width: int = 10) -> str:
    names = "abcdefghijklmnopqrstuvwxyz"
    lines = [f"a: &a [{','.join(['lol'] * width)}]"]
    for prev, name in zip(names, names[1:levels]):
        lines.append(f"{name}: &{name} [{','.join([f'*{prev}'] * width)}]")
    return "\n".join(lines) + "\n"


@contextmanager
def alias_limit_lifted() -> Iterator[None]:
    saved = yamlsrc.MAX_ALIAS_NODES
    yamlsrc.MAX_ALIAS_NODES = 10**12
    try:
        yield
    finally:
        yamlsrc.MAX_ALIAS_NODES = saved


async def _ticker(worst: list[float]) -> None:
    while True:
        before = time.perf_counter()
        await asyncio.sleep(TICK)
        worst[0] = max(worst[0], time.perf_counter() - before - TICK)


class _LastRecord(logging.Handler):
    """Keeps the reloader's last log line (it returns only a bool) and keeps it off stderr."""

    def __init__(self) -> None:
        super().__init__()
        self.message = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.message = record.getMessage()


RELOAD_LOG = _LastRecord()


async def one_reload(mode: str, holder: ConfigHolder) -> tuple[float, float, str]:
    """(reload seconds, worst loop stall seconds, outcome) of one reload in ``mode``."""
    gc.collect()
    worst = [0.0]
    async with asyncio.TaskGroup() as tg:
        ticker = tg.create_task(_ticker(worst))
        await asyncio.sleep(0.05)  # the ticker is in its stride
        worst[0] = 0.0
        start = time.perf_counter()
        if mode == "new":
            await holder.reload()
            outcome = RELOAD_LOG.message
        else:
            try:
                cfg = load_config(holder.current.path)
                outcome = f"config reloaded from {cfg.path} ({len(cfg.tree.menus)} menus)"
            except ConfigError as exc:
                outcome = f"config reload rejected, keeping the running config:\n{exc}"
        elapsed = time.perf_counter() - start
        await asyncio.sleep(0.05)  # a tick blocked by an on-loop reload completes and counts
        ticker.cancel()
    return elapsed, worst[0], " ".join(outcome.splitlines()[:2])


async def measure(path: Path, modes: list[str], rounds: int, base: Config) -> dict[str, Any]:
    samples: dict[str, dict[str, list]] = {m: {"s": [], "stall": [], "outcome": []} for m in modes}
    for r in range(rounds):
        order = modes if r % 2 == 0 else modes[::-1]
        for mode in order:
            holder = ConfigHolder(dataclasses.replace(base, path=str(path)))
            if mode == "old":
                with alias_limit_lifted():
                    s, stall, outcome = await one_reload(mode, holder)
            else:
                s, stall, outcome = await one_reload(mode, holder)
            log(f"{path.name} round {r + 1} {mode}: {s * 1000:.0f} ms, worst stall "
                f"{stall * 1000:.1f} ms, {outcome[:60]}")
            samples[mode]["s"].append(s * 1000)
            samples[mode]["stall"].append(stall * 1000)
            samples[mode]["outcome"].append(outcome)
    out: dict[str, Any] = {"bytes": path.stat().st_size}
    for mode in modes:
        outcomes = sorted(set(samples[mode]["outcome"]))
        out[mode] = {"outcome": outcomes[0] if len(outcomes) == 1 else outcomes,
                     "reload_ms": percentiles(samples[mode]["s"]),
                     "worst_stall_ms": percentiles(samples[mode]["stall"])}
    for mode in modes[:-1]:
        old, new = out[mode], out["new"]
        out[f"ratio_stall_p50_{mode}_over_new"] = _ratio(old["worst_stall_ms"]["p50"],
                                                         new["worst_stall_ms"]["p50"])
        out[f"ratio_reload_p50_{mode}_over_new"] = _ratio(old["reload_ms"]["p50"],
                                                          new["reload_ms"]["p50"])
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / max(b, 0.1), 1) if a is not None and b is not None else None


async def amain(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    big = tmp / "big.yaml"
    big.write_text(big_config(args.menus))
    bomb = tmp / "bomb.yaml"
    bomb.write_text(alias_bomb())
    base = load_config(big)  # the running config the reloads would replace
    log(f"big config: {len(base.tree.menus)} menus, {big.stat().st_size} bytes; "
        f"bomb: {bomb.stat().st_size} bytes")
    return {
        "big_config": {"menus": len(base.tree.menus),
                       **await measure(big, ["old", "new"], args.rounds, base)},
        "alias_bomb": await measure(bomb, ["old", "limits_on_loop", "new"], args.rounds, base),
        "settings": {"rounds": args.rounds, "tick_ms": TICK * 1000,
                     "switch_interval_ms": sys.getswitchinterval() * 1000,
                     "limits": {"max_bytes": yamlsrc.MAX_BYTES, "max_depth": yamlsrc.MAX_DEPTH,
                                "max_alias_nodes": yamlsrc.MAX_ALIAS_NODES}},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "pyyaml": yaml.__version__, "loadavg_end": [
                        round(x, 2) for x in os.getloadavg()]},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--menus", type=int, default=2000, help="menus in the big config")
    p.add_argument("--rounds", type=int, default=3, help="reloads per input and mode")
    args = p.parse_args()
    if args.menus < 10 or args.rounds < 1:
        p.error("--menus must be at least 10 and --rounds at least 1")
    engine_log = logging.getLogger("ivr_engine.engine")
    engine_log.addHandler(RELOAD_LOG)
    engine_log.setLevel(logging.INFO)
    engine_log.propagate = False
    tmp = Path(tempfile.mkdtemp(prefix="ivr-reload-"))
    code = 1
    try:
        result = asyncio.run(amain(args, tmp))
        code = 0
    except KeyboardInterrupt:
        result = {"error": "interrupted"}
    except Exception as exc:  # noqa: BLE001 - the benchmark reports in its JSON
        result = {"error": f"{type(exc).__name__}: {str(exc)[:2000]}"}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
